"""The weighted average of a set of updates that loses members pass after pass, each pass
bit for bit :func:`~flare.aggregation.arithmetic.weighted_average` over those still in.

The MI filter's aggregate rule leaves out the lowest-ranked trusted updates and averages
the rest again until the average scores well enough, up to half of them; a bloc that keeps
the average just under the floor can make every committee member take hundreds of passes,
and summing afresh costs each pass a sweep over every remaining update.

So once a loop runs on, the sum is carried instead: the float64 sum of an anchor pass (a
plain pass, its own result, that also sums each coordinate's term magnitudes
``A = Σ|tᵢ|``), less the terms ``tᵢ = cᵢ·δᵢ`` of the updates left out since, subtracted
error-free (two-sum keeps each rounding error in a second vector). The plain sum of the
``m`` terms still in, in submission order, lies within ``γₘ₋₁·A ≈ m·u·A`` of their exact sum
(``u = 2⁻⁵³``), the anchor's within ``m₀·u·A₀`` of its own, and the carried sum is exact but
for that (:func:`_error_bound` has the details). Dividing by ``Σ wᵢ`` and rounding to float32 are
monotone, so where both ends of the bound give one float32 (nearly every coordinate) that
is the plain pass's value. The others are summed plainly: the products of the members still
in, a few values from each, added in submission order by ``np.add.accumulate`` (a chain of
single adds, each partial sum an output: the loop's adds exactly; a final ``+ 0.0`` turns an
all-``−0.0`` chain into the ``+0.0`` the loop's zero start gives). A coordinate whose terms
were all zero at the anchor is +0.0, as the plain sum makes it. A tensor with too many
undecided coordinates is anchored again by a plain pass.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from flare.aggregation.arithmetic import WeightedSum
from flare.aggregation.base import AggregationError
from flare.tensors import ModelSpec, Weights

UNIT_ROUNDOFF = 2.0**-53

SMALLEST_SUBNORMAL = float(np.finfo(np.float64).smallest_subnormal)

PLAIN_PASSES = 2
"""Passes summed plainly before the sum is carried: an anchor costs about two plain
passes, which a loop of one or two leave-outs does not earn back."""

CARRIED_MAGNITUDE_LIMIT = 2.0**1000
"""A tensor is carried only while ``Σ|tᵢ|`` stays below this, far enough below float64's
largest value that no sum, difference or bound can overflow."""

UNDECIDED_SHARE = 1 / 8
"""A tensor with more of its coordinates undecided than this is anchored again."""

SETTLE_BLOCK_VALUES = 1 << 20
"""Undecided coordinates are summed this many member values (8 MiB of products) at a time."""


@dataclass
class _CarriedTensor:
    """One tensor's carried sum: ``high + low`` is the anchor's sum less the terms left out
    since, but for the roundings of ``low``; ``magnitudes`` is the ``Σ|tᵢ|`` of the terms
    still in, computed in float64."""

    high: np.ndarray
    low: np.ndarray
    magnitudes: np.ndarray
    anchor_bound: np.ndarray
    """The part of :func:`_error_bound` fixed at the anchor."""
    all_zero: np.ndarray
    """Where every term was ±0 at the anchor: the plain sum is +0.0 for any subset."""


class ShrinkingAverage:
    """``weighted_average(deltas, weights, spec, scales)`` over the members still in after
    any :meth:`leave_out`; the deltas must be finite and of ``spec``'s shapes."""

    def __init__(
        self,
        deltas: Sequence[Mapping[str, np.ndarray]],
        weights: Sequence[float],
        spec: ModelSpec,
        scales: Sequence[float] | None = None,
    ) -> None:
        if scales is None:
            scales = [1.0] * len(weights)
        if not len(deltas) == len(weights) == len(scales):
            raise AggregationError("need exactly one weight and one scale per update")
        self.deltas = list(deltas)
        self.weights = [float(weight) for weight in weights]
        self.coefficients = [w * float(s) for w, s in zip(self.weights, scales, strict=True)]
        self.spec = spec
        self.members = list(range(len(self.deltas)))
        self.passes = 0
        self._carried: dict[str, _CarriedTensor] = {}
        self._flats: dict[str, list[np.ndarray]] = {}
        """Per tensor, every delta's flat view, for settling."""

    def leave_out(self, positions: Iterable[int]) -> None:
        """Leave out the deltas at ``positions`` (indices into the deltas given)."""
        gone = set(positions) & set(self.members)
        self.members = [i for i in self.members if i not in gone]
        for name, carried in self._carried.items():
            term = np.empty(carried.high.shape, dtype=np.float64)
            for i in sorted(gone):
                self._term(i, name, term)
                _subtract_exactly(carried, term)
                np.abs(term, out=term)
                np.subtract(carried.magnitudes, term, out=carried.magnitudes)

    def average(self) -> Weights:
        """The members' weighted average, the bytes ``weighted_average`` gives them."""
        if not self.members:
            raise AggregationError("cannot average zero updates")
        total = math.fsum(self.weights[i] for i in self.members)
        if not total > 0:
            raise AggregationError("weights must sum to a positive number")
        self.passes += 1
        if self.passes <= PLAIN_PASSES:
            summed = WeightedSum(self.spec)
            for i in self.members:
                summed.add(self.deltas[i], self.coefficients[i])
            return {name: np.divide(s, total).astype(np.float32) for name, s in summed.sums.items()}
        return {
            name: self._tensor_average(name, total).reshape(shape)
            for name, shape in self.spec.items()
        }

    def _flat(self, position: int, name: str) -> np.ndarray:
        return np.asarray(self.deltas[position][name]).reshape(-1)

    def _term(self, position: int, name: str, out: np.ndarray) -> None:
        """``cᵢ·δᵢ`` of one tensor, flat: the float64 product :class:`WeightedSum` forms."""
        np.multiply(
            self._flat(position, name), self.coefficients[position], out=out, dtype=np.float64
        )

    def _tensor_average(self, name: str, total: float) -> np.ndarray:
        carried = self._carried.get(name)
        if carried is None:
            return self._anchor(name, total)
        center = carried.high + carried.low
        bound = _error_bound(carried, len(self.members), center)
        average = np.divide(center - bound, total).astype(np.float32)
        upper = np.divide(center + bound, total).astype(np.float32)
        average[carried.all_zero] = 0.0
        where = np.flatnonzero(average.view(np.uint32) != upper.view(np.uint32))
        where = where[~carried.all_zero[where]]
        if where.size > UNDECIDED_SHARE * average.size:
            return self._anchor(name, total)
        if where.size:
            average[where] = self._settled(name, where, total)
        return average

    def _settled(self, name: str, where: np.ndarray, total: float) -> np.ndarray:
        """The plain pass's values at the flat coordinates ``where``: the same products
        (each value widened exactly to float64 first, as the ufunc does), added in
        submission order over the members still in (see the module docs)."""
        if name not in self._flats:
            self._flats[name] = [self._flat(i, name) for i in range(len(self.deltas))]
        members = [self._flats[name][i] for i in self.members]
        coefficients = np.asarray([self.coefficients[i] for i in self.members])[:, None]
        settled = np.empty(where.size, dtype=np.float32)
        width = max(1, SETTLE_BLOCK_VALUES // len(members))
        for start in range(0, where.size, width):
            columns = where[start : start + width]
            terms = np.empty((len(members), columns.size), dtype=np.float64)
            for row, flat in zip(terms, members, strict=True):
                row[:] = flat[columns]
            np.multiply(terms, coefficients, out=terms)
            sums = np.add.accumulate(terms, axis=0)[-1] + 0.0
            settled[start : start + width] = np.divide(sums, total).astype(np.float32)
        return settled

    def _anchor(self, name: str, total: float) -> np.ndarray:
        """A plain pass over tensor ``name`` that also sums the term magnitudes, from which
        later passes carry the sum."""
        size = math.prod(self.spec[name])
        sums = np.zeros(size, dtype=np.float64)
        magnitudes = np.zeros(size, dtype=np.float64)
        term = np.empty(size, dtype=np.float64)
        for i in self.members:
            self._term(i, name, term)
            np.add(sums, term, out=sums)
            np.abs(term, out=term)
            np.add(magnitudes, term, out=magnitudes)
        average = np.divide(sums, total).astype(np.float32)
        if size and magnitudes.max() <= CARRIED_MAGNITUDE_LIMIT:
            self._carried[name] = _CarriedTensor(
                high=sums,
                low=np.zeros(size, dtype=np.float64),
                magnitudes=magnitudes,
                anchor_bound=_anchor_bound(magnitudes, len(self.members)),
                all_zero=magnitudes == 0,
            )
        else:  # sums, differences or the bound might overflow: this tensor stays plain
            self._carried.pop(name, None)
        return average


def _subtract_exactly(carried: _CarriedTensor, term: np.ndarray) -> None:
    """``high + low −= term`` by two-sum: ``high − term`` rounds, and its rounding error,
    exactly representable, goes to ``low`` (whose own roundings the bound allows for)."""
    difference = carried.high - term
    virtual = difference - carried.high
    error = (carried.high - (difference - virtual)) - (term + virtual)
    carried.high = difference
    np.add(carried.low, error, out=carried.low)


def _anchor_bound(magnitudes: np.ndarray, members: int) -> np.ndarray:
    """The anchor's share of :func:`_error_bound`, for an anchor of ``members`` terms."""
    bound = magnitudes * ((1.01 * members + 3.0) * UNIT_ROUNDOFF)
    bound += SMALLEST_SUBNORMAL * (8.0 * members + 16.0)
    return bound


def _error_bound(carried: _CarriedTensor, members: int, center: np.ndarray) -> np.ndarray:
    """How far, at most, the plain sum of the ``m = members`` terms still in lies from
    ``center``, the float64 value of ``high + low``, with ``m₀`` terms at the anchor and
    ``A``, ``A₀`` the computed magnitudes now and then:

    * the plain sum from the exact one: ``γₘ₋₁·Σ|tᵢ| ≤ 1.001·m·u·(A + e)``, where ``e``, the
      rounding in ``A`` (``m₀`` adds and at most ``m₀`` subtractions, each off by at most
      ``u·A₀``), adds a ``u²`` term, inside the ``u·A₀`` allowed for it below;
    * the anchor's sum from its exact one, ``1.002·m₀·u·A₀``; ``low``'s roundings, ``u²``
      terms again; ``center``'s own rounding, ``u·|center|``, and once more the rounding of
      ``center ∓ bound`` (the bound's 1.01 factors cover its own share, ``u·bound``);
    * every factor raised to 1.01, which covers the roundings of this computation, and an
      absolute allowance for sums that reach the subnormal range.
    """
    bound = np.maximum(carried.magnitudes, 0.0)
    bound *= (1.01 * members + 1.0) * UNIT_ROUNDOFF
    bound += carried.anchor_bound
    bound += np.abs(center) * (2.02 * UNIT_ROUNDOFF)
    return bound

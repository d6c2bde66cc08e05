"""Reproducible arithmetic shared by every aggregator.

Committee members on different machines recompute the aggregate and compare
bytes, so nothing here may depend on BLAS, thread counts or reduction order:

* sums over clients are explicit Python loops in submission order, each step
  one elementwise float64 ufunc (no matmul, no ``np.sum`` over the client axis,
  no fused multiply-add), rounded to float32 once at the end (``np.add.accumulate`` along the
  client axis is the same chain of adds, every partial sum an output);
* sums over parameters (norms, dot products, distances) use one ``np.sum`` per
  tensor, flattened to a C-ordered float64 vector first (``np.sum`` follows the
  memory layout; on a 1-D contiguous vector its pairwise order is fixed by the
  length), and combine the tensors with the correctly rounded ``math.fsum``;
* order statistics over clients (median, trimmed mean;
  :mod:`flare.aggregation.order_statistics`) sort or partition each coordinate's client
  values, which is exact; of the two zeros, −0.0 counts as the smaller, read from the
  unsorted values (a vectorised sort may swap one zero for the other);
* any float that feeds a decision is first rounded with :func:`round_score` or
  :func:`round_significant`, so that only a difference larger than the
  documented precision can change who is trusted.

Faster paths elsewhere (the BLAS Gram matrix of :mod:`flare.aggregation.distances`)
only ever steer which of these values get computed, never replace them; the carried sums of
:mod:`flare.aggregation.shrinking_average` stand in for a weighted average only where a
bound on its rounding proves them equal.
"""

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from flare.aggregation.base import AggregationError, ClientUpdate
from flare.tensors import ModelSpec, Weights, spec_of

SCORE_DECIMALS = 9
"""Scores measured in bits or as ratios are compared after rounding to 1e-9."""

SIGNIFICANT_DIGITS = 9
"""Scale-dependent quantities (norms, distances) keep nine significant digits."""


def round_score(value: float) -> float:
    """Round a bounded score (bits, ratios) to :data:`SCORE_DECIMALS` decimals."""
    return round(float(value), SCORE_DECIMALS)


def round_significant(value: float) -> float:
    """Round a scale-dependent value to :data:`SIGNIFICANT_DIGITS` significant digits.

    CPython's float formatting is correctly rounded, hence identical everywhere.
    """
    return float(f"{float(value):.{SIGNIFICANT_DIGITS - 1}e}")


def validate_updates(updates: Sequence[ClientUpdate], global_weights: Weights) -> ModelSpec:
    """Check that the round's updates can be aggregated; return the model spec.

    Every update must name a distinct client, claim a positive sample count, and
    carry finite tensors with exactly the global model's names and shapes.
    """
    if not updates:
        raise AggregationError("no updates to aggregate")
    spec = spec_of(global_weights)
    seen: set[str] = set()
    for update in updates:
        check_claim(update.client_id, update.num_samples, seen)
        check_tensors(update, spec)
    return spec


def check_claim(client_id: str, num_samples: object, seen: set[str]) -> None:
    """``client_id`` not in ``seen`` (then added to it), claiming a positive int count."""
    if client_id in seen:
        raise AggregationError(f"client {client_id!r} submitted more than one update")
    seen.add(client_id)
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise AggregationError(f"client {client_id!r}: num_samples must be an int")
    if num_samples <= 0:
        raise AggregationError(f"client {client_id!r}: num_samples must be positive")


def check_tensors(update: ClientUpdate, spec: ModelSpec) -> None:
    """The update carries finite floating-point tensors with exactly ``spec``'s names and
    shapes."""
    who = update.client_id
    if set(update.delta) != set(spec):
        missing = sorted(set(spec) - set(update.delta))
        extra = sorted(set(update.delta) - set(spec))
        raise AggregationError(
            f"client {who!r}: tensor names differ from the model "
            f"(missing {missing}, unexpected {extra})"
        )
    for name, shape in spec.items():
        array = np.asarray(update.delta[name])
        if array.shape != shape:
            raise AggregationError(
                f"client {who!r}: tensor {name!r} has shape {array.shape}, model needs {shape}"
            )
        if array.dtype.kind != "f":  # numpy's floating types, float16 to longdouble
            raise AggregationError(f"client {who!r}: tensor {name!r} is not floating point")
        if not np.isfinite(array).all():
            raise AggregationError(f"client {who!r}: tensor {name!r} is not finite")


def zeros_like_spec(spec: ModelSpec) -> Weights:
    """An all-zero float32 delta of ``spec``: what a round with nobody trusted returns."""
    return {name: np.zeros(shape, dtype=np.float32) for name, shape in spec.items()}


class WeightedSum:
    """``Σ cᵢ·δᵢ`` in float64, one update at a time: the arithmetic of every weighted rule.

    Each :meth:`add` is, per tensor, one elementwise float64 multiply (the tensor widened
    inside the ufunc: the same product as converting first, without a float64 copy of the
    update) and one add into the running sum, so the bytes depend only on the order of the
    calls, never on the machine, and the sum holds one model's worth however many updates
    it takes.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.sums: Weights = {
            name: np.zeros(shape, dtype=np.float64) for name, shape in spec.items()
        }
        self._terms = {name: np.empty(shape, dtype=np.float64) for name, shape in spec.items()}

    def add(self, delta: Mapping[str, np.ndarray], coefficient: float) -> None:
        """Add ``coefficient·delta`` to the running sum."""
        for name, total in self.sums.items():
            term = self._terms[name]
            np.multiply(delta[name], coefficient, out=term, dtype=np.float64)
            np.add(total, term, out=total)


class WeightedAverage:
    """:func:`weighted_average` fed one delta at a time, in the order of its weights.

    The weights (and scales) are the whole round's and known up front: the divisor
    ``Σ wᵢ`` is, and a weight may depend on every claim of the round (a capped count).
    """

    def __init__(
        self, weights: Sequence[float], spec: ModelSpec, scales: Sequence[float] | None = None
    ) -> None:
        if not weights:
            raise AggregationError("cannot average zero updates")
        if scales is None:
            scales = [1.0] * len(weights)
        if len(scales) != len(weights):
            raise AggregationError("need exactly one scale per update")
        self.total = math.fsum(float(w) for w in weights)
        if not self.total > 0:
            raise AggregationError("weights must sum to a positive number")
        self.coefficients = [float(w) * float(s) for w, s in zip(weights, scales, strict=True)]
        self._sum = WeightedSum(spec)
        self._added = 0

    def add(self, delta: Mapping[str, np.ndarray]) -> None:
        """Add the next delta, with the next weight and scale."""
        if self._added == len(self.coefficients):
            raise AggregationError("more updates than weights")
        self._sum.add(delta, self.coefficients[self._added])
        self._added += 1

    def result(self) -> Weights:
        """``Σ wᵢ·sᵢ·δᵢ / Σ wᵢ``, divided once in float64 and rounded once to float32."""
        if self._added != len(self.coefficients):
            raise AggregationError("need exactly one weight per update")
        return {
            name: np.divide(total, self.total).astype(np.float32)
            for name, total in self._sum.sums.items()
        }


def weighted_average(
    deltas: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[float],
    spec: ModelSpec,
    scales: Sequence[float] | None = None,
) -> Weights:
    """``Σ wᵢ·sᵢ·δᵢ / Σ wᵢ``, bitwise reproducible, returned as float32.

    ``weights`` are usually sample counts; ``scales`` (default 1) shrink single
    updates, e.g. to clip them to a norm bound, without changing their weight.
    Each client's coefficient ``wᵢ·sᵢ`` is one float64 product; the tensors are
    accumulated in float64 in the given order by :class:`WeightedSum`, divided once by
    ``Σ wᵢ`` and rounded once to float32.
    """
    if not deltas:
        raise AggregationError("cannot average zero updates")
    if len(weights) != len(deltas):
        raise AggregationError("need exactly one weight per update")
    average = WeightedAverage(weights, spec, scales)
    for delta in deltas:
        average.add(delta)
    return average.result()


def _flat_float64(tensor: np.ndarray) -> np.ndarray:
    """A C-ordered 1-D float64 copy: ``np.sum`` follows memory order, so fix the order."""
    return np.ascontiguousarray(tensor, dtype=np.float64).reshape(-1)


def dot(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], spec: ModelSpec) -> float:
    """``⟨a, b⟩`` over all tensors: elementwise float64 products, one pairwise ``np.sum``
    per C-ordered tensor, and a correctly rounded ``math.fsum`` across tensors."""
    return math.fsum(
        float(np.sum(np.multiply(_flat_float64(a[name]), _flat_float64(b[name])))) for name in spec
    )


def widened(weights: Mapping[str, np.ndarray], spec: ModelSpec) -> Weights:
    """Every tensor as the C-ordered 1-D float64 vector :func:`dot` multiplies: for a delta
    that many others are multiplied with, widened once."""
    return {name: _flat_float64(weights[name]) for name in spec}


def dots_with(
    delta: Mapping[str, np.ndarray], others: Sequence[Weights], spec: ModelSpec
) -> tuple[float, list[float]]:
    """``dot(delta, delta, spec)`` and ``[dot(delta, other, spec) for other in others]``,
    bit for bit, each ``other`` :func:`widened` already: ``delta`` is widened once per tensor
    and every product formed in one scratch vector, the same contiguous vector
    :func:`dot` sums."""
    own: list[float] = []
    crossed: list[list[float]] = [[] for _ in others]
    for name in spec:
        vector = _flat_float64(delta[name])
        scratch = np.empty_like(vector)
        own.append(float(np.sum(np.multiply(vector, vector, out=scratch))))
        for sums, other in zip(crossed, others, strict=True):
            sums.append(float(np.sum(np.multiply(vector, other[name], out=scratch))))
    return math.fsum(own), [math.fsum(sums) for sums in crossed]


def squared_distance(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], spec: ModelSpec
) -> float:
    """``‖a − b‖²`` over all tensors, computed like :func:`dot` (no matmul, no BLAS)."""
    return math.fsum(
        float(np.sum(np.square(_flat_float64(a[name]) - _flat_float64(b[name])))) for name in spec
    )


def squared_distances_to(
    target: Mapping[str, np.ndarray],
    deltas: Sequence[Mapping[str, np.ndarray]],
    spec: ModelSpec,
) -> list[float]:
    """``[squared_distance(delta, target, spec) for delta in deltas]``, bit for bit.

    The deltas are widened (exactly) into the rows of one float64 scratch block, about
    :data:`DISTANCE_BLOCK_BYTES`, and ``(x − t)²`` is formed in place for the whole block
    at once (``(x − t)² = (t − x)²`` exactly), so a small tensor costs a few ufunc calls
    per block of clients rather than per client. Each row is then summed on its own, the
    same contiguous 1-D vector :func:`squared_distance` sums.
    """
    per_update: list[list[float]] = [[] for _ in deltas]
    for name in spec:
        reference = _flat_float64(target[name])
        rows_per_block = max(1, DISTANCE_BLOCK_BYTES // max(1, reference.nbytes))
        scratch = np.empty((min(rows_per_block, len(deltas)), reference.size))
        for start in range(0, len(deltas), rows_per_block):
            chunk = deltas[start : start + rows_per_block]
            rows = scratch[: len(chunk)]
            for row, delta in zip(rows, chunk, strict=True):
                np.copyto(row, np.asarray(delta[name]).reshape(-1), casting="same_kind")
            np.subtract(rows, reference, out=rows)
            np.square(rows, out=rows)
            for sums, row in zip(per_update[start : start + len(chunk)], rows, strict=True):
                sums.append(float(np.add.reduce(row)))
    return [math.fsum(sums) for sums in per_update]


def distance_scores(
    updates: Sequence[ClientUpdate], aggregate: Mapping[str, np.ndarray], spec: ModelSpec
) -> dict[str, dict[str, float]]:
    """Each update's L2 distance to ``aggregate``, nine significant digits: the score every
    rule that accepts all updates reports."""
    squared = squared_distances_to(aggregate, [update.delta for update in updates], spec)
    return {
        update.client_id: {"distance_to_aggregate": round_significant(math.sqrt(distance))}
        for update, distance in zip(updates, squared, strict=True)
    }


def l2_norm(delta: Mapping[str, np.ndarray], spec: ModelSpec) -> float:
    """Euclidean norm over all tensors, rounded to nine significant digits."""
    return norm_of_square(dot(delta, delta, spec))


def norm_of_square(squared_norm: float) -> float:
    """The norm :func:`l2_norm` reports for a delta whose :func:`dot` with itself is
    ``squared_norm``."""
    return round_significant(math.sqrt(max(squared_norm, 0.0)))


DISTANCE_BLOCK_BYTES = 1 << 20
""":func:`squared_distances_to` widens about this many bytes of float64 rows at a time: on
the 2-core benchmark machine, 1 MiB took the scores of 300 clients of 20k coordinates from
9.6 to 7.9 ms (64 KiB: 10.2, 2 MiB: 7.8) and left 100 clients of 100k unchanged (11 ms)."""

CLIENT_BLOCK_BYTES = 1 << 20
"""Order statistics work on the clients' values a block of coordinates (1 MiB) at a time:
filled, sorted and summed while still in cache (of 256 KiB to 4 MiB, the fastest on the
2-core benchmark machine, whose cores have 512 KiB of L2 each)."""


def median_of(values: Sequence[float]) -> float:
    """Median of a short list, computed in plain Python (sorting is exact)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def linear_combination(
    deltas: Sequence[Mapping[str, np.ndarray]], coefficients: Sequence[float], spec: ModelSpec
) -> Weights:
    """``Σ cᵢ·δᵢ`` in float64, kept in float64 for iterative rules (Weiszfeld, clipping).

    Accumulated by :class:`WeightedSum` like :func:`weighted_average`, so the bytes are the
    same on every machine.
    """
    if len(coefficients) != len(deltas):
        raise AggregationError("need exactly one coefficient per update")
    combined = WeightedSum(spec)
    for delta, coefficient in zip(deltas, coefficients, strict=True):
        combined.add(delta, float(coefficient))
    return combined.sums


def as_float32(weights: Mapping[str, np.ndarray]) -> Weights:
    """Each tensor rounded once to float32, the type every aggregate is returned in."""
    return {name: np.asarray(tensor).astype(np.float32) for name, tensor in weights.items()}

"""Reproducible arithmetic shared by every aggregator.

Committee members on different machines recompute the aggregate and compare
bytes, so nothing here may depend on BLAS, thread counts or reduction order:

* sums over clients are explicit Python loops in submission order, each step
  one elementwise float64 ufunc (no matmul, no ``np.sum`` over the client axis,
  no fused multiply-add), rounded to float32 once at the end;
* sums over parameters (norms, dot products, distances) use one ``np.sum`` per
  tensor, flattened to a C-ordered float64 vector first (``np.sum`` follows the
  memory layout; on a 1-D contiguous vector its pairwise order is fixed by the
  length), and combine the tensors with the correctly rounded ``math.fsum``;
* order statistics over clients (median, trimmed mean) sort or partition each
  coordinate's client values, which is exact; of the two zeros, −0.0 counts as the
  smaller, read from the unsorted values (a vectorised sort may swap one zero for
  the other);
* any float that feeds a decision is first rounded with :func:`round_score` or
  :func:`round_significant`, so that only a difference larger than the
  documented precision can change who is trusted.

Faster paths elsewhere (the BLAS Gram matrix of :mod:`flare.aggregation.distances`)
only ever steer which of these values get computed, never replace them.
"""

import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

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

    One float64 scratch vector per tensor replaces the two float64 copies per pair:
    ``(x − t)²`` is formed in place (``x`` widened exactly first, and
    ``(x − t)² = (t − x)²`` exactly) and summed as the same contiguous 1-D vector.
    """
    per_update: list[list[float]] = [[] for _ in deltas]
    for name in spec:
        reference = _flat_float64(target[name])
        scratch = np.empty_like(reference)
        for sums, delta in zip(per_update, deltas, strict=True):
            np.copyto(scratch, np.asarray(delta[name]).reshape(-1), casting="same_kind")
            np.subtract(scratch, reference, out=scratch)
            np.square(scratch, out=scratch)
            sums.append(float(np.sum(scratch)))
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
    return round_significant(math.sqrt(max(dot(delta, delta, spec), 0.0)))


CLIENT_BLOCK_BYTES = 1 << 20
"""Order statistics work on the clients' values a block of coordinates (1 MiB) at a time:
filled, sorted and summed while still in cache (of 256 KiB to 4 MiB, the fastest on the
2-core benchmark machine, whose cores have 512 KiB of L2 each)."""


@dataclass(frozen=True)
class ClientBlock:
    """A block of coordinates of one tensor, one row per coordinate.

    ``values[c, k]`` is client ``k``'s value at coordinate ``coordinates.start + c``
    until the caller sorts or partitions the rows (both exact); each row is
    contiguous, which sorts faster than gathering a column per coordinate.
    """

    coordinates: slice
    values: np.ndarray


def client_blocks(deltas: Sequence[Mapping[str, np.ndarray]], name: str) -> Iterator[ClientBlock]:
    """Tensor ``name`` of every client, flattened, a block of coordinates at a time.

    float16/32/64 values are kept in their common type (widening is exact and keeps
    the order); wider types are rounded to float64, as everywhere else here. The
    block's array is reused: finish with one block before asking for the next.
    """
    sources = flat_sources(deltas, name)
    dtype = block_dtype(sources)
    size = sources[0].size
    width = max(1, CLIENT_BLOCK_BYTES // (len(sources) * dtype.itemsize))
    block = np.empty((min(width, size), len(sources)), dtype=dtype)
    for start in range(0, size, width):
        stop = min(size, start + width)
        values = block[: stop - start]
        np.stack([source[start:stop] for source in sources], axis=1, out=values)
        yield ClientBlock(slice(start, stop), values)


def flat_sources(deltas: Sequence[Mapping[str, np.ndarray]], name: str) -> list[np.ndarray]:
    """Tensor ``name`` of every client, flattened (a view where the layout allows)."""
    return [np.asarray(delta[name]).reshape(-1) for delta in deltas]


def block_dtype(sources: Sequence[np.ndarray]) -> np.dtype:
    """The type the clients' values are ordered in: their common type, at most float64."""
    dtype = np.result_type(*sources)
    return np.dtype(np.float64) if dtype.itemsize > 8 else dtype


@dataclass(frozen=True)
class SignCounts:
    """Per coordinate, how many clients sent a value below zero, at most zero, and with
    its sign bit set (negative or −0.0), counted one client tensor at a time."""

    below_zero: np.ndarray
    up_to_zero: np.ndarray
    sign_bit: np.ndarray

    @classmethod
    def of(cls, sources: Sequence[np.ndarray]) -> "SignCounts":
        size = sources[0].size
        totals = np.zeros((3, size), dtype=np.int32)
        # counted in bytes (one add per client, no widening), carried into the totals
        # before a byte could overflow
        partial = np.zeros((3, size), dtype=np.uint8)
        flags = np.empty(size, dtype=bool)
        for index, source in enumerate(sources):
            for test, count in zip((np.less, np.less_equal), partial[:2], strict=True):
                test(source, 0, out=flags)
                np.add(count, flags.view(np.uint8), out=count)
            np.signbit(source, out=flags)
            np.add(partial[2], flags.view(np.uint8), out=partial[2])
            if index % 255 == 254:
                np.add(totals, partial, out=totals)
                partial.fill(0)
        np.add(totals, partial, out=totals)
        return cls(*totals)

    def zero_at(self, position: int) -> np.ndarray:
        """Where the ``position``-th smallest value (0-based) is a zero."""
        return (self.below_zero <= position) & (position < self.up_to_zero)


def coordinate_median(deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec) -> Weights:
    """Per coordinate, the median over clients, in float64.

    Selection (a partition at the middle; with an even count the largest value below
    it is the other middle one) is exact; with an even count the two middle values
    are averaged by one float64 add and one halving. Counting each coordinate's
    negative values and zeros first places its middle values among the zeros or not:
    when most middle values are zeros (sparse updates), only the other coordinates are
    gathered and partitioned.
    """
    count = len(deltas)
    middle = count // 2
    positions = (middle,) if count % 2 else (middle - 1, middle)
    median: Weights = {}
    for name, shape in spec.items():
        sources = flat_sources(deltas, name)
        signs = SignCounts.of(sources)
        # selected[-1] is the value at the middle; with an even count selected[0] is the
        # one below it
        selected = np.zeros((len(positions), sources[0].size), dtype=np.float64)
        at_zero = np.logical_and.reduce([signs.zero_at(position) for position in positions])
        needed = np.flatnonzero(~at_zero)
        # gathering costs more per value than copying a slice: past half, select them all
        blocks = (
            ((block.coordinates, block.values) for block in client_blocks(deltas, name))
            if 2 * needed.size > at_zero.size
            else gathered_blocks(sources, needed)
        )
        for coordinates, values in blocks:
            values.partition(middle, axis=1)
            selected[-1, coordinates] = values[:, middle]
            if len(positions) == 2:
                selected[0, coordinates] = values[:, :middle].max(axis=1)
        for row, position in zip(selected, positions, strict=True):
            signed_zeros(row, signs.sign_bit, position)
        result = selected[0] if count % 2 else (selected[0] + selected[1]) / 2.0
        median[name] = result.reshape(shape)
    return median


def gathered_blocks(
    sources: Sequence[np.ndarray], coordinates: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``coordinates`` of every source, a block at a time, as :func:`client_blocks` lays
    them out: the block's coordinates and their values, one row per coordinate."""
    if not coordinates.size:
        return
    dtype = block_dtype(sources)
    width = max(1, CLIENT_BLOCK_BYTES // (len(sources) * dtype.itemsize))
    block = np.empty((min(width, coordinates.size), len(sources)), dtype=dtype)
    for start in range(0, coordinates.size, width):
        chosen = coordinates[start : start + width]
        values = block[: chosen.size]
        np.stack([source[chosen] for source in sources], axis=1, out=values)
        yield chosen, values


def signed_zeros(selected: np.ndarray, sign_bit: np.ndarray, position: int) -> None:
    """Give each zero of ``selected``, the ``position``-th smallest values, its sign in
    place, −0.0 ordered before +0.0.

    A sort or partition compares the two zeros as equal, and numpy's vectorised kernels
    (chosen by CPU) may even return one in place of the other, so the sign is read from
    ``sign_bit``, how many values at each coordinate have their sign bit set, counted
    from the untouched updates: the ``position``-th value is −0.0 exactly when more than
    ``position`` of them are negative or −0.0.
    """
    zeros = selected == 0.0
    selected[zeros] = np.where(sign_bit[zeros] > position, -0.0, 0.0)


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

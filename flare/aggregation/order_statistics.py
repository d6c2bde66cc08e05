"""The coordinate-wise median over clients, exact, a block of coordinates at a time.

Selection (sorting or partitioning each coordinate's client values) is exact, so every
committee member computes the same bytes. Of the two zeros, −0.0 counts as the smaller;
its sign is read from counts taken before anything reorders the values, because
numpy's vectorised kernels (chosen by CPU) may return one zero in place of the other.
See :mod:`flare.aggregation.arithmetic` for the rules every aggregator's arithmetic
follows.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from flare.aggregation.arithmetic import CLIENT_BLOCK_BYTES
from flare.tensors import ModelSpec, Weights


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
    the order); wider types are rounded to float64, as in the shared arithmetic. The
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

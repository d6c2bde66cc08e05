"""The coordinate-wise median over clients, exact, a block of coordinates at a time.

Selection (sorting or partitioning each coordinate's client values) is exact, so every
committee member computes the same bytes. Of the two zeros, −0.0 counts as the smaller;
a zero's sign is read from how many clients' own values there have their sign bit set,
never from the reordered values, because numpy's vectorised kernels (chosen by CPU) may
return one zero in place of the other.
See :mod:`flare.aggregation.arithmetic` for the rules every aggregator's arithmetic
follows.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from flare.aggregation.arithmetic import CLIENT_BLOCK_BYTES
from flare.tensors import ModelSpec, Weights

SORTED_ROWS_UP_TO = 256
"""Rows of at most this many clients are sorted, longer ones partitioned: on the 2-core
benchmark machine numpy's vectorised sort of a row beat its partition up to 256 values (at
100 clients 0.65 against 0.80 ms per MiB of float32 values, the partition's time including
the even count's second pass for the value below the middle) and lost beyond (at 300
clients 1.15 against 0.89)."""


BLOCK_COORDINATES_AT_LEAST = 1024
"""A block spans at least this many coordinates where four times
:data:`~flare.aggregation.arithmetic.CLIENT_BLOCK_BYTES` hold them: filling a block costs a
view and a copy call per client, which over narrower slices outweighs the cache (at 1,000
clients of 20k float32 coordinates, 262 coordinates a block against 1,048: the median 91
against 74 ms, the trimmed mean 175 against 146 ms, on the 2-core benchmark machine)."""


GATHERED_SIGNS_UP_TO = 0.25
"""Where at most this share of a tensor's coordinates has a zero median, their sign bits
are gathered from each client's tensor; where more has, every coordinate's are counted,
one contiguous pass per client, cheaper than gathering most of it."""


SPARSE_SHARE = 0.5
"""A tensor whose sampled clients send more zeros than this share is taken for sparse:
its signs are counted client by client first, and only the coordinates whose middle is
not a zero are gathered and ordered."""


@dataclass(frozen=True)
class ClientBlock:
    """A block of coordinates of one tensor, one row per coordinate.

    ``values[c, k]`` is client ``k``'s value at coordinate ``coordinates[c]`` until the
    caller sorts or partitions the rows (both exact); each row is contiguous, which
    sorts faster than gathering a column per coordinate.
    """

    coordinates: slice | np.ndarray
    values: np.ndarray


def client_blocks(tensors: Sequence[np.ndarray]) -> Iterator[ClientBlock]:
    """``tensors`` (one per client, all of one size), flattened, a block of coordinates
    (:func:`block_width` of them) at a time.

    float16/32/64 values are kept in their common type (widening is exact and keeps
    the order); wider types are rounded to float64, as in the shared arithmetic. The
    block's array is reused: finish with one block before asking for the next.
    """
    # concatenating column views fills a block without np.stack's expand_dims per client
    columns = [np.asarray(tensor).reshape(-1, 1) for tensor in tensors]
    dtype = block_dtype(columns)
    size = columns[0].shape[0]
    width = block_width(len(columns), dtype)
    block = np.empty((min(width, size), len(columns)), dtype=dtype)
    for start in range(0, size, width):
        stop = min(size, start + width)
        values = block[: stop - start]
        np.concatenate([column[start:stop] for column in columns], axis=1, out=values)
        yield ClientBlock(slice(start, stop), values)


def gathered_blocks(
    sources: Sequence[np.ndarray], coordinates: np.ndarray
) -> Iterator[ClientBlock]:
    """``coordinates`` of every flattened source, a block at a time, laid out as
    :func:`client_blocks` lays them out."""
    dtype = block_dtype(sources)
    width = block_width(len(sources), dtype)
    block = np.empty((min(width, coordinates.size), len(sources)), dtype=dtype)
    for start in range(0, coordinates.size, width):
        chosen = coordinates[start : start + width]
        values = block[: chosen.size]
        np.stack([source[chosen] for source in sources], axis=1, out=values)
        yield ClientBlock(chosen, values)


def block_width(clients: int, dtype: np.dtype) -> int:
    """Coordinates per block: :data:`~flare.aggregation.arithmetic.CLIENT_BLOCK_BYTES` of
    values, widened to :data:`BLOCK_COORDINATES_AT_LEAST` where that fits in four times
    as many bytes."""
    row_bytes = clients * dtype.itemsize
    widened = min(BLOCK_COORDINATES_AT_LEAST, 4 * CLIENT_BLOCK_BYTES // row_bytes)
    return max(1, CLIENT_BLOCK_BYTES // row_bytes, widened)


def block_dtype(sources: Sequence[np.ndarray]) -> np.dtype:
    """The type the clients' values are ordered in: their common type, at most float64."""
    dtype = np.result_type(*sources)
    return np.dtype(np.float64) if dtype.itemsize > 8 else dtype


@dataclass(frozen=True)
class SignCounts:
    """Per coordinate, how many clients sent a value below zero, at most zero, and with
    its sign bit set (negative or −0.0), counted before anything reorders the values."""

    below_zero: np.ndarray
    up_to_zero: np.ndarray
    sign_bit: np.ndarray

    @classmethod
    def of_clients(cls, sources: Sequence[np.ndarray]) -> "SignCounts":
        """The counts over flattened client tensors, one vectorised pass per client."""
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

    Selection (a sort or a partition of each coordinate's values) is exact; with an even
    count the two middle values are averaged by one float64 add and one halving.
    """
    count = len(deltas)
    middle = count // 2
    positions = (middle,) if count % 2 else (middle - 1, middle)
    median: Weights = {}
    for name, shape in spec.items():
        sources = [np.asarray(delta[name]).reshape(-1) for delta in deltas]
        # selected[-1] is the value at the middle; with an even count selected[0] is the
        # one below it
        selected = np.empty((len(positions), sources[0].size), dtype=np.float64)
        if mostly_zeros(sources):
            select_sparse(sources, positions, selected)
        else:
            for block in client_blocks(sources):
                select_rows(block.values, positions, selected[:, block.coordinates])
            sign_selected_zeros(selected, positions, sources)
        result = selected[0] if count % 2 else (selected[0] + selected[1]) / 2.0
        median[name] = result.reshape(shape)
    return median


def mostly_zeros(sources: Sequence[np.ndarray]) -> bool:
    """Whether a sample of about eight clients sends more than :data:`SPARSE_SHARE` zeros
    (a guess that only chooses the faster path: both give the same bytes)."""
    sample = sources[:: max(1, len(sources) // 8)]
    zeros = sum(np.count_nonzero(source == 0) for source in sample)
    return zeros > SPARSE_SHARE * sum(source.size for source in sample)


def sign_selected_zeros(
    selected: np.ndarray, positions: Sequence[int], sources: Sequence[np.ndarray]
) -> None:
    """Give each zero of ``selected`` (``selected[i]`` the ``positions[i]``-th smallest
    values) its sign, counting sign bits in ``sources`` only at the coordinates selected a
    zero: dense updates have few such coordinates, so no block is scanned for zeros."""
    zeros = np.flatnonzero((selected == 0.0).any(axis=0))
    if not zeros.size:
        return
    if GATHERED_SIGNS_UP_TO * sources[0].size < zeros.size:
        sign_bit = SignCounts.of_clients(sources).sign_bit[zeros]
    else:
        sign_bit = np.zeros(zeros.size, dtype=np.int64)
        for source in sources:
            sign_bit += np.signbit(source[zeros])
    for row, position in zip(selected, positions, strict=True):
        picked = row[zeros]
        signed_zeros(picked, sign_bit, position)
        row[zeros] = picked


def select_sparse(
    sources: Sequence[np.ndarray], positions: Sequence[int], selected: np.ndarray
) -> None:
    """The selection for a mostly-zero tensor: the sign counts of every coordinate place
    each coordinate's middle values among the zeros or not, and only the coordinates
    whose middles are not all zeros are ordered."""
    signs = SignCounts.of_clients(sources)
    at_zero = np.logical_and.reduce([signs.zero_at(position) for position in positions])
    needed = np.flatnonzero(~at_zero)
    selected[:, at_zero] = 0.0
    # gathering costs more per value than copying a slice: past half, order them all
    blocks = (
        client_blocks(sources)
        if 2 * needed.size > at_zero.size
        else gathered_blocks(sources, needed)
    )
    for block in blocks:
        picked = np.empty((len(positions), block.values.shape[0]), dtype=np.float64)
        select_rows(block.values, positions, picked)
        selected[:, block.coordinates] = picked
    for row, position in zip(selected, positions, strict=True):
        signed_zeros(row, signs.sign_bit, position)


def select_rows(values: np.ndarray, positions: Sequence[int], selected: np.ndarray) -> None:
    """``selected[i]``: per row of ``values``, the ``positions[i]``-th smallest value,
    reordering the rows; a zero's sign is left to :func:`signed_zeros`."""
    middle = positions[-1]
    if values.shape[1] <= SORTED_ROWS_UP_TO:
        values.sort(axis=1)
        selected[:] = values[:, positions].T
    else:
        values.partition(middle, axis=1)
        selected[-1] = values[:, middle]
        if len(positions) == 2:
            selected[0] = values[:, :middle].max(axis=1)


def signed_zeros(selected: np.ndarray, sign_bit: np.ndarray, position: int) -> None:
    """Give each zero of ``selected``, the ``position``-th smallest values, its sign in
    place, −0.0 ordered before +0.0.

    A sort or partition compares the two zeros as equal, and numpy's vectorised kernels
    (chosen by CPU) may even return one in place of the other, so the sign is read from
    ``sign_bit``, how many values at each coordinate have their sign bit set, counted
    before the values were reordered: the ``position``-th value is −0.0 exactly when more
    than ``position`` of them are negative or −0.0.
    """
    zeros = selected == 0.0
    selected[zeros] = np.where(sign_bit[zeros] > position, -0.0, 0.0)

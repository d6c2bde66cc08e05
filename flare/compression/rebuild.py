"""Dense float32 tensors from what a blob stores, bit for bit the same on every machine.

A low-rank tensor is rebuilt as one float64 matrix product whose every partial sum is an
exact integer multiple of one power of two, below 2^53 times it: float64 holds each such
sum exactly, so the product is the exact value whatever the summation order, blocking,
thread count or fused multiply-add of the BLAS, and rounding it once to float32 gives the
same bits everywhere (the argument of :mod:`flare.models.exact`).

* ``lowrank`` factors must lie on a fixed-point grid: every entry of a factor is an
  integer times the factor's power-of-two step, below ``2^bits`` in magnitude, where the
  step follows from the factor's largest entry and ``bits`` from the rank
  (:func:`factor_bits`). The encoder rounds its factors onto that grid
  (:func:`onto_grid`); the decoder refuses a factor that is off it.
* ``lowrank-q8`` factors are int8 codes; each column pair's product of scales is rounded
  onto one grid per tensor, which bounds every partial sum the same way.

The encoders use the same rebuild for their error feedback, so they subtract exactly what
every decoder will add. What only the values can show is checked here too: sparse
indices in range and strictly increasing, int8 codes within the symmetric range, scales
not negative.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from flare.compression.base import MalformedUpdateError
from flare.compression.layout import LOW_RANK, LOW_RANK_Q8, SPARSE, TensorLayout

EXACT_BITS = 53
"""float64 holds every integer of magnitude up to 2^53 exactly."""

FACTOR_BITS = 24
"""Most bits a float32 factor entry can carry: its significand."""

Q8_LEVELS = 127
"""int8 codes lie in [-127, 127]: symmetric, so -128 is never written and always refused."""

Q8_PRODUCT_BITS = 14
"""A product of two codes is below 127^2 < 2^14 in magnitude."""

FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def rank_bits(rank: int) -> int:
    """Bits that summing ``rank`` terms adds to a product: ceil(log2(rank))."""
    return (rank - 1).bit_length()


def factor_bits(rank: int) -> int:
    """Bits of each ``lowrank`` factor's grid: the most with ``rank * 2^(2 bits) <= 2^53``.

    24 (float32's significand) up to rank 32, then one fewer for every doubling of the rank.
    """
    return min(FACTOR_BITS, (EXACT_BITS - rank_bits(rank)) // 2)


def grid_step(largest: float, bits: int) -> float:
    """The power-of-two step that puts ``largest`` (> 0) in ``[2^(bits-1), 2^bits)`` steps."""
    return math.ldexp(1.0, math.frexp(largest)[1] - bits)


def largest_magnitude(array: np.ndarray) -> float:
    """``max |array|`` (0 for an empty array), without a temporary of its size."""
    if not array.size:
        return 0.0
    return max(float(array.max()), -float(array.min()))


@dataclass(frozen=True)
class GridFactor:
    """A ``lowrank`` factor on its grid: the float32 values that travel, the same values in
    float64 (exact), and their largest magnitude."""

    stored: np.ndarray
    wide: np.ndarray
    largest: float


def onto_grid(factor: np.ndarray, bits: int) -> GridFactor:
    """``factor`` (float64) rounded onto its ``bits``-bit grid: the encoder's side.

    Rounding can carry the largest entry up to ``2^bits`` steps, which doubles the step the
    decoder derives from it; the factor is then rounded onto that coarser grid instead. A
    factor whose largest entry is below float32's smallest normal travels as zeros (its
    grid would be finer than float32 can hold). Raises :class:`MalformedUpdateError` for a
    factor beyond float32's range.
    """
    largest = largest_magnitude(factor)
    if not largest <= FLOAT32_MAX:  # NaN too
        raise MalformedUpdateError("overflows float32")
    if largest < FLOAT32_TINY:
        zeros = np.zeros(factor.shape)
        return GridFactor(zeros.astype(np.float32), zeros, 0.0)
    step = grid_step(largest, bits)
    # rounding is monotonic, so the largest entry's code is the largest code
    if round(largest / step) >= 2**bits:
        step *= 2.0
    largest = round(largest / step) * step
    if largest > FLOAT32_MAX:
        raise MalformedUpdateError("overflows float32")
    wide = np.rint(factor * (1.0 / step))
    wide *= step
    return GridFactor(wide.astype(np.float32), wide, largest)


def on_grid(factor: np.ndarray, bits: int) -> GridFactor:
    """A stored float32 ``factor``, after checking that it lies on its ``bits``-bit grid: the
    decoder's side. Raises :class:`MalformedUpdateError` where it does not."""
    largest = largest_magnitude(factor)
    wide = factor.astype(np.float64)
    if largest:
        scaled = wide * (1.0 / grid_step(largest, bits))  # exact: a power of two
        if (np.rint(scaled) != scaled).any():
            raise MalformedUpdateError(f"off its {bits}-bit fixed-point grid")
    return GridFactor(factor, wide, largest)


def low_rank_product(p: GridFactor, q: GridFactor) -> np.ndarray:
    """The ``lowrank`` reconstruction ``P @ Q.T`` of factors on their grids, exactly, rounded
    once to float32. Raises :class:`MalformedUpdateError` where it overflows float32."""
    rank = p.stored.shape[1]
    bound = rank * p.largest * q.largest
    if rank == 1:
        return exact_product(p.stored, q.stored, bound)
    return exact_product(p.wide, q.wide, bound)


def exact_product(left: np.ndarray, right: np.ndarray, bound: float) -> np.ndarray:
    """``left @ right.T`` rounded once to float32, zeros as +0; every partial sum must be exact.

    ``bound`` is an upper bound on every entry's magnitude: only where it reaches float32's
    range is the result searched for an overflow, which raises :class:`MalformedUpdateError`.
    One-column factors may come as float32: a float32 product is the exact product rounded
    once, as the float64 route gives it, without a layer-sized float64 temporary.
    """
    with np.errstate(over="ignore"):  # beyond float32's range rounds to inf, refused below
        # numpy's broadcasting multiplies one-column factors faster than its matrix
        # product does with an inner dimension of one
        product = left * right.T if left.shape[1] == 1 else left @ right.T
        rebuilt = product.astype(np.float32, copy=False)
    # A zero entry's sign would depend on how the BLAS starts its sums (or on a one-column
    # product's signs); adding +0 makes every zero +0.
    np.add(rebuilt, np.float32(0.0), out=rebuilt)
    if bound >= FLOAT32_MAX / 2 and not np.isfinite(rebuilt).all():
        raise MalformedUpdateError("overflows float32")
    return rebuilt


def low_rank_matrix(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The ``lowrank`` reconstruction of stored float32 factors, refusing either off its grid.

    Raises :class:`MalformedUpdateError` for a factor off its grid or an overflow.
    """
    bits = factor_bits(p.shape[1])
    checked = []
    for name, factor in (("P", p), ("Q", q)):
        try:
            checked.append(on_grid(factor, bits))
        except MalformedUpdateError as exc:
            raise MalformedUpdateError(f"has factor {name} {exc}") from None
    return low_rank_product(*checked)


def quantised_matrix(p_codes: np.ndarray, q_codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The ``lowrank-q8`` reconstruction ``sum_k codes_P[:,k] codes_Q[:,k] (s_P[k] s_Q[k])``.

    Each column pair's scale product (exact in float64) is rounded onto one grid of
    ``39 - ceil(log2(rank))`` bits, set by the largest; with codes below 2^7 every partial
    sum is then an integer multiple of that grid's step below 2^53 of them.
    """
    rank = p_codes.shape[1]
    products = scales[0].astype(np.float64) * scales[1].astype(np.float64)
    largest = largest_magnitude(products)
    if largest:
        step = grid_step(largest, EXACT_BITS - Q8_PRODUCT_BITS - rank_bits(rank))
        products = np.rint(products * (1.0 / step)) * step
    left = p_codes.astype(np.float64) * products
    bound = rank * Q8_LEVELS * Q8_LEVELS * largest_magnitude(products)
    return exact_product(left, q_codes.astype(np.float64), bound)


def dequantise_columns(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``codes * scales`` per column in float64: exact (8-bit times 24-bit significands)."""
    return codes.astype(np.float64) * scales.astype(np.float64)


def quantise_columns(factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and float32 per-column scales with ``codes * scales ~ factor``.

    Each column's scale is its largest magnitude over :data:`Q8_LEVELS`, so every code is
    a rounded multiple of it; an all-zero column (or one too small for a float32 scale)
    gets scale 0 and zero codes.
    """
    with np.errstate(over="ignore"):
        scales = (np.abs(factor).max(axis=0) / Q8_LEVELS).astype(np.float32)
    if not np.isfinite(scales).all():
        raise MalformedUpdateError("a factor's scale overflows float32")
    divisor = scales.astype(np.float64)
    ratio = np.divide(factor, divisor, out=np.zeros_like(factor), where=divisor > 0)
    codes = np.clip(np.rint(ratio), -Q8_LEVELS, Q8_LEVELS).astype(np.int8)
    return codes, scales


def rebuild_tensor(entry: TensorLayout, stored: Mapping[str, np.ndarray]) -> np.ndarray:
    """The float32 tensor ``entry`` describes, from its stored tensors (already shape-checked).

    Raises :class:`MalformedUpdateError` for content no encoder writes and for a
    reconstruction that overflows float32.
    """
    parts = [stored[name] for name in entry.stored_tensors()]
    try:
        if entry.kind == SPARSE:
            return _rebuild_sparse(entry, *parts)
        if entry.kind == LOW_RANK:
            return low_rank_matrix(*parts).reshape(entry.shape)
        if entry.kind == LOW_RANK_Q8:
            return _rebuild_quantised(*parts).reshape(entry.shape)
    except MalformedUpdateError as exc:
        raise MalformedUpdateError(f"tensor {entry.name!r} {exc}") from None
    return parts[0]


def _rebuild_quantised(p_codes: np.ndarray, q_codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    for codes in (p_codes, q_codes):
        if (codes == -Q8_LEVELS - 1).any():
            raise MalformedUpdateError("holds the int8 code -128")
    if np.signbit(scales).any():
        raise MalformedUpdateError("has a negative scale")
    return quantised_matrix(p_codes, q_codes, scales)


def _rebuild_sparse(entry: TensorLayout, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
    if indices.size and (indices[0] < 0 or indices[-1] >= entry.size):
        raise MalformedUpdateError("has an index outside the tensor")
    if (np.diff(indices) <= 0).any():
        raise MalformedUpdateError("has indices not strictly increasing")
    dense = np.zeros(entry.size, dtype=np.float32)
    dense[indices] = values
    return dense.reshape(entry.shape)

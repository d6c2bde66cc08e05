"""Dense float32 tensors from what a blob stores, bit for bit the same on every machine.

A low-rank tensor is rebuilt as one float32 matrix product whose every partial sum is an
exact integer multiple of one power of two, below 2^24 of them: float32 holds each such
sum exactly, so the BLAS product (sgemm) is the exact value whatever its summation order,
blocking, thread count or fused multiply-add, and the same bits everywhere (the argument
of :mod:`flare.models.exact`, on float32's 24-bit significand instead of float64's 53).
Where that step falls below float32's smallest subnormal, or a partial sum could pass
float32's largest value (forged or extreme factors only), the same sums are taken in
float64, which holds them exactly too, and rounded once to float32: either way the result
is the exact value rounded once.

* ``lowrank`` factors must lie on a fixed-point grid: every entry of a factor is an
  integer times the factor's power-of-two step, below ``2^bits`` in magnitude, where the
  step follows from the factor's largest entry and ``bits`` from the rank
  (:func:`factor_bits`). The encoder rounds its factors onto that grid
  (:func:`onto_grid`); the decoder refuses a factor that is off it.
* ``lowrank-q8`` factors are int8 codes; each column pair's product of scales is rounded
  onto one grid per tensor (:func:`scale_products`), which bounds every partial sum the
  same way.

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

FLOAT32_BITS = 24
"""float32 holds every integer of magnitude up to 2^24 exactly: its significand."""

Q8_LEVELS = 127
"""int8 codes lie in [-127, 127]: symmetric, so -128 is never written and always refused."""

Q8_PRODUCT_BITS = 14
"""A product of two codes is below 127^2 < 2^14 in magnitude."""

FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
FLOAT32_SUBNORMAL = math.ldexp(1.0, -149)
"""float32's smallest subnormal: every float32 is an integer multiple of it."""


def rank_bits(rank: int) -> int:
    """Bits that summing ``rank`` terms adds to a product: ceil(log2(rank))."""
    return (rank - 1).bit_length()


def factor_bits(rank: int) -> int:
    """Bits of each ``lowrank`` factor's grid: the most with ``rank * 2^(2 bits) <= 2^24``.

    12 at rank 1, 11 up to rank 4, 10 up to 16, one fewer for every fourfold rank after:
    7 at :data:`flare.compression.powersgd.MAX_RANK` (1024).
    """
    return (FLOAT32_BITS - rank_bits(rank)) // 2


def scale_product_bits(rank: int) -> int:
    """Bits of a ``lowrank-q8`` tensor's scale-product grid: ``24 - 14 - ceil(log2 rank)``,
    so that ``rank`` code products times it stay below 2^24 steps (7 at rank 8, 1 at 512)."""
    return FLOAT32_BITS - Q8_PRODUCT_BITS - rank_bits(rank)


def grid_step(largest: float, bits: int) -> float:
    """The power-of-two step that puts ``largest`` (> 0) in ``[2^(bits-1), 2^bits)`` steps."""
    return math.ldexp(1.0, math.frexp(largest)[1] - bits)


def largest_magnitude(array: np.ndarray) -> float:
    """``max |array|`` (0 for an empty array), for factor-sized arrays (one temporary)."""
    if not array.size:
        return 0.0
    return float(np.abs(array).max())


@dataclass(frozen=True)
class GridFactor:
    """A ``lowrank`` factor on its grid: the float32 values that travel, their largest
    magnitude and the grid's step (0 for an all-zero factor)."""

    stored: np.ndarray
    largest: float
    step: float


def onto_grid(factor: np.ndarray, bits: int) -> GridFactor:
    """``factor`` (float32 or float64) rounded onto its ``bits``-bit grid: the encoder's side.

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
        return GridFactor(np.zeros(factor.shape, dtype=np.float32), 0.0, 0.0)
    step = grid_step(largest, bits)
    # rounding is monotonic, so the largest entry's code is the largest code
    if round(largest / step) >= 2**bits:
        step *= 2.0
    largest = round(largest / step) * step
    if largest > FLOAT32_MAX:
        raise MalformedUpdateError("overflows float32")
    # Scaled in float64, where 1/step cannot overflow; the codes (below 2^bits) times the
    # step (a power of two within float32's range) are then exact in float32.
    codes = np.multiply(factor, 1.0 / step, dtype=np.float64)
    np.rint(codes, out=codes)
    return GridFactor(np.multiply(codes, step, dtype=np.float32), largest, step)


def on_grid(factor: np.ndarray, bits: int) -> GridFactor:
    """A stored float32 ``factor``, after checking that it lies on its ``bits``-bit grid: the
    decoder's side. Raises :class:`MalformedUpdateError` where it does not."""
    largest = largest_magnitude(factor)
    if not largest:
        return GridFactor(factor, 0.0, 0.0)
    # A step below float32's smallest subnormal divides every float32. In float64, the
    # scaling by a power of two is exact for every float32 entry.
    step = max(grid_step(largest, bits), FLOAT32_SUBNORMAL)
    scaled = np.multiply(factor, 1.0 / step, dtype=np.float64)
    if (np.rint(scaled) != scaled).any():
        raise MalformedUpdateError(f"off its {bits}-bit fixed-point grid")
    return GridFactor(factor, largest, step)


def low_rank_product(p: GridFactor, q: GridFactor) -> np.ndarray:
    """The ``lowrank`` reconstruction ``P @ Q.T`` of factors on their grids, exactly, rounded
    once to float32. Raises :class:`MalformedUpdateError` where it overflows float32."""
    bound = p.stored.shape[1] * p.largest * q.largest
    if float32_holds(p.step * q.step, bound):
        return exact_product(p.stored, q.stored, bound)
    return exact_product(p.stored.astype(np.float64), q.stored.astype(np.float64), bound)


def float32_holds(step: float, bound: float) -> bool:
    """Whether float32 holds every partial sum of a product whose terms are integer multiples
    of ``step``, below 2^24 of them in every sum, and at most ``bound`` in magnitude."""
    return step >= FLOAT32_SUBNORMAL and bound <= FLOAT32_MAX


def exact_product(left: np.ndarray, right: np.ndarray, bound: float) -> np.ndarray:
    """``left @ right.T`` rounded once to float32, zeros as +0; every partial sum must be exact
    in the factors' type (float32, or float64 where float32 cannot hold them).

    ``bound`` is an upper bound on every entry's magnitude: only where it reaches float32's
    range is the result searched for an overflow, which raises :class:`MalformedUpdateError`.
    """
    # numpy's broadcasting multiplies one-column factors faster than its matrix product
    # does with an inner dimension of one
    if bound < FLOAT32_MAX / 2:
        product = left * right.T if left.shape[1] == 1 else left @ right.T
        rebuilt = product.astype(np.float32, copy=False)
    else:
        with np.errstate(over="ignore"):  # beyond float32's range rounds to inf, refused below
            product = left * right.T if left.shape[1] == 1 else left @ right.T
            rebuilt = product.astype(np.float32, copy=False)
        if not np.isfinite(rebuilt).all():
            raise MalformedUpdateError("overflows float32")
    # A zero entry's sign would depend on how the BLAS starts its sums (or on a one-column
    # product's signs); adding +0 makes every zero +0.
    np.add(rebuilt, np.float32(0.0), out=rebuilt)
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


def scale_products(scales: np.ndarray) -> tuple[np.ndarray, float]:
    """Each column pair's product of scales ``S[0,k] S[1,k]`` (exact in float64), rounded
    (half to even) onto the grid of :func:`scale_product_bits` set by the largest, and that
    grid's step (0 when every product is 0)."""
    products = scales[0].astype(np.float64) * scales[1]
    largest = largest_magnitude(products)
    if not largest:
        return products, 0.0
    step = grid_step(largest, scale_product_bits(scales.shape[1]))
    np.rint(np.multiply(products, 1.0 / step, out=products), out=products)
    products *= step
    return products, step


def raised_scales(p_scales: np.ndarray, q_scales: np.ndarray) -> np.ndarray:
    """``q_scales`` raised so that each product with P's scale, once on the grid of
    :func:`scale_products`, is at least the product asked for: the encoder's choice, so that
    Q's codes, counted in the step a decoder multiplies them by, do not clip. A scale that
    would pass float32's range so (a column far weaker than the strongest, next to a tiny
    scale of P's) stays as it was: the decoder may round its product down, even to zero,
    and that column's largest codes clip."""
    products = p_scales.astype(np.float64) * q_scales
    largest = largest_magnitude(products)
    if not largest:
        return q_scales
    bits = scale_product_bits(len(q_scales))
    step = grid_step(largest, bits)
    if math.ceil(largest / step) >= 2**bits:  # the decoder derives the doubled step then
        step *= 2.0
    wanted = np.ceil(products * (1.0 / step)) * step
    raised = np.divide(wanted, p_scales, out=q_scales.astype(np.float64), where=p_scales > 0)
    with np.errstate(over="ignore"):
        raised = raised.astype(np.float32)
    return np.where(np.isfinite(raised), raised, q_scales)


def quantised_matrix(p_codes: np.ndarray, q_codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The ``lowrank-q8`` reconstruction ``sum_k codes_P[:,k] codes_Q[:,k] d_k``, with ``d_k``
    the scale products on their grid (:func:`scale_products`).

    Each term is an integer multiple of the grid's step below 2^24 / rank of them, so every
    partial sum is exact in float32 (float64 where the step or the bound leave its range).
    """
    return quantised_product(p_codes, q_codes, *scale_products(scales))


def quantised_product(
    p_codes: np.ndarray, q_codes: np.ndarray, products: np.ndarray, step: float
) -> np.ndarray:
    """:func:`quantised_matrix` from the scale products on their grid and its step."""
    bound = p_codes.shape[1] * Q8_LEVELS * Q8_LEVELS * largest_magnitude(products)
    dtype = np.float32 if float32_holds(step, bound) else np.float64
    left = p_codes.astype(dtype) * products.astype(dtype)
    return exact_product(left, q_codes.astype(dtype), bound)


def dequantise_columns(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``codes * scales`` per column, in float32 (rounded: only the encoder's power step uses
    it, to compute ``Q`` from the ``P`` that travels)."""
    return codes.astype(np.float32) * scales


def column_scales(factor: np.ndarray) -> np.ndarray:
    """Each column's largest magnitude over :data:`Q8_LEVELS`, as float32: the step its codes
    count. Raises :class:`MalformedUpdateError` where a scale overflows float32."""
    with np.errstate(over="ignore"):
        scales = (np.abs(factor).max(axis=0) / Q8_LEVELS).astype(np.float32)
    if not np.isfinite(scales).all():
        raise MalformedUpdateError("a factor's scale overflows float32")
    return scales


def column_codes(factor: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """int8 codes of ``factor`` counting each column's step (float64), rounded half to even
    and clipped to [-127, 127]; a zero step gives zero codes."""
    reciprocals = np.divide(1.0, steps, out=np.zeros(steps.shape), where=steps > 0)
    ratio = np.multiply(factor, reciprocals, dtype=np.float64)
    np.rint(ratio, out=ratio)
    return np.clip(ratio, -Q8_LEVELS, Q8_LEVELS, out=ratio).astype(np.int8)


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

"""The arithmetic of exact inference and exact gradients: values quantised to integers held
in float64, their products exact whatever the summation order, and every other step one
correctly rounded IEEE operation. Why that gives the same bits on every machine is argued in
:mod:`flare.models.exact`.
"""

import functools
from collections.abc import Mapping

import numpy as np

from flare.errors import FlareError

EXACT_BITS = 53
"""float64 holds every integer of magnitude up to 2^53 exactly."""

MIN_BITS = 4
"""Fewest bits left to activations or weights before a layer is refused as too wide."""

FLUSH_BELOW = 2.0**-600
"""Between layers, magnitudes below this count as zero (see the module docstring)."""

LARGEST = float(np.finfo(np.float64).max)


class ExactInferenceError(FlareError, ValueError):
    """The weights or the features do not fit the model exact inference was built for."""


def product_bits(fan_in: int) -> tuple[int, int]:
    """Bits for a layer's activations and weights so that its sums of products stay exact.

    With ``|activation| <= 2^bx`` and ``|weight| <= 2^bw``, a sum of ``fan_in`` products is
    at most ``fan_in * 2^(bx + bw) <= 2^53`` in magnitude, and so is every partial sum.
    """
    if fan_in < 1:
        raise ExactInferenceError(f"a layer needs at least one input, got fan-in {fan_in}")
    total = EXACT_BITS - (fan_in - 1).bit_length()
    if total < 2 * MIN_BITS:
        raise ExactInferenceError(f"fan-in {fan_in} is too wide for exact float64 sums")
    return total // 2, total - total // 2


def quantise(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Integers (held as float64) and one exponent per leading-axis row.

    Row ``i`` is ``values[i] ≈ integers[i] * 2^-exponents[i]`` with ``|integers| <= 2^bits``
    and an error of at most half a unit, ``2^-(exponents[i] + 1)``. The exponent comes from
    the row's largest magnitude (exact), so the result is a pure function of the row.
    ``values`` must be finite float64.
    """
    rows = values.reshape(len(values), -1)
    peak = np.max(np.abs(rows), axis=1) if rows.shape[1] else np.zeros(len(values))
    return _quantised_rows(values, peak, bits)


def _quantised_rows(
    values: np.ndarray, peak: np.ndarray, bits: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`quantise` given each row's largest magnitude ``peak``; float64 integers, in
    ``out`` if given."""
    _, peak_exponent = np.frexp(peak)  # peak = m * 2^e with m in [0.5, 1), e = 0 for 0
    exponents = bits - peak_exponent.astype(np.int64)
    scales = power_of_two(exponents).reshape(-1, *([1] * (values.ndim - 1)))
    integers = np.multiply(values, scales, out=out, dtype=np.float64)
    return np.rint(integers, out=integers), exponents


def quantise_rectified_in_place(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`quantise` of ``np.maximum(values, 0)``, in ``values`` (settled float64 that the
    caller owns and gives up): the same integers and exponents without the two copies. A
    settled array holds no -0, so the rectified rows are their own magnitudes."""
    np.maximum(values, 0.0, out=values)
    rows = values.reshape(len(values), -1)
    peak = np.max(rows, axis=1) if rows.shape[1] else np.zeros(len(values))
    return _quantised_rows(values, peak, bits, out=values)


def power_of_two(exponents: np.ndarray) -> np.ndarray:
    """``2.0 ** exponents``, exactly; the exponents must lie in float64's normal range."""
    return np.ldexp(1.0, exponents)


def integer_matmul(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The product of two integer-valued float64 matrices whose sums stay within 2^53.

    Exact, so any BLAS and any summation order gives these same bits.
    """
    return left @ right


def exact_float64(values: np.ndarray) -> np.ndarray:
    """Input values as finite float64, the same whether or not a process flushes subnormals.

    A new array. Subnormals of the input type are flushed after converting, by comparing in
    float64, where they are normal numbers: a process that treats subnormal inputs as zero
    converts them to zero, one that does not finds them below the smallest normal.
    """
    values = np.asarray(values)
    converted = values.astype(np.float64)
    magnitude = np.abs(converted)
    non_finite = not magnitude.max(initial=0.0) <= LARGEST  # a NaN or an infinity: rare
    if non_finite:
        np.nan_to_num(converted, copy=False, nan=0.0)  # and infinities to +-LARGEST
    smallest = _smallest_kept(values.dtype)
    # A zero is written as +0. NaN's magnitude compares false (it is 0 already), and a NaN
    # makes the minimum NaN, so where there is one every magnitude is compared.
    if non_finite or magnitude.min(initial=smallest) < smallest:
        np.copyto(converted, 0.0, where=magnitude < smallest)
    return converted


@functools.cache
def _smallest_kept(dtype: np.dtype) -> float:
    """The smallest magnitude :func:`exact_float64` keeps of values of ``dtype``: the type's
    smallest normal (float64's for other types), and never below ``FLUSH_BELOW``."""
    source = dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)
    return max(float(np.finfo(source).tiny), FLUSH_BELOW)


def settled(values: np.ndarray) -> np.ndarray:
    """A layer's float64 output clipped to finite values, magnitudes below ``FLUSH_BELOW``
    set to zero: its largest magnitude then lies in ``[2^-600, 2^1024)`` or is zero."""
    return settle_in_place(np.array(values, dtype=np.float64))


def settle_in_place(values: np.ndarray) -> np.ndarray:
    """:func:`settled` on a float64 array the caller owns, without a copy; returns it."""
    magnitude = np.abs(values)
    non_finite = not magnitude.max(initial=0.0) <= LARGEST  # an overflow, rare
    if non_finite:  # clipping costs more than the check
        np.clip(values, -LARGEST, LARGEST, out=values)
    # a zero, say, is rare past a bias; a NaN would make the minimum NaN
    if non_finite or magnitude.min(initial=FLUSH_BELOW) < FLUSH_BELOW:
        np.copyto(values, 0.0, where=magnitude < FLUSH_BELOW)
    return values


def parameter_of(
    weights: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]
) -> np.ndarray:
    """Parameter ``name`` of ``weights`` as exact float64, refused if missing or misshapen."""
    return exact_float64(_checked_parameter(weights, name, shape))


def quantised_parameter(
    weights: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...], bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """``quantise(parameter_of(weights, name, shape), bits)``: the same integers and
    exponents, but for the sign of a zero where the tensor holds a subnormal.

    A float32 tensor whose every row peaks at a finite magnitude of at least
    ``2^(bits - 125)`` is quantised as it is, without its settled float64 copy: its peaks are
    then normal numbers, read alike whether or not a process treats subnormal inputs as zero,
    and a subnormal element scales to below a quarter, which rounds to a zero, as the zero it
    would have been flushed to does (but of its own sign, which no layer output keeps: each is
    settled, and a zero settles to +0). Any other tensor takes the general way.
    """
    tensor = _checked_parameter(weights, name, shape)
    if tensor.dtype == np.float32 and tensor.size:
        peak = np.max(np.abs(tensor.reshape(len(tensor), -1)), axis=1)
        if peak.min() >= _SMALLEST_FLOAT32_PEAK[bits] and peak.max() <= _LARGEST_FLOAT32:
            return _quantised_rows(tensor, peak, bits)
    return quantise(exact_float64(tensor), bits)


_LARGEST_FLOAT32 = float(np.finfo(np.float32).max)
# Below 2^(bits - 125) a row's scale 2^(bits - peak exponent) could lift a float32 subnormal
# (below 2^-126) to a quarter or more, where flushing it first would change its integer.
_SMALLEST_FLOAT32_PEAK = {bits: 2.0 ** (bits - 125) for bits in range(MIN_BITS, EXACT_BITS)}


def _checked_parameter(
    weights: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]
) -> np.ndarray:
    if name not in weights:
        raise ExactInferenceError(f"weights lack {name!r}")
    tensor = np.asarray(weights[name])
    if tensor.shape != shape:
        raise ExactInferenceError(f"{name}: shape {tensor.shape} != {shape}")
    return tensor


def rescale_in_place(
    products: np.ndarray,
    row_scales: np.ndarray,
    unit_exponents: np.ndarray,
    bias: np.ndarray | None,
) -> np.ndarray:
    """``products * row scale * 2^-unit exponent + bias``, in ``products`` (which the caller
    owns); ``row_scales`` is a column of powers of two, one per row of ``products``.

    Both scalings are exact (powers of two, and every intermediate a normal number or an
    overflow to infinity); the bias addition rounds once.
    """
    with np.errstate(over="ignore"):  # an overflow is an infinity, clipped by the caller
        np.multiply(products, row_scales, out=products)
        np.multiply(products, power_of_two(-unit_exponents), out=products)
        if bias is not None:
            np.add(products, bias, out=products)
    return products

"""Dense float32 tensors from what a blob stores, checking what only the values can show.

The container header has already been checked against the layout (names, element types,
shapes); what is left is content: sparse indices in range and strictly increasing (one
spelling per update), int8 codes within the symmetric range, scales finite and not
negative. The encoders use the same rebuild for their error feedback, so they subtract
exactly what every decoder will add.
"""

from collections.abc import Mapping

import numpy as np

from flare.compression.base import MalformedUpdateError
from flare.compression.layout import (
    LOW_RANK,
    LOW_RANK_Q8,
    SPARSE,
    TensorLayout,
    reconstruct_low_rank,
)

Q8_LEVELS = 127
"""int8 codes lie in [-127, 127]: symmetric, so -128 is never written and always refused."""


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
    if entry.kind == SPARSE:
        return _rebuild_sparse(entry, *parts)
    if entry.kind == LOW_RANK:
        matrix = reconstruct_low_rank(*parts)
    elif entry.kind == LOW_RANK_Q8:
        matrix = _rebuild_quantised(entry, *parts)
    else:
        return parts[0]
    if not np.isfinite(matrix).all():
        raise MalformedUpdateError(f"low-rank tensor {entry.name!r} overflows float32")
    return matrix.reshape(entry.shape)


def _rebuild_quantised(
    entry: TensorLayout, p_codes: np.ndarray, q_codes: np.ndarray, scales: np.ndarray
) -> np.ndarray:
    for codes in (p_codes, q_codes):
        if (codes == -Q8_LEVELS - 1).any():
            raise MalformedUpdateError(f"tensor {entry.name!r} holds the int8 code -128")
    if np.signbit(scales).any():
        raise MalformedUpdateError(f"tensor {entry.name!r} has a negative scale")
    return reconstruct_low_rank(
        dequantise_columns(p_codes, scales[0]), dequantise_columns(q_codes, scales[1])
    )


def _rebuild_sparse(entry: TensorLayout, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
    if indices.size and (indices[0] < 0 or indices[-1] >= entry.size):
        raise MalformedUpdateError(f"tensor {entry.name!r} has an index outside the tensor")
    if (np.diff(indices) <= 0).any():
        raise MalformedUpdateError(f"tensor {entry.name!r} has indices not strictly increasing")
    dense = np.zeros(entry.size, dtype=np.float32)
    dense[indices] = values
    return dense.reshape(entry.shape)

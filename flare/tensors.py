"""Named-tensor types shared by every layer.

Weights travel between layers as an ordered mapping of names to float32 numpy
arrays, so that compression and aggregation never need torch.
"""

from collections.abc import Mapping

import numpy as np

Weights = dict[str, np.ndarray]
"""Ordered mapping of parameter names to float32 arrays (insertion order is canonical)."""

ModelSpec = dict[str, tuple[int, ...]]
"""Ordered mapping of parameter names to shapes: what a valid update must look like."""


def spec_of(weights: Mapping[str, np.ndarray]) -> ModelSpec:
    """Return the shapes of ``weights`` in their canonical order."""
    return {name: tuple(int(d) for d in array.shape) for name, array in weights.items()}


def num_parameters(spec: ModelSpec) -> int:
    """Total number of scalars in a model of this spec."""
    return sum(int(np.prod(shape, dtype=np.int64)) for shape in spec.values())


def raw_nbytes(spec: ModelSpec) -> int:
    """Size of one full update of this spec as raw float32."""
    return 4 * num_parameters(spec)


def flatten(weights: Mapping[str, np.ndarray]) -> np.ndarray:
    """Concatenate all tensors, in order, into one float64 vector."""
    if not weights:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in weights.values()])


def unflatten(vector: np.ndarray, spec: ModelSpec) -> Weights:
    """Inverse of :func:`flatten`: split a vector back into float32 tensors of ``spec``."""
    out: Weights = {}
    offset = 0
    for name, shape in spec.items():
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = np.asarray(vector[offset : offset + size], dtype=np.float32).reshape(shape)
        offset += size
    if offset != vector.size:
        raise ValueError(f"vector has {vector.size} values, spec needs {offset}")
    return out


def add(base: Mapping[str, np.ndarray], delta: Mapping[str, np.ndarray]) -> Weights:
    """``base + delta`` per tensor, in float32 (elementwise, hence bitwise reproducible)."""
    return {name: as_float32(base[name] + delta[name]) for name in base}


def subtract(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> Weights:
    """``a - b`` per tensor, in float32."""
    return {name: as_float32(a[name] - b[name]) for name in a}


def as_float32(result: np.ndarray) -> np.ndarray:
    """A fresh ``result`` in float32, copied only when it is not float32 already: a second
    copy of a large tensor is a fresh allocation, which the kernel maps page by page and
    costs several times the arithmetic (a 1,000-client round spends a tenth of its local
    training in them)."""
    return result.astype(np.float32, copy=False)


CACHE_LINE_BYTES = 64
"""The cache line of x86-64 CPUs (and of most others): a 64-byte vector load or store that
starts one touches one line; one that straddles two touches both."""


def aligned_zeros(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A C-contiguous array of zeros whose first element starts a cache line. numpy's own
    allocation is 16-byte aligned, and the native kernels read and write layer-sized state
    (a PowerSGD encoder's error memory) in 64-byte loads and stores."""
    item = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * item.itemsize
    storage = np.zeros(nbytes + CACHE_LINE_BYTES, dtype=np.uint8)
    skip = -storage.ctypes.data % CACHE_LINE_BYTES
    return storage[skip : skip + nbytes].view(item).reshape(shape)

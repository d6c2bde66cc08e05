"""How each model tensor travels inside an update blob, and how low-rank ones are rebuilt.

A layout is fully determined by the codec's configuration and the model spec, so the
decoder never trusts the layout a blob claims: it computes the expected one and
requires an exact match. Low-rank reconstruction lives here because the encoder's
error feedback must subtract exactly what every decoder will rebuild.
"""

from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

from flare.errors import ConfigError
from flare.tensors import ModelSpec

FACTOR_SUFFIXES = (":P", ":Q")
"""Stored-tensor name suffixes of the two low-rank factors of a model tensor."""

RESERVED_NAME = "__metadata__"
"""safetensors keeps its metadata under this key, so no tensor may use it."""


@dataclass(frozen=True)
class TensorLayout:
    """One model tensor's encoding: dense (``rank is None``) or as factors ``P @ Q.T``."""

    name: str
    shape: tuple[int, ...]
    rank: int | None = None

    @property
    def is_low_rank(self) -> bool:
        return self.rank is not None

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """The tensor viewed as a matrix: first axis by all other axes (conv kernels flatten)."""
        return self.shape[0], prod(self.shape[1:])

    def stored_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the safetensors entries that carry this tensor."""
        if self.rank is None:
            return {self.name: self.shape}
        rows, cols = self.matrix_shape
        p_name, q_name = (self.name + suffix for suffix in FACTOR_SUFFIXES)
        return {p_name: (rows, self.rank), q_name: (cols, self.rank)}

    def to_json(self) -> dict[str, Any]:
        """The layout entry written into the blob's metadata."""
        entry: dict[str, Any] = {"name": self.name, "shape": list(self.shape)}
        if self.rank is None:
            entry.update(kind="dense", tensor=self.name)
        else:
            p_name, q_name = self.stored_shapes()
            entry.update(kind="lowrank", rank=self.rank, factors={"p": p_name, "q": q_name})
        return entry


def low_rank_pays_off(shape: tuple[int, ...], rank: int) -> bool:
    """True when rank-``rank`` factors of ``shape`` are strictly smaller than the dense tensor."""
    if len(shape) < 2:
        return False
    rows, cols = shape[0], prod(shape[1:])
    return rank * (rows + cols) < rows * cols


def plan_layout(spec: ModelSpec, rank: int | None) -> list[TensorLayout]:
    """The canonical layout of ``spec``: all dense, or low-rank wherever that is smaller.

    Raises :class:`ConfigError` if the spec cannot be stored unambiguously (a name that
    collides with safetensors' metadata key or with another tensor's factor names).
    """
    layout = []
    for name, shape in spec.items():
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ConfigError(f"tensor {name!r} has a negative dimension: {shape}")
        use_rank = rank if rank is not None and low_rank_pays_off(shape, rank) else None
        layout.append(TensorLayout(name, shape, use_rank))
    stored: set[str] = set()
    for entry in layout:
        for stored_name in entry.stored_shapes():
            if stored_name == RESERVED_NAME or stored_name in stored:
                raise ConfigError(f"model tensor name {stored_name!r} collides in the wire format")
            stored.add(stored_name)
    return layout


def reconstruct_low_rank(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``P @ Q.T`` as a fixed-order float64 sum of outer products, rounded once to float32.

    Not a matmul: BLAS may reorder a matmul's reduction with the thread count or CPU,
    while this sum is elementwise (each product of two float32 values is exact in
    float64) and adds rank-one terms in column order, so every machine gets the same bits.
    """
    rows, rank = p.shape
    cols = q.shape[0]
    total = np.zeros((rows, cols), dtype=np.float64)
    for k in range(rank):
        total += np.multiply.outer(p[:, k].astype(np.float64), q[:, k].astype(np.float64))
    with np.errstate(over="ignore"):
        return total.astype(np.float32)

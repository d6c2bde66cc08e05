"""How each model tensor travels inside an update blob.

A layout is fully determined by the codec's configuration and the model spec, so the
decoder never trusts the layout a blob claims: it computes the expected one and
requires an exact match. How tensors are rebuilt from what a blob stores is
:mod:`flare.compression.rebuild`.
"""

from dataclasses import dataclass
from functools import cached_property
from math import prod
from typing import Any

from flare.errors import ConfigError
from flare.tensors import ModelSpec

FACTOR_SUFFIXES = (":P", ":Q")
"""Stored-tensor name suffixes of the two low-rank factors of a model tensor."""

SCALES_SUFFIX = ":S"
"""Stored-tensor name suffix of a quantised tensor's per-column scales (row 0: P, row 1: Q)."""

SPARSE_SUFFIXES = (":I", ":V")
"""Stored-tensor name suffixes of a sparse tensor's flat indices and their values."""

DENSE, LOW_RANK, LOW_RANK_Q8, SPARSE = "dense", "lowrank", "lowrank-q8", "sparse"
"""How a model tensor travels: float32, float32 factors, int8 factors, or top-k entries."""

FLOAT32, INT8, INT32 = "F32", "I8", "I32"
"""safetensors dtype names of the element types a stored tensor may have."""

RESERVED_NAME = "__metadata__"
"""safetensors keeps its metadata under this key, so no tensor may use it."""


@dataclass(frozen=True)
class StoredTensor:
    """One safetensors entry of an update: its element type and shape."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class TensorLayout:
    """One model tensor's encoding.

    ``kind`` is :data:`DENSE` (float32 as is), :data:`LOW_RANK` (float32 factors ``P @ Q.T``
    of ``rank`` columns), :data:`LOW_RANK_Q8` (the same factors as int8 codes with float32
    per-column scales) or :data:`SPARSE` (``keep`` flat indices and float32 values).
    """

    name: str
    shape: tuple[int, ...]
    rank: int | None = None
    kind: str = ""
    keep: int | None = None

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", DENSE if self.rank is None else LOW_RANK)

    @property
    def is_low_rank(self) -> bool:
        return self.kind in (LOW_RANK, LOW_RANK_Q8)

    @property
    def size(self) -> int:
        return prod(self.shape)

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """The tensor viewed as a matrix: first axis by all other axes (conv kernels flatten)."""
        return self.shape[0], prod(self.shape[1:])

    @cached_property
    def _stored(self) -> dict[str, StoredTensor]:
        return self._plan_stored()

    def stored_tensors(self) -> dict[str, StoredTensor]:
        """Names, element types and shapes of the safetensors entries that carry this tensor."""
        return dict(self._stored)

    def _plan_stored(self) -> dict[str, StoredTensor]:
        if self.kind == DENSE:
            return {self.name: StoredTensor(FLOAT32, self.shape)}
        if self.kind == SPARSE:
            indices, values = (self.name + suffix for suffix in SPARSE_SUFFIXES)
            return {
                indices: StoredTensor(INT32, (self.keep,)),
                values: StoredTensor(FLOAT32, (self.keep,)),
            }
        rows, cols = self.matrix_shape
        p_name, q_name = (self.name + suffix for suffix in FACTOR_SUFFIXES)
        if self.kind == LOW_RANK:
            return {
                p_name: StoredTensor(FLOAT32, (rows, self.rank)),
                q_name: StoredTensor(FLOAT32, (cols, self.rank)),
            }
        return {
            p_name: StoredTensor(INT8, (rows, self.rank)),
            q_name: StoredTensor(INT8, (cols, self.rank)),
            self.name + SCALES_SUFFIX: StoredTensor(FLOAT32, (2, self.rank)),
        }

    def stored_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the safetensors entries that carry this tensor."""
        return {name: stored.shape for name, stored in self.stored_tensors().items()}

    def to_json(self) -> dict[str, Any]:
        """The layout entry written into the blob's metadata.

        The newer kinds name no stored tensors: their names follow from the tensor's name,
        and leaving them out keeps a long model name's share of the header small.
        """
        entry: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "kind": self.kind}
        if self.kind == DENSE:
            entry.update(tensor=self.name)
        elif self.kind == LOW_RANK:
            p_name, q_name = self.stored_shapes()
            entry.update(rank=self.rank, factors={"p": p_name, "q": q_name})
        elif self.kind == LOW_RANK_Q8:
            entry.update(rank=self.rank)
        else:
            entry.update(keep=self.keep)
        return entry


def low_rank_pays_off(shape: tuple[int, ...], rank: int) -> bool:
    """True when rank-``rank`` factors of ``shape`` are strictly smaller than the dense tensor."""
    if len(shape) < 2:
        return False
    rows, cols = shape[0], prod(shape[1:])
    return rank * (rows + cols) < rows * cols


def checked_shapes(spec: ModelSpec) -> list[tuple[str, tuple[int, ...]]]:
    """``spec``'s names and shapes as int tuples, refusing negative dimensions."""
    checked = []
    for name, shape in spec.items():
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ConfigError(f"tensor {name!r} has a negative dimension: {shape}")
        checked.append((name, shape))
    return checked


def plan_layout(spec: ModelSpec, rank: int | None) -> list[TensorLayout]:
    """The canonical layout of ``spec``: all dense, or low-rank wherever that is smaller.

    Raises :class:`ConfigError` if the spec cannot be stored unambiguously (a name that
    collides with safetensors' metadata key or with another tensor's factor names).
    """
    layout = []
    for name, shape in checked_shapes(spec):
        use_rank = rank if rank is not None and low_rank_pays_off(shape, rank) else None
        layout.append(TensorLayout(name, shape, use_rank))
    return unambiguous(layout)


def unambiguous(layout: list[TensorLayout]) -> list[TensorLayout]:
    """``layout``, after checking that no two stored tensors share a name."""
    stored: set[str] = set()
    for entry in layout:
        for stored_name in entry.stored_shapes():
            if stored_name == RESERVED_NAME or stored_name in stored:
                raise ConfigError(f"model tensor name {stored_name!r} collides in the wire format")
            stored.add(stored_name)
    return layout

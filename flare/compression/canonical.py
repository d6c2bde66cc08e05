"""The short way to accept an update: its header is byte for byte the one Flare writes.

An honest blob's container header is a function of its binding, its codec and the model
spec alone. The decoder rebuilds that header from the three and compares bytes; when
they are equal, every check of the header (strict JSON, canonical metadata, the layout,
stored names, element types, shapes and the tiling of the data section) holds by
construction, because the writer's own header passes them all. When they differ, in
any byte, the decoder runs the full validation, which accepts or names what is wrong.
The binding is still checked, and so are the tensors' values, on both ways.

The expected header is assembled from pieces cached per codec configuration and spec,
which is what makes this path cheap: one plain JSON parse of the header and of the
metadata, the binding's canonical JSON, and one bytes comparison.
"""

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from flare.compression.base import MalformedUpdateError, UpdateBinding
from flare.compression.envelope import check_binding, metadata_tail, metadata_text
from flare.compression.layout import FLOAT32, INT8, INT32, TensorLayout
from flare.compression.registry import make_codec
from flare.compression.wire import HEADER_ALIGNMENT
from flare.errors import ConfigError
from flare.tensors import ModelSpec

WIRE_DTYPES = {FLOAT32: np.dtype("<f4"), INT32: np.dtype("<i4"), INT8: np.dtype("i1")}

SAFETENSORS_DTYPE_RANK = {INT8: 0, INT32: 1, FLOAT32: 2}
"""safetensors writes tensors by element type, widest first, then by name."""


@dataclass(frozen=True)
class StoredSpan:
    """Where one stored tensor lies in the data section, and how to read it."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int


@dataclass(frozen=True)
class ExpectedContainer:
    """What a writer puts around the binding for one codec configuration and spec."""

    codec: str
    gzip_wrapped: bool
    layout: list[TensorLayout]
    tail: str
    tensor_entries: str
    spans: tuple[StoredSpan, ...]
    data_bytes: int

    def header(self, metadata: str) -> bytes:
        """The container header (after the length prefix) safetensors writes for ``metadata``."""
        text = '{"__metadata__":{"flare":' + json.dumps(metadata) + "}" + self.tensor_entries
        encoded = text.encode("utf-8")
        return encoded + b" " * (-len(encoded) % HEADER_ALIGNMENT)


def _tensor_entries(layout: list[TensorLayout]) -> tuple[str, tuple[StoredSpan, ...], int]:
    stored = [(name, tensor) for entry in layout for name, tensor in entry.stored_tensors().items()]
    stored.sort(key=lambda item: (-SAFETENSORS_DTYPE_RANK[item[1].dtype], item[0]))
    entries, spans, offset = [], [], 0
    for name, tensor in stored:
        dtype = WIRE_DTYPES[tensor.dtype]
        size = dtype.itemsize * int(np.prod(tensor.shape, dtype=np.int64))
        shape = json.dumps(list(tensor.shape), separators=(",", ":"))
        entries.append(
            f'{json.dumps(name, ensure_ascii=False)}:{{"dtype":"{tensor.dtype}",'
            f'"shape":{shape},"data_offsets":[{offset},{offset + size}]}}'
        )
        spans.append(StoredSpan(name, dtype, tensor.shape, offset))
        offset += size
    return "".join("," + entry for entry in entries) + "}", tuple(spans), offset


@lru_cache(maxsize=64)
def expected_container(
    codec_name: str, params: tuple[tuple[str, Any], ...], spec: tuple[tuple[str, tuple], ...]
) -> ExpectedContainer:
    """The writer's container for ``codec_name(**params)`` and ``spec``, less the binding.

    Raises :class:`ConfigError` when no such codec exists or it cannot carry the spec.
    Parameters that compare equal but are spelled differently (``1``, ``1.0``, ``true``)
    share an entry; the header comparison tells them apart, as it spells them out.
    """
    codec = make_codec(codec_name, **dict(params))
    layout = codec.layout(dict(spec))
    entries, spans, data_bytes = _tensor_entries(layout)
    return ExpectedContainer(
        codec.name,
        codec.gzip_wrapped,
        layout,
        metadata_tail(codec.name, codec.params(), layout),
        entries,
        spans,
        data_bytes,
    )


@dataclass(frozen=True)
class CanonicalUpdate:
    """A blob whose header is the writer's: what it is bound to, its layout and tensors."""

    codec: str
    binding: UpdateBinding
    layout: list[TensorLayout]
    tensors: dict[str, np.ndarray]


SHORT_PATH_MISSES = (
    ArithmeticError,
    AttributeError,
    ConfigError,
    LookupError,
    MalformedUpdateError,
    RecursionError,
    TypeError,
    ValueError,
    struct.error,
)
"""Whatever a header the writer did not write may raise on the way: all mean "run the full
validation", which then accepts or refuses the blob with its own reason."""


def read_canonical(
    container: bytes, spec: Mapping[str, tuple[int, ...]], max_header_bytes: int, gzipped: bool
) -> CanonicalUpdate | None:
    """The update in ``container`` if its header is exactly what Flare writes, else None."""
    try:
        return _read_canonical(container, spec, max_header_bytes, gzipped)
    except SHORT_PATH_MISSES:
        return None


def _read_canonical(
    container: bytes, spec: ModelSpec, max_header_bytes: int, gzipped: bool
) -> CanonicalUpdate | None:
    (header_len,) = struct.unpack_from("<Q", container)
    if header_len > max_header_bytes:
        return None
    header_end = 8 + header_len
    header = json.loads(container[8:header_end])
    metadata = header["__metadata__"]["flare"]
    fields = json.loads(metadata)
    params = tuple(sorted(fields["params"].items()))
    spec_key = tuple((name, tuple(shape)) for name, shape in spec.items())
    expected = expected_container(fields["codec"], params, spec_key)
    binding = UpdateBinding(**fields["binding"])
    check_binding(binding)
    if (
        expected.gzip_wrapped != gzipped
        or len(container) != header_end + expected.data_bytes
        or metadata != metadata_text(binding, expected.tail)
        or container[8:header_end] != expected.header(metadata)
    ):
        return None
    tensors = {
        span.name: np.frombuffer(
            container,
            dtype=span.dtype,
            count=int(np.prod(span.shape, dtype=np.int64)),
            offset=header_end + span.begin,
        )
        .reshape(span.shape)
        .astype(span.dtype.newbyteorder("="))
        for span in expected.spans
    }
    return CanonicalUpdate(expected.codec, binding, expected.layout, tensors)

"""The short way to accept an update: its header is byte for byte the one Flare writes.

An honest blob's container header is a function of its binding, its codec and the model
spec alone. The decoder rebuilds that header from the three and compares bytes; when
they are equal, every check of the header (strict JSON, canonical metadata, the layout,
stored names, element types, shapes and the tiling of the data section) holds by
construction, because the writer's own header passes them all. When they differ, in
any byte, the decoder runs the full validation, which accepts or names what is wrong.
The binding is still checked, and so are the tensors' values, on both ways.

The expected header is assembled from pieces cached per codec configuration and spec,
which is what makes this path cheap. Only two values are parsed: the metadata string at
the head of the header, and the binding at the head of the metadata. What follows the
binding (codec, format, layout and params) is the configuration's cached tail, and
finding its container is one dictionary lookup once the tail has been seen; then come
the binding's canonical JSON and one bytes comparison.
"""

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from flare.compression.base import MalformedUpdateError, UpdateBinding
from flare.compression.container import (
    HEADER_HEAD,
    WIRE_DTYPES,
    UpdateContainer,
    update_container,
)
from flare.compression.envelope import check_binding, metadata_text
from flare.compression.layout import FLOAT32, TensorLayout
from flare.compression.registry import make_codec
from flare.errors import ConfigError
from flare.tensors import ModelSpec


@lru_cache(maxsize=64)
def expected_container(
    codec_name: str, params: tuple[tuple[str, Any], ...], spec: tuple[tuple[str, tuple], ...]
) -> UpdateContainer:
    """The writer's container for ``codec_name(**params)`` and ``spec``, less the binding.

    Raises :class:`ConfigError` when no such codec exists or it cannot carry the spec.
    Parameters that compare equal but are spelled differently (``1``, ``1.0``, ``true``)
    share an entry; the header comparison tells them apart, as it spells them out.
    """
    codec = make_codec(codec_name, **dict(params))
    layout = tuple(codec.layout(dict(spec)))
    return update_container(codec.name, codec.gzip_wrapped, tuple(codec.params().items()), layout)


@dataclass(frozen=True)
class CanonicalUpdate:
    """A blob whose header is the writer's: what it is bound to, its layout and tensors."""

    codec: str
    binding: UpdateBinding
    layout: list[TensorLayout]
    tensors: dict[str, np.ndarray]
    floats: np.ndarray
    """Every float32 value of the update, one array: one finiteness check for all."""


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


METADATA_HEAD = '{"binding":'
_JSON = json.JSONDecoder()


@lru_cache(maxsize=64)
def _container_with_tail(tail: str, spec: tuple[tuple[str, tuple], ...]) -> UpdateContainer:
    """The container whose metadata ends in ``tail``, which is the rest of the metadata's
    object after the binding: its codec and params name the configuration."""
    fields = json.loads("{" + tail.removeprefix(","))
    expected = expected_container(fields["codec"], tuple(sorted(fields["params"].items())), spec)
    if expected.tail != tail:
        raise MalformedUpdateError("not the writer's metadata")
    return expected


def _read_canonical(
    container: bytes, spec: ModelSpec, max_header_bytes: int, gzipped: bool
) -> CanonicalUpdate | None:
    (header_len,) = struct.unpack_from("<Q", container)
    if header_len > max_header_bytes:
        return None
    header_end = 8 + header_len
    header = container[8:header_end].decode("utf-8")
    if not header.startswith(HEADER_HEAD):
        return None
    metadata, _ = _JSON.raw_decode(header, len(HEADER_HEAD))
    if not metadata.startswith(METADATA_HEAD):
        return None
    fields, binding_end = _JSON.raw_decode(metadata, len(METADATA_HEAD))
    spec_key = tuple((name, tuple(shape)) for name, shape in spec.items())
    expected = _container_with_tail(metadata[binding_end:], spec_key)
    binding = UpdateBinding(**fields)
    check_binding(binding)
    if (
        expected.gzip_wrapped != gzipped
        or len(container) != header_end + expected.data_bytes
        or metadata != metadata_text(binding, expected.tail)
        or container[8:header_end] != expected.header(metadata)
    ):
        return None
    # One copy, not one per tensor: the decoded tensors must be writable and must not
    # hold the blob, so they are views of the data section's copy, one span each.
    data = np.frombuffer(container, dtype=np.uint8, offset=header_end).copy()
    tensors = {}
    for span in expected.spans:
        stored = data[span.begin : span.begin + span.count * span.dtype.itemsize].view(span.dtype)
        if not span.dtype.isnative:
            stored = stored.astype(span.dtype.newbyteorder("="))
        tensors[span.name] = stored.reshape(span.shape)
    floats = data[: expected.float_bytes].view(WIRE_DTYPES[FLOAT32])
    return CanonicalUpdate(expected.codec, binding, expected.layout, tensors, floats)

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
from flare.compression.container import WIRE_DTYPES, UpdateContainer, update_container
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
    # one copy of the data section; each tensor is a view of its span
    data = np.frombuffer(container, dtype=np.uint8, offset=header_end).copy()
    tensors = {}
    for span in expected.spans:
        stored = data[span.begin : span.begin + span.count * span.dtype.itemsize].view(span.dtype)
        if not span.dtype.isnative:
            stored = stored.astype(span.dtype.newbyteorder("="))
        tensors[span.name] = stored.reshape(span.shape)
    floats = data[: expected.float_bytes].view(WIRE_DTYPES[FLOAT32])
    return CanonicalUpdate(expected.codec, binding, expected.layout, tensors, floats)

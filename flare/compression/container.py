"""An update's container, written from pieces cached per codec configuration and layout.

An update is a safetensors file whose header depends only on the codec's configuration,
its layout and the binding: the header is a fixed opening, the binding's canonical JSON
(escaped once more, as it sits inside the metadata string), then what follows the
binding, which is the same for every update of one configuration, then padding. So that
suffix and each stored tensor's place in the data section are computed once per
configuration; writing an update then costs the binding's JSON and one copy of each
tensor, and gives the bytes safetensors writes (tests compare the two). The decoder's
short path (:mod:`flare.compression.canonical`) compares a blob's header with the same
pieces.
"""

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from math import prod

import numpy as np

from flare.compression.base import Codec, MalformedUpdateError, UpdateBinding
from flare.compression.envelope import binding_json, check_binding, metadata_tail
from flare.compression.layout import FLOAT32, INT8, INT32, TensorLayout
from flare.compression.wire import HEADER_ALIGNMENT

WIRE_DTYPES = {FLOAT32: np.dtype("<f4"), INT32: np.dtype("<i4"), INT8: np.dtype("i1")}

HEADER_HEAD = '{"__metadata__":{"flare":'
"""Every update's header starts so: its metadata string is the first value it holds."""

METADATA_HEAD = '{"binding":'
"""Every update's metadata starts so: ``binding`` sorts first among its keys."""

HEADER_PREFIX = (HEADER_HEAD + json.dumps(METADATA_HEAD)[:-1]).encode("ascii")
"""Every update's header up to its binding, which the metadata string holds escaped."""

SAFETENSORS_DTYPE_RANK = {INT8: 0, INT32: 1, FLOAT32: 2}
"""safetensors writes tensors by element type, widest first, then by name."""


@dataclass(frozen=True)
class StoredSpan:
    """Where one stored tensor lies in the data section, and how to read it."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    count: int

    def read(self, data: np.ndarray) -> np.ndarray:
        """This tensor in native byte order, a view of ``data`` (the data section's bytes)."""
        stored = np.ndarray(self.shape, self.dtype, data, self.begin)
        return stored if self.dtype.isnative else stored.astype(self.dtype.newbyteorder("="))


def escaped_binding(binding: UpdateBinding) -> bytes:
    """The binding's canonical JSON as a header holds it: escaped inside the metadata string."""
    return encode_basestring_ascii(binding_json(binding))[1:-1].encode("ascii")


def padding(length: int) -> bytes:
    """The spaces safetensors appends to a header of ``length`` bytes."""
    return b" " * (-length % HEADER_ALIGNMENT)


@dataclass(frozen=True)
class UpdateContainer:
    """What a writer puts around the binding for one codec configuration and layout.

    ``suffix`` is the header after the binding, before the padding: the rest of the
    metadata string (codec, format, layout, params) and the tensors' entries. The float32
    tensors come first in the data section (widest type first) and fill its first
    ``float_bytes`` bytes, so one check covers the finiteness of all of them.
    """

    codec: str
    gzip_wrapped: bool
    layout: list[TensorLayout]
    suffix: bytes
    spans: tuple[StoredSpan, ...]
    data_bytes: int
    float_bytes: int

    def header(self, binding: UpdateBinding) -> bytes:
        """The container header (after the length prefix) safetensors writes for ``binding``,
        which is written as it is, checked or not."""
        body = HEADER_PREFIX + escaped_binding(binding) + self.suffix
        return body + padding(len(body))

    def write(self, binding: UpdateBinding, tensors: Mapping[str, np.ndarray]) -> bytes:
        """The container of ``tensors`` (each converted to its stored type) bound to ``binding``."""
        check_binding(binding)
        header = self.header(binding)
        parts = [struct.pack("<Q", len(header)), header]
        for span in self.spans:
            array = np.asarray(tensors[span.name])
            if array.shape != span.shape:
                raise MalformedUpdateError(
                    f"stored tensor {span.name!r} has shape {array.shape}, layout needs "
                    f"{span.shape}"
                )
            # joined as they are (bytes.join reads any contiguous buffer): one copy each
            parts.append(np.ascontiguousarray(array, dtype=span.dtype))
        return b"".join(parts)


def _tensor_entries(layout: list[TensorLayout]) -> tuple[str, tuple[StoredSpan, ...], int, int]:
    stored = [(name, tensor) for entry in layout for name, tensor in entry.stored_tensors().items()]
    stored.sort(key=lambda item: (-SAFETENSORS_DTYPE_RANK[item[1].dtype], item[0]))
    entries, spans, offset, float_bytes = [], [], 0, 0
    for name, tensor in stored:
        dtype = WIRE_DTYPES[tensor.dtype]
        count = prod(tensor.shape)
        size = dtype.itemsize * count
        shape = json.dumps(list(tensor.shape), separators=(",", ":"))
        entries.append(
            f'{json.dumps(name, ensure_ascii=False)}:{{"dtype":"{tensor.dtype}",'
            f'"shape":{shape},"data_offsets":[{offset},{offset + size}]}}'
        )
        spans.append(StoredSpan(name, dtype, tensor.shape, offset, count))
        offset += size
        if tensor.dtype == FLOAT32:
            float_bytes = offset
    return "".join("," + entry for entry in entries) + "}", tuple(spans), offset, float_bytes


@lru_cache(maxsize=64)
def update_container(
    codec_name: str,
    gzip_wrapped: bool,
    params: tuple[tuple[str, int], ...],
    layout: tuple[TensorLayout, ...],
) -> UpdateContainer:
    """The container pieces of codec ``codec_name`` with ``params`` writing ``layout``."""
    entries, spans, data_bytes, float_bytes = _tensor_entries(list(layout))
    tail = metadata_tail(codec_name, dict(params), list(layout))
    # the metadata string's rest and closing quote, then the close of __metadata__
    suffix = (json.dumps(tail)[1:] + "}" + entries).encode("utf-8")
    return UpdateContainer(
        codec_name, gzip_wrapped, list(layout), suffix, spans, data_bytes, float_bytes
    )


def container_for(codec: Codec, layout: list[TensorLayout]) -> UpdateContainer:
    """The container pieces of ``codec`` writing ``layout``: an encoder keeps them."""
    params = tuple(codec.params().items())
    return update_container(codec.name, codec.gzip_wrapped, params, tuple(layout))

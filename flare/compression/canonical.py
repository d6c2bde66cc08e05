"""The short way to accept an update: its header is byte for byte the one Flare writes.

An honest blob's container header is a function of its binding, its codec and the model
spec alone. The decoder rebuilds that header from the three and compares bytes; when
they are equal, every check of the header (strict JSON, canonical metadata, the layout,
stored names, element types, shapes and the tiling of the data section) holds by
construction, because the writer's own header passes them all. When they differ, in
any byte, the decoder runs the full validation, which accepts or names what is wrong.
The binding is still checked, and so are the tensors' values, on both ways.

A header is the fixed opening, the binding, the configuration's suffix and padding
(:mod:`flare.compression.container`), so nothing of it is decoded as JSON: one regular
expression reads the binding where the writer puts it, and the bytes after it are the
key of the configuration's container, cached per spec, whose own suffix they must be.
The header is then compared piece by piece where it lies, without assembling a copy.
"""

import json
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from json.decoder import scanstring
from typing import Any

import numpy as np

from flare.compression.base import MalformedUpdateError, UpdateBinding
from flare.compression.container import (
    HEADER_PREFIX,
    WIRE_DTYPES,
    UpdateContainer,
    escaped_binding,
    padding,
    update_container,
)
from flare.compression.envelope import check_binding
from flare.compression.layout import FLOAT32
from flare.compression.registry import make_codec
from flare.errors import ConfigError
from flare.tensors import ModelSpec

SpecKey = tuple[tuple[str, tuple[int, ...]], ...]
"""A model spec as a hashable key: its names and shapes, in order."""


def spec_key(spec: ModelSpec) -> SpecKey:
    """``spec`` as the key of the caches that depend on it."""
    return tuple([(name, tuple(shape)) for name, shape in spec.items()])  # a list is quicker


@lru_cache(maxsize=64)
def expected_container(
    codec_name: str, params: tuple[tuple[str, Any], ...], spec: SpecKey
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
    """A blob whose header is the writer's: its container, what it is bound to, its tensors."""

    container: UpdateContainer
    binding: UpdateBinding
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
    container: bytes, spec: SpecKey, max_header_bytes: int, gzipped: bool
) -> CanonicalUpdate | None:
    """The update in ``container`` if its header is exactly what Flare writes, else None."""
    try:
        return _read_canonical(container, spec, max_header_bytes, gzipped)
    except SHORT_PATH_MISSES:
        return None


_COUNTER = rb"(0|[1-9][0-9]{0,18})"
_LABEL = rb'((?:[ !#-\[\]-~]|\\\\\\"|\\\\\\\\){1,256})'
"""A label as a header holds it: printable ASCII, quotes and backslashes escaped twice."""

BINDING_PATTERN = re.compile(
    rb'\{\\"attempt\\":' + _COUNTER
    + rb',\\"base_model\\":\\"' + _LABEL
    + rb'\\",\\"num_samples\\":' + _COUNTER
    + rb',\\"round\\":' + _COUNTER
    + rb',\\"sender\\":\\"' + _LABEL
    + rb'\\",\\"task\\":\\"' + _LABEL
    + rb'\\"\}'
)  # fmt: skip
"""A binding as the writer puts it into a header (:func:`escaped_binding`)."""


def _label(escaped: bytes) -> str:
    if b"\\" in escaped:
        escaped = escaped.replace(b'\\\\\\"', b'"').replace(b"\\\\\\\\", b"\\")
    return escaped.decode("ascii")


def _binding(match: re.Match[bytes]) -> UpdateBinding:
    attempt, base_model, samples, round_, sender, task = match.groups()
    return UpdateBinding(
        _label(sender), _label(task), int(round_), int(attempt), _label(base_model), int(samples)
    )


@lru_cache(maxsize=64)
def _container_with_suffix(suffix: bytes, spec: SpecKey) -> UpdateContainer:
    """The container whose header ends in ``suffix`` after the binding: the rest of the
    metadata string it opens with names the codec and its params."""
    tail, _ = scanstring(suffix.decode("utf-8"), 0)
    fields = json.loads("{" + tail.removeprefix(","))
    expected = expected_container(fields["codec"], tuple(sorted(fields["params"].items())), spec)
    if expected.suffix != suffix:
        raise MalformedUpdateError("not the writer's header")
    return expected


def _read_canonical(
    container: bytes, spec: SpecKey, max_header_bytes: int, gzipped: bool
) -> CanonicalUpdate | None:
    (header_len,) = struct.unpack_from("<Q", container)
    header_end = 8 + header_len
    if header_len > max_header_bytes or not container.startswith(HEADER_PREFIX, 8):
        return None
    match = BINDING_PATTERN.match(container, 8 + len(HEADER_PREFIX), header_end)
    if match is None:
        return None
    binding = _binding(match)
    check_binding(binding)
    suffix = container[match.end() : header_end].rstrip(b" ")
    expected = _container_with_suffix(suffix, spec)
    # The header is the prefix, the matched binding, the suffix (equal to the container's:
    # it is the cache's key) and only spaces; it is the writer's when the binding is the
    # writer's spelling of what was read and the spaces are exactly the writer's padding.
    body_len = len(HEADER_PREFIX) + len(match[0]) + len(suffix)
    if (
        expected.gzip_wrapped != gzipped
        or header_len != body_len + len(padding(body_len))
        or len(container) != header_end + expected.data_bytes
        or match[0] != escaped_binding(binding)
    ):
        return None
    # No copy: the tensors are read-only views of the blob's data section, which they keep
    # alive. A caller that holds the blob anyway (a store, a shared read) then holds each
    # update once, not twice; a fleet's round holds every update at once.
    data = np.frombuffer(container, dtype=np.uint8, offset=header_end)
    tensors = {span.name: span.read(data) for span in expected.spans}
    floats = data[: expected.float_bytes].view(WIRE_DTYPES[FLOAT32])
    return CanonicalUpdate(expected, binding, tensors, floats)

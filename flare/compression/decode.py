"""Decoding a stranger's update blob: the single entry point, and its size limits.

Every limit derives from the receiver's own model spec, so nothing the blob says can
make the decoder read, inflate or allocate more than a genuine update of that model
would need. The codec is taken from the blob, but the layout the blob must have is
recomputed from that codec's parameters and the spec, never taken on trust.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from flare.compression.base import DecodedUpdate, MalformedUpdateError
from flare.compression.canonical import SpecKey, read_canonical, spec_key
from flare.compression.dense import all_finite
from flare.compression.envelope import read_envelope
from flare.compression.layout import DENSE, FLOAT32, INT8, INT32, TensorLayout
from flare.compression.native import learn, read_natively
from flare.compression.rebuild import rebuild_tensor
from flare.compression.registry import make_codec
from flare.compression.wire import (
    GZIP_MAGIC,
    canonical_json,
    gzip_decompress,
    load_container_tensors,
    read_container_header,
    refusing_as,
    shown,
)
from flare.errors import ConfigError
from flare.tensors import ModelSpec, Weights, raw_nbytes

UPDATE_DTYPES = (FLOAT32, INT8, INT32)
"""Element types an update may store; the layout then says which tensor has which."""

HEADER_BASE_BYTES = 8192
"""Header allowance for format, codec, params and binding (labels double-escaped)."""

HEADER_BYTES_PER_TENSOR = 1024
HEADER_BYTES_PER_NAME_CHAR = 64
HEADER_BYTES_PER_DIMENSION = 32


def header_limit(spec: ModelSpec) -> int:
    """Upper bound on the container header of any valid update for ``spec``.

    A name character costs at most 14 bytes per mention in the metadata (a surrogate
    pair, escaped twice) and appears at most three times there and twice as a key.
    """
    return HEADER_BASE_BYTES + sum(
        HEADER_BYTES_PER_TENSOR
        + HEADER_BYTES_PER_NAME_CHAR * len(name)
        + HEADER_BYTES_PER_DIMENSION * len(shape)
        for name, shape in spec.items()
    )


def container_limit(spec: ModelSpec) -> int:
    """Upper bound on an uncompressed container for ``spec``: header plus dense float32."""
    return 8 + header_limit(spec) + raw_nbytes(spec)


def blob_limit(spec: ModelSpec) -> int:
    """Upper bound on any valid blob for ``spec`` (gzip may grow incompressible data)."""
    limit = container_limit(spec)
    return limit + limit // 1024 + 64


@dataclass(frozen=True)
class SizeLimits:
    """A spec's bounds on a container header, an uncompressed container and a blob."""

    header: int
    container: int
    blob: int


@lru_cache(maxsize=64)
def _limits(spec: SpecKey) -> SizeLimits:
    """The three limits of a spec, computed once: every decode checks against them."""
    shapes = dict(spec)
    return SizeLimits(header_limit(shapes), container_limit(shapes), blob_limit(shapes))


def _check_layout(claimed: list, expected: list[TensorLayout], spec: ModelSpec) -> None:
    """Require the blob's layout to be exactly the one its codec produces for ``spec``.

    Only the names are typed here, because they are hashed; every other field is compared
    as canonical JSON text, which any strictly parsed value has and which tells 128 from
    128.0 and 1 from true (Python's ``==`` does not).
    """
    if canonical_json(claimed) == canonical_json([entry.to_json() for entry in expected]):
        return  # one comparison for the usual case; the checks below name what differs
    for index, entry in enumerate(claimed):
        if not isinstance(entry, dict):
            raise MalformedUpdateError(f"layout entry {index} is not a JSON object")
        if not isinstance(entry.get("name"), str):
            raise MalformedUpdateError(
                f"layout entry {index} name must be a string, got {shown(entry.get('name'))}"
            )
    claimed_names = [entry["name"] for entry in claimed]
    if claimed_names != list(spec):
        missing = [name for name in spec if name not in claimed_names]
        extra = [name for name in claimed_names if name not in spec]
        raise MalformedUpdateError(
            "layout does not list the model's tensors in order: "
            f"missing {shown(missing)}, extra {shown(extra)}"
        )
    for entry, want in zip(claimed, expected, strict=True):
        if canonical_json(entry.get("shape")) != canonical_json(list(want.shape)):
            raise MalformedUpdateError(
                f"tensor {want.name!r} has shape {shown(entry.get('shape'))} in the layout, "
                f"the model has {list(want.shape)}"
            )
        if canonical_json(entry) != canonical_json(want.to_json()):
            raise MalformedUpdateError(
                f"layout entry for {want.name!r} is not what the codec produces: {shown(entry)}"
            )


def _check_stored_shapes(
    shapes: dict[str, tuple[int, ...]], dtypes: dict[str, str], layout: list[TensorLayout]
) -> None:
    stored = {name: tensor for entry in layout for name, tensor in entry.stored_tensors().items()}
    expected = {name: tensor.shape for name, tensor in stored.items()}
    missing = sorted(set(expected) - set(shapes))
    if missing:
        raise MalformedUpdateError(f"missing tensor {missing[0]!r}")
    extra = sorted(set(shapes) - set(expected))
    if extra:
        raise MalformedUpdateError(f"unexpected tensor {extra[0]!r}")
    for name, shape in expected.items():
        if shapes[name] != shape:
            raise MalformedUpdateError(
                f"tensor {name!r} has shape {shown(shapes[name])}, expected {shape}"
            )
        if dtypes[name] != stored[name].dtype:
            raise MalformedUpdateError(
                f"tensor {name!r} has dtype {dtypes[name]}, expected {stored[name].dtype}"
            )


def _assemble(
    tensors: dict[str, np.ndarray], layout: list[TensorLayout], floats: np.ndarray | None = None
) -> Weights:
    """The dense delta; ``floats``, when given, holds every float32 value of ``tensors``, so
    that one check clears them all and only a failed one looks for the tensor to name.

    A dense tensor is stored as it travels, under its own name: it is taken as it is. Every
    tensor returned is read-only, whichever way the blob was read: a writer's blob yields
    views of its own bytes, and a caller that wrote into one would change the blob.
    """
    if floats is None or not all_finite(floats):
        for name, array in tensors.items():
            if not np.isfinite(array).all():
                raise MalformedUpdateError(f"tensor {name!r} contains NaN or Inf")
    delta = {
        entry.name: tensors[entry.name] if entry.kind == DENSE else rebuild_tensor(entry, tensors)
        for entry in layout
    }
    for array in delta.values():
        array.flags.writeable = False
    return delta


def read_writers_blob(
    container: bytes, spec: SpecKey, max_header_bytes: int, gzipped: bool
) -> DecodedUpdate | None:
    """The update in ``container`` if its header is exactly what Flare writes, else None
    (then the full validation runs): natively where the native lane knows its configuration,
    else by :func:`read_canonical`, which teaches the native lane the configuration it found."""
    if not gzipped:
        decoded = read_natively(container, spec, max_header_bytes)
        if decoded is not None:
            return decoded
    canonical = read_canonical(container, spec, max_header_bytes, gzipped)
    if canonical is None:
        return None
    written = canonical.container
    delta = _assemble(canonical.tensors, written.layout, canonical.floats)
    learn(spec, written)
    return DecodedUpdate(delta=delta, binding=canonical.binding, codec=written.codec)


_REFUSING = refusing_as(MalformedUpdateError, "update blob")
"""The net of every decode: it keeps no state, so one serves every call and thread."""


def decode_update(
    blob: bytes, spec: ModelSpec, *, max_blob_bytes: int | None = None
) -> DecodedUpdate:
    """Validate and decode an update blob for a model of ``spec``.

    ``max_blob_bytes`` tightens the size limit further (e.g. a per-task upload cap); the
    spec-derived limits always apply. Whatever the bytes, the only exception is
    :class:`MalformedUpdateError`, so a caller can treat it as "this update is rejected".
    """
    with _REFUSING:
        return _decode_update(blob, spec, max_blob_bytes)


def _decode_update(blob: bytes, spec: ModelSpec, max_blob_bytes: int | None) -> DecodedUpdate:
    if type(blob) is not bytes:
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise MalformedUpdateError(f"blob must be bytes, got {type(blob).__name__}")
        blob = bytes(blob)
    key = spec_key(spec)
    limits = _limits(key)
    limit = limits.blob if max_blob_bytes is None else min(max_blob_bytes, limits.blob)
    if len(blob) > limit:
        raise MalformedUpdateError(f"blob has {len(blob)} bytes, the limit is {limit}")
    gzipped = blob.startswith(GZIP_MAGIC)
    container = gzip_decompress(blob, limits.container) if gzipped else blob
    decoded = read_writers_blob(container, key, limits.header, gzipped)
    if decoded is not None:
        return decoded

    header = read_container_header(container, limits.header, UPDATE_DTYPES)
    envelope = read_envelope(header.metadata)
    try:
        codec = make_codec(envelope.codec, **envelope.params)
    except ConfigError as exc:
        raise MalformedUpdateError(f"bad codec in blob: {exc}") from None
    if canonical_json(codec.params()) != canonical_json(envelope.params):
        raise MalformedUpdateError(f"codec params {shown(envelope.params)} are not all explicit")
    if codec.gzip_wrapped != gzipped:
        framing = "gzip-framed" if gzipped else "not gzip-framed"
        raise MalformedUpdateError(f"blob is {framing}, which codec {codec.name!r} never is")
    try:
        layout = codec.layout(spec)
    except ConfigError as exc:
        raise MalformedUpdateError(f"codec {codec.name!r} cannot carry this model: {exc}") from None
    _check_layout(envelope.layout, layout, spec)
    _check_stored_shapes(header.shapes, header.dtypes, layout)
    delta = _assemble(load_container_tensors(container), layout)
    return DecodedUpdate(delta=delta, binding=envelope.binding, codec=codec.name)

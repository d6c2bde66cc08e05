"""Bytes-level wire format: canonical JSON, the safetensors container, and gzip framing.

Update blobs come from strangers, so every reader here checks lengths against a limit
before it allocates, parses JSON strictly (no duplicate keys, no NaN), and validates
the safetensors header itself before the safetensors library ever sees the bytes.
Every problem surfaces as :class:`MalformedUpdateError` with a one-line reason.
"""

import json
import math
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from flare.compression.base import MalformedUpdateError

GZIP_MAGIC = b"\x1f\x8b"
GZIP_HEADER = GZIP_MAGIC + b"\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"
"""Deflate, no flags, mtime 0, max-compression hint, OS unknown: no per-host bytes."""

GZIP_LEVEL = 9
HEADER_ALIGNMENT = 8
"""safetensors pads its header to 8 bytes; requiring it keeps the first byte off 0x1f."""


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, ASCII only, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


MAX_NUMBER_CHARS = 32
"""Longest JSON number token: 2**64 has 20 digits and a float64's shortest repr at most 24.

Bounding the token keeps every parsed integer small enough for numpy and for Python's own
integer-to-text limit, which would otherwise fail later, far from the parser."""

MAX_SHOWN_CHARS = 80
"""How much of an untrusted value an error message echoes."""


class _RefusedJSON(ValueError):
    """JSON that parses but holds something no Flare document may hold."""


def _truncated(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else f"{text[: MAX_SHOWN_CHARS - 3]}..."


def shown(value: Any) -> str:
    """``repr(value)`` cut to a length that keeps a refusal one readable line."""
    return _truncated(repr(value))


PARSER_FAILURES = (
    ArithmeticError,
    LookupError,
    TypeError,
    ValueError,
    struct.error,
    zlib.error,
    SafetensorError,
)
"""What a parser or numpy raises on input it cannot handle. MemoryError and RecursionError
are not among them: they depend on the host, not on the bytes, and a verdict built on them
could differ between two members decoding the same blob."""


class refusing_as:
    """Make every failure inside a decoder ``error``: the last safety net at the boundary.

    Deliberate refusals (any :class:`MalformedUpdateError`) keep their message. An exception
    from a parser or numpy means a check is missing; it becomes ``error`` too, naming the
    exception and keeping it as ``__cause__`` so that tests can tell the two apart. A class
    named like a function, as ``contextlib.suppress`` is: a generator-based context manager
    costs microseconds, and every decoded blob passes through it.
    """

    def __init__(self, error: type[MalformedUpdateError], what: str) -> None:
        self.error = error
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> bool:
        if exc is None or isinstance(exc, self.error):
            return False
        if isinstance(exc, MalformedUpdateError):
            raise self.error(str(exc)) from None
        if isinstance(exc, PARSER_FAILURES):
            reason = _truncated(f"{type(exc).__name__}: {exc}".splitlines()[0])
            raise self.error(f"{self.what} could not be decoded ({reason})") from exc
        return False


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _RefusedJSON(f"duplicate key {shown(key)} in a JSON object")
        result[key] = value
    return result


def _reject_constant(token: str) -> None:
    raise _RefusedJSON(f"{token} is not allowed in JSON")


def _bounded_int(token: str) -> int:
    if len(token) > MAX_NUMBER_CHARS:
        raise _RefusedJSON(f"an integer of {len(token)} characters is out of range")
    return int(token)


def _finite_float(token: str) -> float:
    """A float64, refusing tokens such as ``1e400`` that Python would parse as infinity."""
    if len(token) > MAX_NUMBER_CHARS:
        raise _RefusedJSON(f"a number of {len(token)} characters is out of range")
    value = float(token)
    if not math.isfinite(value):
        raise _RefusedJSON(f"number {token} is out of range for a float64")
    return value


MAX_JSON_DEPTH = 64
"""Deeper nesting is refused before parsing: Python's parser would otherwise hit its
recursion limit at a depth that depends on the caller's stack, making refusals flaky."""


STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
"""A string literal, or an unclosed one running to the end of the text. Unrolled (no
alternation inside the repetition), and some ending always matches once a quote is found,
so the scan never backtracks and stays linear."""


def nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside string literals (an unclosed string runs to the end).

    Vectorised, because every blob's header passes through here: string literals are cut
    out by one regular expression, and the running depth is a cumulative sum over the
    UTF-8 bytes (a multi-byte character never contains a bracket's byte).
    """
    outside = STRING_LITERAL.sub("", text)
    codes = np.frombuffer(outside.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    opening = (codes == ord("[")) | (codes == ord("{"))
    closing = (codes == ord("]")) | (codes == ord("}"))
    steps = opening.astype(np.int64) - closing
    return max(0, int(np.cumsum(steps).max())) if steps.size else 0


def _may_nest_deeper_than(text: str, depth: int) -> bool:
    """False when ``text`` has too few opening brackets (strings included) to nest so deep."""
    return text.count("[") + text.count("{") > depth


def parse_json_strictly(text: str, what: str) -> Any:
    """Parse JSON that any Flare writer could have written, or raise MalformedUpdateError.

    Refused besides syntax errors: duplicate keys, NaN and Infinity, numbers that overflow
    a float64 (``1e400``) or run past :data:`MAX_NUMBER_CHARS`, and nesting deeper than
    :data:`MAX_JSON_DEPTH`. What comes back therefore re-serialises with
    :func:`canonical_json` without error, whatever its shape.
    """
    if _may_nest_deeper_than(text, MAX_JSON_DEPTH) and nesting_depth(text) > MAX_JSON_DEPTH:
        raise MalformedUpdateError(
            f"{what} is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except _RefusedJSON as exc:
        raise MalformedUpdateError(f"{what} is refused: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise MalformedUpdateError(f"{what} is not valid JSON: {exc}") from None


ITEM_BYTES = {"F32": 4, "I8": 1, "I32": 4}
"""Bytes per element of each dtype a container may hold."""

STORED_DTYPES = {np.dtype(np.int8): "<i1", np.dtype(np.int32): "<i4"}
"""Integer arrays keep their type on the wire; every other array is written as float32."""


def write_container(tensors: Mapping[str, np.ndarray], metadata: str) -> bytes:
    """A safetensors file of ``tensors`` with ``metadata`` under key ``flare``.

    int8 and int32 arrays are stored as such, anything else as little-endian float32.
    safetensors orders entries by dtype then name and pads the header with spaces, so
    the output depends only on the tensors' names, shapes, values and the metadata.
    """
    arrays = {
        name: np.asarray(array, dtype=STORED_DTYPES.get(np.asarray(array).dtype, "<f4"), order="C")
        for name, array in tensors.items()
    }
    return save(arrays, metadata={"flare": metadata})


@dataclass(frozen=True)
class ContainerHeader:
    """The validated header of a container: flare metadata and each tensor's shape."""

    metadata: str
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str] = field(default_factory=dict)


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


MAX_OFFSET = 1 << 64
"""safetensors offsets are unsigned 64-bit integers."""


def _byte_size(shape: list[int], item_bytes: int) -> int | None:
    """``item_bytes * prod(shape)``, or None once it passes :data:`MAX_OFFSET`.

    Stopping early matters: a header may list thousands of 30-digit dimensions, and their
    full product would take seconds to compute and could not even be printed.
    """
    if 0 in shape:
        return 0
    size = item_bytes
    for dim in shape:
        size *= dim
        if size > MAX_OFFSET:
            return None
    return size


def _tensor_entry(
    name: str, entry: Any, dtypes: tuple[str, ...]
) -> tuple[tuple[int, ...], int, int]:
    """Validate one tensor's header entry; return its shape and data offsets."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise MalformedUpdateError(
            f"header entry {shown(name)} must have exactly dtype, shape, data_offsets"
        )
    if not isinstance(entry["dtype"], str) or entry["dtype"] not in dtypes:
        allowed = "only F32 is" if dtypes == ("F32",) else f"only {', '.join(dtypes)} are"
        raise MalformedUpdateError(
            f"tensor {shown(name)} has dtype {shown(entry['dtype'])}; {allowed} allowed"
        )
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(_non_negative_int(d) for d in shape):
        raise MalformedUpdateError(f"tensor {shown(name)} has an invalid shape: {shown(shape)}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_non_negative_int(o) for o in offsets)
    ):
        raise MalformedUpdateError(
            f"tensor {shown(name)} has invalid data_offsets: {shown(offsets)}"
        )
    size = _byte_size(shape, ITEM_BYTES[entry["dtype"]])
    if size is None:
        raise MalformedUpdateError(
            f"tensor {shown(name)} has shape {shown(shape)}, over {MAX_OFFSET} bytes"
        )
    begin, end = offsets
    if end - begin != size:
        raise MalformedUpdateError(
            f"tensor {shown(name)} spans {end - begin} bytes but shape {shown(shape)} needs {size}"
        )
    return tuple(shape), begin, end


def read_container_header(
    data: bytes, max_header_bytes: int, dtypes: tuple[str, ...] = ("F32",)
) -> ContainerHeader:
    """Validate a container's framing and header without trusting any of it.

    Checks the 8-byte length prefix, the header size limit and alignment, strict JSON,
    the exact key set of every entry, dtypes among ``dtypes`` (float32 unless the reader
    says otherwise), and that the tensors' byte ranges tile the data section exactly
    (no gaps, overlaps or trailing bytes).
    """
    if len(data) < 8:
        raise MalformedUpdateError(f"truncated: {len(data)} bytes, a container needs at least 8")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > max_header_bytes:
        raise MalformedUpdateError(
            f"header length {header_len} exceeds the limit of {max_header_bytes} bytes"
        )
    if header_len == 0 or header_len % HEADER_ALIGNMENT:
        raise MalformedUpdateError(f"header length {header_len} is not a positive multiple of 8")
    if len(data) < 8 + header_len:
        raise MalformedUpdateError(
            f"truncated: header needs {8 + header_len} bytes, blob has {len(data)}"
        )
    try:
        header_text = data[8 : 8 + header_len].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedUpdateError("container header is not UTF-8") from None
    header = parse_json_strictly(header_text, "container header")
    if not isinstance(header, dict):
        raise MalformedUpdateError("container header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or set(metadata) != {"flare"}:
        raise MalformedUpdateError("container __metadata__ must hold exactly the key 'flare'")
    if not isinstance(metadata["flare"], str):
        raise MalformedUpdateError("container metadata 'flare' is not a string")

    shapes: dict[str, tuple[int, ...]] = {}
    spans = []
    for name, entry in header.items():
        shapes[name], begin, end = _tensor_entry(name, entry, dtypes)
        spans.append((begin, end, name))
    data_len = len(data) - 8 - header_len
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise MalformedUpdateError(
                f"tensor {shown(name)} starts at byte {begin}, expected {position}"
            )
        position = end
    if position != data_len:
        problem = "truncated" if position > data_len else "trailing bytes"
        raise MalformedUpdateError(
            f"{problem}: tensors need {position} data bytes, blob has {data_len}"
        )
    return ContainerHeader(
        metadata["flare"], shapes, {name: entry["dtype"] for name, entry in header.items()}
    )


def load_container_tensors(data: bytes) -> dict[str, np.ndarray]:
    """The tensors of a container whose header :func:`read_container_header` accepted."""
    try:
        loaded = load(data)
    except SafetensorError as exc:
        raise MalformedUpdateError(f"safetensors rejected the container: {exc}") from None
    return {name: np.array(array) for name, array in loaded.items()}


def gzip_compress(data: bytes) -> bytes:
    """Deterministic gzip: fixed header (no timestamp or host), fixed level, raw deflate."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(data) + compressor.flush()
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return GZIP_HEADER + body + trailer


def gzip_decompress(blob: bytes, max_output_bytes: int) -> bytes:
    """Inflate one gzip member, never producing more than ``max_output_bytes``.

    The output bound is enforced while inflating, so a decompression bomb costs at most
    ``max_output_bytes`` of memory. CRC and length trailers are verified by zlib.
    """
    if len(blob) < len(GZIP_HEADER) + 8:
        raise MalformedUpdateError(f"truncated gzip stream: {len(blob)} bytes")
    if blob[:4] != GZIP_HEADER[:4]:
        raise MalformedUpdateError("gzip stream must use deflate and set no header flags")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        output = inflater.decompress(blob, max_output_bytes + 1)
    except zlib.error as exc:
        raise MalformedUpdateError(f"corrupt gzip stream: {exc}") from None
    if len(output) > max_output_bytes:
        raise MalformedUpdateError(
            f"gzip stream inflates beyond the limit of {max_output_bytes} bytes"
        )
    if not inflater.eof:
        raise MalformedUpdateError("truncated gzip stream")
    if inflater.unused_data:
        raise MalformedUpdateError(
            f"{len(inflater.unused_data)} trailing bytes after the gzip stream"
        )
    return output

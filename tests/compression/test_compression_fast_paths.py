"""The shortcuts of the writer and the decoder's short path, against what they stand in for.

The binding is spelled out and read by a regular expression instead of by JSON, headers
are matched against a suffix cached per configuration and spec, finiteness is filtered by
one sum of squares, and the refusal guard is a plain class: each must decide exactly as
the general computation does, and a blob that differs from the writer's in any byte the
cache does not cover must leave the short path for the full validation.
"""

import json
import struct
import warnings
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.compression import MalformedUpdateError, UpdateBinding, decode_update, make_codec
from flare.compression.canonical import BINDING_PATTERN, read_canonical, spec_key
from flare.compression.container import HEADER_PREFIX, escaped_binding
from flare.compression.decode import header_limit
from flare.compression.dense import all_finite
from flare.compression.envelope import binding_json
from flare.compression.wire import canonical_json, gzip_compress, refusing_as

SPEC = {"fc.weight": (12, 10), "fc.bias": (12,), "out.weight": (3, 12)}
BINDING = UpdateBinding("0xc1", "task-7", 3, 1, "bafkreigh2akiscaildc", 120)

labels = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=256)
counters = st.integers(0, 2**63 - 1)
bindings = st.builds(
    UpdateBinding, labels, labels, counters, counters, labels, st.integers(1, 2**63 - 1)
)


def blob_of(codec_name: str = "none", binding: UpdateBinding = BINDING, **params: int) -> bytes:
    rng = np.random.default_rng(5)
    delta = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SPEC.items()}
    return make_codec(codec_name, **params).new_encoder(SPEC, 0).encode(delta, binding)


def short_path(container: bytes, spec: dict = SPEC, gzipped: bool = False):
    return read_canonical(container, spec_key(spec), header_limit(spec), gzipped)


def split(container: bytes) -> tuple[bytes, bytes]:
    """The header (after its length prefix) and the data section."""
    (header_len,) = struct.unpack_from("<Q", container)
    return container[8 : 8 + header_len], container[8 + header_len :]


def joined(header: bytes, data: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header + data


@settings(max_examples=200, deadline=None)
@given(binding=bindings)
def test_the_spelled_out_binding_is_its_canonical_json_and_reads_back(
    binding: UpdateBinding,
) -> None:
    assert binding_json(binding) == canonical_json(asdict(binding))
    escaped = escaped_binding(binding)
    assert escaped == json.dumps(binding_json(binding))[1:-1].encode("ascii")
    match = BINDING_PATTERN.fullmatch(escaped)
    assert match is not None
    canonical = short_path(blob_of(binding=binding))
    assert canonical is not None and canonical.binding == binding


def test_a_counter_with_a_leading_zero_leaves_the_short_path_and_is_refused() -> None:
    header, data = split(blob_of())
    padded = header.rstrip(b" ").replace(b'\\"round\\":3,', b'\\"round\\":03,', 1)
    forged = joined(padded + b" " * (-len(padded) % 8), data)
    assert short_path(forged) is None
    with pytest.raises(MalformedUpdateError, match="not valid JSON"):
        decode_update(forged, SPEC)


@pytest.mark.parametrize("character", [b"\\t", b"\\u00e9", b"\\u0001"])
def test_a_label_the_writer_never_writes_leaves_the_short_path_and_is_refused(
    character: bytes,
) -> None:
    """JSON escapes in a label parse, so only the binding's own check can refuse them."""
    header, data = split(blob_of())
    edited = header.rstrip(b" ").replace(b"task-7", b"task" + b"\\" + character, 1)
    forged = joined(edited + b" " * (-len(edited) % 8), data)
    assert short_path(forged) is None
    with pytest.raises(MalformedUpdateError, match="binding task"):
        decode_update(forged, SPEC)


@pytest.mark.parametrize("padding", [b"\t", b" " * 8, b"\n" + b" " * 7])
def test_padding_other_than_the_writers_leaves_the_short_path(padding: bytes) -> None:
    """The cache is keyed by the header without its trailing spaces; the spaces left are
    then counted, so more of them, or other whitespace, is not the writer's header."""
    header, data = split(blob_of())
    body = header.rstrip(b" ")
    edited = body + padding
    edited += b" " * (-len(edited) % 8)
    assert short_path(joined(edited, data)) is None
    assert decode_update(joined(edited, data), SPEC).binding == BINDING


@pytest.mark.parametrize("change", [b"", b"\0\0\0", b"\0" * 5, b"\0" * 8])
def test_a_data_section_of_another_length_leaves_the_short_path_and_is_refused(
    change: bytes,
) -> None:
    header, data = split(blob_of())
    forged = joined(header, data[:-4] + change)
    assert short_path(forged) is None
    with pytest.raises(MalformedUpdateError, match=r"truncated|trailing bytes"):
        decode_update(forged, SPEC)


def test_a_cached_suffix_is_the_key_of_its_own_spec_only() -> None:
    """A blob decoded once fills the cache for its spec; the same header read against a
    spec that differs only in a shape is not the writer's for that spec."""
    blob = blob_of()
    assert short_path(blob) is not None
    other = {**SPEC, "out.weight": (4, 9)}  # as many values, another shape
    assert short_path(blob, other) is None
    with pytest.raises(MalformedUpdateError, match="shape"):
        decode_update(blob, other)


def test_an_edited_layout_behind_a_valid_binding_leaves_the_short_path_and_is_refused() -> None:
    header, data = split(blob_of("powersgd", rank=2))
    edited = header.replace(b'\\"rank\\":2', b'\\"rank\\":1', 1)
    assert edited != header
    assert short_path(joined(edited, data)) is None
    with pytest.raises(MalformedUpdateError):
        decode_update(joined(edited, data), SPEC)


def test_framing_decides_too_a_gzipped_none_container_is_refused() -> None:
    container = blob_of("none")
    assert short_path(container, gzipped=True) is None
    with pytest.raises(MalformedUpdateError, match="gzip-framed"):
        decode_update(gzip_compress(container), SPEC)


def test_a_header_without_the_writers_opening_leaves_the_short_path() -> None:
    header, data = split(blob_of())
    assert header.startswith(HEADER_PREFIX)
    edited = header.replace(b'{"__metadata__":{', b'{ "__metadata__":{', 1)[:-1]
    assert short_path(joined(edited, data)) is None
    assert decode_update(joined(edited, data), SPEC).binding == BINDING


@pytest.mark.parametrize("size", [0, 1, 7, 1000, 100_000])
def test_all_finite_is_the_elementwise_check(size: int) -> None:
    rng = np.random.default_rng(size)
    values = rng.standard_normal(size).astype(np.float32)
    assert all_finite(values)
    for bad in (np.nan, np.inf, -np.inf):
        for place in {0, size // 2, size - 1} if size else set():
            forged = values.copy()
            forged[place] = bad
            assert not all_finite(forged)


def test_values_whose_squares_overflow_are_finite_and_raise_no_warning() -> None:
    huge = np.full(64, 3e38, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all_finite(huge)
        delta = {name: np.full(shape, -3e38, dtype=np.float32) for name, shape in SPEC.items()}
        blob = make_codec("none").new_encoder(SPEC, 0).encode(delta, BINDING)
        decoded = decode_update(blob, SPEC).delta
    assert all((decoded[name] == -3e38).all() for name in SPEC)


class OtherRefusal(MalformedUpdateError):
    pass


def test_refusing_as_passes_its_own_error_and_retypes_the_rest() -> None:
    own = OtherRefusal("own words")
    with pytest.raises(OtherRefusal) as caught, refusing_as(OtherRefusal, "thing"):
        raise own
    assert caught.value is own

    plain = pytest.raises(OtherRefusal, match=r"^plain refusal$")
    with plain as caught, refusing_as(OtherRefusal, "thing"):
        raise MalformedUpdateError("plain refusal")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    retyped = pytest.raises(OtherRefusal, match=r"thing could not be decoded \(KeyError: 'k'\)")
    with retyped as caught, refusing_as(OtherRefusal, "thing"):
        raise KeyError("k")
    assert isinstance(caught.value.__cause__, KeyError)

    with pytest.raises(MemoryError), refusing_as(OtherRefusal, "thing"):
        raise MemoryError  # depends on the host, not on the bytes: not a verdict

    with refusing_as(OtherRefusal, "thing"):
        pass

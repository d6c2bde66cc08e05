"""The decoder's short path: a header byte-equal to the writer's skips the full validation.

It must accept exactly the writer's headers, decode them to what the full validation
decodes, and hand everything else (a re-spelled header, a binding no writer accepts) to
the full validation, which decides.
"""

import struct
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.compression import MalformedUpdateError, UpdateBinding, decode_update, make_codec
from flare.compression import decode as decode_module
from flare.compression.canonical import expected_container, read_canonical, spec_key
from flare.compression.decode import UPDATE_DTYPES, header_limit
from flare.compression.envelope import FORMAT_VERSION
from flare.compression.wire import (
    GZIP_MAGIC,
    canonical_json,
    gzip_decompress,
    read_container_header,
)

SPEC = {
    "conv": (6, 2, 3, 3),
    "fc.weight": (10, 8),
    "bias": (8,),
    "empty": (0, 5),
    'quote"back\\slash': (4, 4),
    "ünïcode\n": (3, 2),
}
CODEC_PARAMS = {
    "none": {},
    "gzip": {},
    "powersgd": {"rank": 2},
    "powersgd-q8": {"rank": 2, "ratio": 4},
    "topk": {"per_mille": 100},
}
BINDING = UpdateBinding('0x"c1\\', "task-7", 3, 1, "bafkreigh2akiscaildc", 120)


def blob_of(codec_name: str, binding: UpdateBinding = BINDING) -> bytes:
    rng = np.random.default_rng(4)
    delta = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SPEC.items()}
    codec = make_codec(codec_name, **CODEC_PARAMS[codec_name])
    return codec.new_encoder(SPEC, 0).encode(delta, binding)


def container_of(blob: bytes) -> bytes:
    return gzip_decompress(blob, 10**7) if blob.startswith(GZIP_MAGIC) else blob


def short_path(blob: bytes):
    container = container_of(blob)
    return read_canonical(container, spec_key(SPEC), header_limit(SPEC), container is not blob)


def full_validation(blob: bytes, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patched:
        patched.setattr(decode_module, "read_writers_blob", lambda *args: None)
        return decode_update(blob, SPEC)


@pytest.mark.parametrize("codec_name", sorted(CODEC_PARAMS))
def test_the_writers_blobs_take_the_short_path_and_decode_as_fully_validated(
    codec_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = blob_of(codec_name)
    assert short_path(blob) is not None
    short, full = decode_update(blob, SPEC), full_validation(blob, monkeypatch)
    assert (short.codec, short.binding) == (full.codec, full.binding)
    assert list(short.delta) == list(full.delta)
    for name, tensor in short.delta.items():
        assert tensor.dtype == full.delta[name].dtype and tensor.shape == full.delta[name].shape
        assert tensor.tobytes() == full.delta[name].tobytes()
        assert not tensor.flags.writeable and not full.delta[name].flags.writeable


@settings(max_examples=60, deadline=None)
@given(
    sender=st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40),
    round_=st.integers(0, 2**63 - 1),
    samples=st.integers(1, 2**63 - 1),
)
def test_the_written_metadata_is_the_canonical_json_of_the_whole_metadata(
    sender: str, round_: int, samples: int
) -> None:
    binding = UpdateBinding(sender, "task", round_, 0, "base", samples)
    codec = make_codec("powersgd", rank=2)
    whole = {
        "format": FORMAT_VERSION,
        "codec": codec.name,
        "params": codec.params(),
        "binding": asdict(binding),
        "layout": [entry.to_json() for entry in codec.layout(SPEC)],
    }
    blob = blob_of("powersgd", binding)
    assert read_container_header(blob, 10**6, UPDATE_DTYPES).metadata == canonical_json(whole)


def test_a_respelled_header_leaves_the_short_path_and_is_still_decoded() -> None:
    container = blob_of("none")
    (header_len,) = struct.unpack_from("<Q", container)
    header = container[8 : 8 + header_len].rstrip(b" ")
    respelled = header[:-1] + b" " * 8 + b"}"  # JSON whitespace the writer never adds
    respelled += b" " * (-len(respelled) % 8)
    blob = struct.pack("<Q", len(respelled)) + respelled + container[8 + header_len :]
    assert short_path(blob) is None
    assert decode_update(blob, SPEC).binding == BINDING


def test_a_binding_no_writer_accepts_is_refused_even_in_the_writers_spelling() -> None:
    """The expected header is built from the blob's own binding, so the short path checks
    the binding as the full validation does, or it would accept a negative round."""
    expected = expected_container("none", (), spec_key(SPEC))
    forged = UpdateBinding("0xc1", "task-7", -1, 1, "base", 120)
    header = expected.header(forged)
    container = container_of(blob_of("none"))
    (header_len,) = struct.unpack_from("<Q", container)
    blob = struct.pack("<Q", len(header)) + header + container[8 + header_len :]
    assert short_path(blob) is None
    with pytest.raises(MalformedUpdateError, match="binding round"):
        decode_update(blob, SPEC)


@pytest.mark.parametrize("codec_name", ["powersgd", "none"])
def test_the_short_path_still_checks_the_values(codec_name: str) -> None:
    container = bytearray(container_of(blob_of(codec_name)))
    container[-4:] = np.array([np.nan], dtype="<f4").tobytes()
    assert short_path(bytes(container)) is not None
    with pytest.raises(MalformedUpdateError, match="NaN or Inf"):
        decode_update(bytes(container), SPEC)

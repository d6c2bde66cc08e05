"""The update writer assembles containers from cached pieces instead of calling safetensors,
and the short path reads the data section with one copy: both must be byte-for-byte what
safetensors and the full validation make of the same update, whatever the model."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flare.compression import MalformedUpdateError, UpdateBinding, decode_update, make_codec
from flare.compression import decode as decode_module
from flare.compression.canonical import read_canonical, spec_key
from flare.compression.decode import header_limit
from flare.compression.wire import (
    GZIP_MAGIC,
    gzip_decompress,
    load_container_tensors,
    read_container_header,
    write_container,
)
from flare.errors import ConfigError

CODECS = [
    ("none", {}),
    ("gzip", {}),
    ("powersgd", {"rank": 2}),
    ("powersgd-q8", {"rank": 3, "ratio": 2}),
    ("topk", {"per_mille": 200}),
]
BINDING = UpdateBinding("0xc1", "task", 2, 0, "base", 7)

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6)
shapes = st.lists(st.integers(0, 9), min_size=1, max_size=3).map(tuple)
specs = st.dictionaries(names, shapes, min_size=1, max_size=5)


def encoded(
    codec_name: str, params: dict, spec: dict, seed: int, binding: UpdateBinding = BINDING
) -> bytes:
    codec = make_codec(codec_name, **params)
    try:
        encoder = codec.new_encoder(spec, 0)
    except ConfigError:  # a name colliding with a factor's or safetensors' own
        assume(False)
    rng = np.random.default_rng(seed)
    delta = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in spec.items()}
    return encoder.encode(delta, binding)


def container_of(blob: bytes) -> bytes:
    return gzip_decompress(blob, 10**8) if blob.startswith(GZIP_MAGIC) else blob


labels = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40)
bindings = st.builds(
    UpdateBinding,
    labels,
    labels,
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
    labels,
    st.integers(1, 2**63 - 1),
)


@settings(max_examples=150, deadline=None)
@given(codec=st.sampled_from(CODECS), spec=specs, seed=st.integers(0, 2**32 - 1), binding=bindings)
def test_the_writer_writes_what_safetensors_writes_and_both_paths_decode_alike(
    codec: tuple[str, dict], spec: dict, seed: int, binding: UpdateBinding
) -> None:
    blob = encoded(*codec, spec, seed, binding)
    container = container_of(blob)
    metadata = read_container_header(container, 10**6, ("F32", "I8", "I32")).metadata
    assert write_container(load_container_tensors(container), metadata) == container

    gzipped = container is not blob
    assert read_canonical(container, spec_key(spec), header_limit(spec), gzipped) is not None
    short = decode_update(blob, spec)
    assert short.binding == binding
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(decode_module, "read_writers_blob", lambda *args: None)
        full = decode_update(blob, spec)
    assert list(short.delta) == list(full.delta) == list(spec)
    for name, tensor in short.delta.items():
        assert tensor.dtype == np.float32 and tensor.shape == spec[name]
        assert tensor.tobytes() == full.delta[name].tobytes()


def float_spans(container: bytes, spec: dict) -> list[tuple[str, int, int]]:
    """(name, first byte, end) of every non-empty float32 tensor in the container."""
    canonical = read_canonical(container, spec_key(spec), header_limit(spec), False)
    header = read_container_header(container, 10**6, ("F32", "I8", "I32"))
    start = len(container) - sum(array.nbytes for array in canonical.tensors.values())
    spans, offset = [], start
    for name, array in canonical.tensors.items():
        if header.dtypes[name] == "F32" and array.size:
            spans.append((name, offset, offset + array.nbytes))
        offset += array.nbytes
    return spans


@pytest.mark.parametrize(("codec_name", "params"), [CODECS[2], CODECS[3], CODECS[4]])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_value_in_any_float_tensor_is_refused_by_name(
    codec_name: str, params: dict, value: float
) -> None:
    spec = {"a": (6, 5), "b": (6,), "c": (4, 7)}
    container = encoded(codec_name, params, spec, 1)
    spans = float_spans(container, spec)
    assert len(spans) >= 3
    for name, begin, end in spans:
        forged = bytearray(container)
        middle = begin + ((end - begin) // 8) * 4
        forged[middle : middle + 4] = np.array([value], dtype="<f4").tobytes()
        with pytest.raises(MalformedUpdateError, match=f"tensor {name!r} contains NaN or Inf"):
            decode_update(bytes(forged), spec)


@pytest.mark.parametrize("canonical", [True, False], ids=["writers-header", "full-validation"])
def test_decoded_tensors_are_read_only_and_the_blob_cannot_change_through_them(
    canonical: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer's blob decodes to views of its own bytes (no copy): nothing may write
    through them, on either way of reading a blob."""
    spec = {"w": (3, 4), "b": (3,)}
    blob = encoded("none", {}, spec, 2)
    if not canonical:
        monkeypatch.setattr(decode_module, "read_writers_blob", lambda *args: None)
    decoded = decode_update(blob, spec).delta
    for tensor in decoded.values():
        with pytest.raises(ValueError, match="read-only"):
            tensor[...] = 7.0
    assert np.shares_memory(decoded["w"], np.frombuffer(blob, np.uint8)) == canonical
    assert decode_update(blob, spec).delta["b"].tobytes() == decoded["b"].tobytes()

"""The native lane (native/src/writer.rs and reader.rs) against Python, the reference.

The reader is a second decoder of strangers' bytes, so it is held to one rule on any input:
whatever it accepts, Python's full validation accepts too and decodes to the same bits and
binding. Its writer of ``none`` blobs writes Python's bytes; its PowerSGD power step sums in
an order of its own, the same on every instruction set, and is held to Python's result.
"""

import dataclasses
import struct

import numpy as np
import pytest
from hostile_inputs import mutated
from hypothesis import given, settings
from hypothesis import strategies as st

import flare.compression.decode as decode_module
from flare.compression import (
    DecodedUpdate,
    MalformedUpdateError,
    UpdateBinding,
    decode_update,
    make_codec,
)
from flare.compression.canonical import spec_key
from flare.compression.container import HEADER_PREFIX
from flare.compression.decode import header_limit
from flare.compression.dense import checked_delta
from flare.compression.native import native_writer, python_only, read_natively

flare_native = pytest.importorskip("flare_native")

SPEC = {"conv": (6, 2, 3, 3), "fc": (10, 8), "bias": (8,), "big": (40, 24)}
BINDING = UpdateBinding('0x"c1\\', "task-7", 3, 1, "bafkreigh2akiscaildc", 120)
CODECS = {"none": {}, "powersgd": {"rank": 2}}

labels = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=256)
counters = st.integers(0, 2**63 - 1)
bindings = st.builds(
    UpdateBinding, labels, labels, counters, counters, labels, st.integers(1, 2**63 - 1)
)


def delta_of(seed: int, spec: dict = SPEC) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in spec.items()}


def python_decode(blob: bytes, spec: dict = SPEC):
    """decode_update with the native lane off: Python's own short path or full validation."""
    with python_only():
        return decode_update(blob, spec)


def native_read(blob: bytes, spec: dict = SPEC):
    return read_natively(blob, spec_key(spec), header_limit(spec))


def assert_same(native, python) -> None:
    assert (native.codec, native.binding) == (python.codec, python.binding)
    assert hash(native.binding) == hash(python.binding)
    assert repr(native.binding) == repr(python.binding)
    assert type(native.binding.round) is int and type(native.binding.sender) is str
    assert list(native.delta) == list(python.delta)
    for name, tensor in native.delta.items():
        assert tensor.dtype == np.float32 and tensor.shape == python.delta[name].shape
        assert tensor.tobytes() == python.delta[name].tobytes()
        assert not tensor.flags.writeable


def test_the_native_lane_is_built_and_writes_and_reads_the_writers_blobs() -> None:
    """``scripts/setup.sh`` builds ``native/``; a checkout without it would pass the other
    tests here, with Python doing all the work."""
    for codec_name, params in CODECS.items():
        encoder = make_codec(codec_name, **params).new_encoder(SPEC, 0)
        assert native_writer(encoder.container) is not None
        blob = encoder.encode(delta_of(1), BINDING)
        decode_update(blob, SPEC)  # the first blob of a configuration teaches the reader
        read = native_read(blob)
        assert read is not None
        assert_same(read, python_decode(blob))
        with python_only(), pytest.MonkeyPatch.context() as patched:
            patched.setattr(decode_module, "read_writers_blob", lambda *args: None)
            assert_same(read, decode_update(blob, SPEC))  # rules 3-8, each checked
    for codec_name in ("powersgd-q8", "gzip", "topk"):
        assert native_writer(make_codec(codec_name).new_encoder(SPEC, 0).container) is None


@settings(max_examples=60, deadline=None)
@given(binding=bindings, seed=st.integers(0, 2**16))
def test_a_none_blob_is_byte_for_byte_what_python_writes_and_reads_back(
    binding: UpdateBinding, seed: int
):
    encoder = make_codec("none").new_encoder(SPEC, 0)
    delta = delta_of(seed)
    expected = encoder.container.write(binding, checked_delta(delta, SPEC))
    assert encoder.encode(delta, binding) == expected
    decode_update(expected, SPEC)
    read = native_read(expected)
    assert read is not None and read.binding == binding
    assert_same(read, python_decode(expected))


def test_the_decoded_types_set_nothing_up_that_the_native_reader_skips() -> None:
    """The native reader fills the frozen dataclasses' ``__dict__`` directly
    (``native/src/reader.rs``, ``filled``): right only while ``__init__`` does nothing else."""
    for cls in (UpdateBinding, DecodedUpdate):
        assert dataclasses.is_dataclass(cls) and not hasattr(cls, "__post_init__")
        assert all(field.default is dataclasses.MISSING for field in dataclasses.fields(cls))
        assert cls.__setattr__ is not object.__setattr__  # frozen: nothing may set a field later


@settings(max_examples=300, deadline=None)
@given(codec_name=st.sampled_from(sorted(CODECS)), data=st.data())
def test_whatever_the_native_reader_accepts_python_accepts_alike(codec_name: str, data) -> None:
    blob = (
        make_codec(codec_name, **CODECS[codec_name])
        .new_encoder(SPEC, 2)
        .encode(delta_of(3), BINDING)
    )
    decode_update(blob, SPEC)
    forged = mutated(blob, data)
    native = native_read(forged)
    if native is None:
        return
    assert_same(native, python_decode(forged))


@settings(max_examples=300, deadline=None)
@given(
    codec_name=st.sampled_from(sorted(CODECS)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=3)), min_size=1, max_size=3),
)
def test_a_binding_edited_in_place_is_read_natively_only_as_python_reads_it(
    codec_name: str, edits: list[tuple[int, bytes]]
) -> None:
    """Bytes of the binding replaced, dropped or added, the header's length kept true: the
    native reader's parser of labels and counters against Python's regular expression."""
    blob = (
        make_codec(codec_name, **CODECS[codec_name])
        .new_encoder(SPEC, 2)
        .encode(delta_of(3), BINDING)
    )
    decode_update(blob, SPEC)
    (header_len,) = struct.unpack_from("<Q", blob)
    header, data = bytearray(blob[8 : 8 + header_len]), blob[8 + header_len :]
    start = len(HEADER_PREFIX)
    end = header.index(b"}", start) + 1
    for offset, replacement in edits:
        at = start + offset % (end - start)
        header[at : at + len(replacement) % 2 + 1] = replacement
    header = header.rstrip(b" ")
    header += b" " * (-len(header) % 8)
    forged = struct.pack("<Q", len(header)) + bytes(header) + data
    native = native_read(forged)
    if native is not None:
        assert_same(native, python_decode(forged))


@pytest.mark.parametrize("value", [np.nan, np.inf, np.float32(1e-3), np.float32(3e38)], ids=str)
def test_a_factor_off_its_grid_or_not_finite_is_left_to_python_which_refuses_it(value) -> None:
    encoder = make_codec("powersgd", rank=2).new_encoder(SPEC, 4)
    blob = encoder.encode(delta_of(5), BINDING)
    decode_update(blob, SPEC)
    forged = bytearray(blob)
    forged[-4:] = np.array([value], dtype="<f4").tobytes()  # an entry of the last factor
    assert native_read(bytes(forged)) is None
    with pytest.raises(MalformedUpdateError, match=r"NaN or Inf|off its|overflows"):
        decode_update(bytes(forged), SPEC)


def test_the_native_power_step_is_pythons_to_float32_rounding() -> None:
    """Both encoders take the same step from the same state; only the products' summation
    order differs, so the decoded updates and the errors carried differ by rounding."""
    native = make_codec("powersgd", rank=4).new_encoder(SPEC, 6)
    python = make_codec("powersgd", rank=4).new_encoder(SPEC, 6)
    for round_ in range(4):
        delta = delta_of(10 + round_)
        ours = decode_update(native.encode(delta, BINDING), SPEC).delta
        with python_only():
            theirs = decode_update(python.encode(delta, BINDING), SPEC).delta
        for name in SPEC:
            scale = np.linalg.norm(theirs[name]) + 1e-30
            assert np.linalg.norm(ours[name] - theirs[name]) / scale < 1e-3
            owed = np.linalg.norm(
                native.error_memory.get(name, 0) - python.error_memory.get(name, 0)
            )
            assert owed <= 1e-3 * np.linalg.norm(delta[name]) * (round_ + 1)


def test_every_instruction_set_writes_the_same_bytes() -> None:
    levels = flare_native.simd_levels()
    current = flare_native.simd_level()
    streams = []
    try:
        for level in levels:
            flare_native.use_simd_level(level)
            encoder = make_codec("powersgd", rank=3).new_encoder(SPEC, 7)
            streams.append([encoder.encode(delta_of(20 + r), BINDING) for r in range(3)])
            blob = streams[-1][-1]
            decode_update(blob, SPEC)
            streams[-1].append(b"".join(t.tobytes() for t in native_read(blob).delta.values()))
    finally:
        flare_native.use_simd_level(current)
    assert len(levels) >= 1 and all(stream == streams[0] for stream in streams)
    with pytest.raises(ValueError, match="does not run"):
        flare_native.use_simd_level("sse9")


def test_error_feedback_carries_exactly_what_the_decoder_did_not_see() -> None:
    """error after = delta + error before - decoded, in float32, for every factored tensor."""
    encoder = make_codec("powersgd", rank=2).new_encoder(SPEC, 8)
    for round_ in range(3):
        delta = delta_of(30 + round_)
        before = {name: array.copy() for name, array in encoder.error_memory.items()}
        decoded = decode_update(encoder.encode(delta, BINDING), SPEC).delta
        for name, owed in encoder.error_memory.items():
            matrix = delta[name].reshape(owed.shape) + before[name]
            expected = matrix - decoded[name].reshape(owed.shape)
            assert owed.tobytes() == expected.astype(np.float32).tobytes()


@pytest.mark.parametrize("bad", [{"fc": np.nan}, {"big": np.float32(np.inf)}], ids=["nan", "inf"])
def test_a_refused_delta_changes_no_state_and_python_names_it(bad: dict) -> None:
    encoder = make_codec("powersgd", rank=2).new_encoder(SPEC, 9)
    encoder.encode(delta_of(40), BINDING)
    state = {name: a.tobytes() for name, a in {**encoder.error_memory, **encoder.warm_q}.items()}
    delta = delta_of(41)
    name, value = next(iter(bad.items()))
    delta[name].flat[3] = value
    with pytest.raises(MalformedUpdateError, match=f"delta {name!r} contains NaN or Inf"):
        encoder.encode(delta, BINDING)
    after = {name: a.tobytes() for name, a in {**encoder.error_memory, **encoder.warm_q}.items()}
    assert after == state


def test_input_the_native_lane_does_not_take_is_encoded_by_python() -> None:
    """float64, a transposed view, a wrong binding: Python converts, or refuses by name."""
    delta = delta_of(50)
    wide = {name: array.astype(np.float64) for name, array in delta.items()}
    twin = {name: np.asfortranarray(array) for name, array in delta.items()}
    for each in (wide, twin):
        blob = make_codec("none").new_encoder(SPEC, 0).encode(each, BINDING)
        assert python_decode(blob).delta["fc"].tobytes() == delta["fc"].tobytes()
    encoder = make_codec("powersgd", rank=2).new_encoder(SPEC, 0)
    with pytest.raises(MalformedUpdateError, match="binding sender"):
        encoder.encode(delta, UpdateBinding("", "t", 0, 0, "b", 1))
    with pytest.raises(MalformedUpdateError, match="binding round"):
        encoder.encode(delta, UpdateBinding("s", "t", True, 0, "b", 1))


def test_a_rebuilt_tensor_starts_a_cache_line_and_nothing_writes_through_it() -> None:
    """The reader places each factored layer it rebuilds on a 64-byte boundary (numpy's own
    allocation is 16-byte aligned); the view and the storage behind it stay read-only."""
    encoder = make_codec("powersgd", rank=2).new_encoder(SPEC, 0)
    blob = encoder.encode(delta_of(1), BINDING)
    decode_update(blob, SPEC)  # the first blob of a configuration teaches the reader
    read = native_read(blob)
    assert read is not None
    for name in ("conv", "fc", "big"):  # the factored layers
        tensor = read.delta[name]
        assert tensor.ctypes.data % 64 == 0 and tensor.flags.c_contiguous
        assert not tensor.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            tensor.base[0] = 1.0
    assert_same(read, python_decode(blob))

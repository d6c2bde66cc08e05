"""Lossless codecs, bindings, determinism and the codec registry."""

import copy
import hashlib
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import load

from flare.compression import (
    CODECS,
    MalformedUpdateError,
    PowerSGDCodec,
    UpdateBinding,
    decode_update,
    make_codec,
)
from flare.compression.decode import header_limit
from flare.compression.wire import GZIP_HEADER, nesting_depth
from flare.errors import ConfigError

BINDING = UpdateBinding("0xc1", "task-7", 3, 1, "bafkreigh2akiscaildc", 120)

names = st.text(alphabet="abcxyz._0123", min_size=1, max_size=12)
shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)
specs = st.dictionaries(names, shapes, min_size=1, max_size=4)
labels = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)
counters = st.integers(0, 2**63 - 1)
bindings = st.builds(
    UpdateBinding,
    sender=labels.filter(lambda s: len(s) <= 256),
    task=labels.filter(lambda s: len(s) <= 256),
    round=counters,
    attempt=counters,
    base_model=labels.filter(lambda s: len(s) <= 256),
    num_samples=st.integers(1, 2**63 - 1),
)


@st.composite
def spec_and_delta(draw):
    spec = draw(specs)
    delta = {
        name: draw(
            hnp.arrays(
                np.float32,
                shape,
                elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
            )
        )
        for name, shape in spec.items()
    }
    return spec, delta


def same_bits(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
        for k in a
    )


@pytest.mark.parametrize("codec_name", ["none", "gzip"])
@settings(max_examples=40, deadline=None)
@given(case=spec_and_delta(), binding=bindings)
def test_lossless_codecs_round_trip_bit_for_bit(codec_name, case, binding):
    spec, delta = case
    blob = make_codec(codec_name).new_encoder(spec, seed=0).encode(delta, binding)
    decoded = decode_update(blob, spec)
    assert same_bits(decoded.delta, delta)
    assert decoded.binding == binding
    assert decoded.codec == codec_name


@settings(max_examples=40, deadline=None)
@given(binding=bindings)
def test_binding_round_trips_through_powersgd(binding):
    spec = {"w": (12, 10), "b": (10,)}
    delta = {"w": np.ones((12, 10), np.float32), "b": np.zeros(10, np.float32)}
    blob = PowerSGDCodec(rank=2).new_encoder(spec, seed=1).encode(delta, binding)
    assert decode_update(blob, spec).binding == binding


@pytest.mark.parametrize("codec_name", sorted(CODECS))
def test_same_input_and_state_give_same_bytes(codec_name):
    spec = {"conv": (8, 3, 3, 3), "fc": (20, 16), "bias": (20,)}
    rng = np.random.default_rng(5)
    delta = {k: rng.standard_normal(s).astype(np.float32) for k, s in spec.items()}
    encoder = make_codec(codec_name).new_encoder(spec, seed=9)
    twin = copy.deepcopy(encoder)
    assert encoder.encode(delta, BINDING) == twin.encode(delta, BINDING)
    other_binding = UpdateBinding("0xc1", "task-7", 4, 1, "bafkreigh2akiscaildc", 120)
    assert encoder.encode(delta, BINDING) != twin.encode(delta, other_binding)


@pytest.mark.parametrize("codec_name", sorted(CODECS))
def test_a_stateless_codecs_encoders_all_send_the_same_bytes_and_a_stateful_one_carries_state(
    codec_name,
):
    spec = {"fc": (20, 16), "bias": (20,)}
    rng = np.random.default_rng(6)
    delta = {k: rng.standard_normal(s).astype(np.float32) for k, s in spec.items()}
    codec = make_codec(codec_name)
    encoder = codec.new_encoder(spec, seed=1)
    first = encoder.encode(delta, BINDING)
    again = encoder.encode(delta, BINDING)
    other = codec.new_encoder(spec, seed=2).encode(delta, BINDING)
    assert (first == again == other) is codec.stateless
    assert codec.stateless is (codec_name in {"none", "gzip"})


def test_gzip_blob_has_fixed_header_and_none_blob_is_plain_safetensors():
    spec = {"w": (4, 5)}
    delta = {"w": np.arange(20, dtype=np.float32).reshape(4, 5)}
    gzipped = make_codec("gzip").new_encoder(spec, 0).encode(delta, BINDING)
    assert gzipped[:10] == GZIP_HEADER  # no timestamp, no host byte
    plain = make_codec("none").new_encoder(spec, 0).encode(delta, BINDING)
    np.testing.assert_array_equal(load(plain)["w"], delta["w"])


def test_gzip_shrinks_compressible_updates():
    spec = {"w": (64, 64)}
    delta = {"w": np.zeros((64, 64), np.float32)}
    sizes = {
        name: len(make_codec(name).new_encoder(spec, 0).encode(delta, BINDING))
        for name in ("none", "gzip")
    }
    assert sizes["gzip"] * 10 < sizes["none"]


def test_worst_case_names_and_labels_fit_the_header_limit():
    # Every escape at once: quotes, backslashes, control and non-BMP characters.
    nasty = '"\\\x01\U0001f600é' * 8
    spec = {nasty + "w": (40, 30), nasty + "b": (30,), nasty: (2, 3, 4, 5)}
    binding = UpdateBinding('"\\' * 128, '"\\' * 128, 0, 0, '"\\' * 128, 1)
    delta = {k: np.ones(s, np.float32) for k, s in spec.items()}
    codecs = [make_codec(name) for name in ("none", "powersgd-q8", "topk")]
    for codec in (*codecs, PowerSGDCodec(rank=1)):
        assert any(entry.kind != "dense" for entry in codec.layout(spec)) or codec.name == "none"
        blob = codec.new_encoder(spec, 0).encode(delta, binding)
        (header_len,) = struct.unpack("<Q", blob[:8])
        assert header_len <= header_limit(spec)
        assert decode_update(blob, spec).binding == binding


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("zstd", {}, "unknown codec"),
        ("powersgd", {"rank": 0}, "rank"),
        ("powersgd", {"rank": 1025}, "rank"),
        ("powersgd", {"rank": 2.0}, "rank"),
        ("powersgd", {"rank": True}, "rank"),
        ("powersgd", {"rank": "4"}, "rank"),
        ("powersgd", {"rnak": 4}, "unknown"),
        ("none", {"level": 9}, "unknown"),
        ("powersgd-q8", {"ratio": 0}, "ratio"),
        ("powersgd-q8", {"ratio": 4097}, "ratio"),
        ("powersgd-q8", {"ratio": True}, "ratio"),
        ("powersgd-q8", {"rank": 0}, "rank"),
        ("topk", {"per_mille": 0}, "per_mille"),
        ("topk", {"per_mille": 1001}, "per_mille"),
        ("topk", {"per_mille": 1.5}, "per_mille"),
        ("topk", {"rank": 4}, "unknown"),
    ],
)
def test_make_codec_rejects_bad_configuration(name, params, message):
    with pytest.raises(ConfigError, match=message):
        make_codec(name, **params)


def test_make_codec_builds_each_registered_codec_with_defaults():
    assert {name: make_codec(name).params() for name in CODECS} == {
        "none": {},
        "gzip": {},
        "powersgd": {"rank": 4},
        "powersgd-q8": {"rank": 8, "ratio": 48},
        "topk": {"per_mille": 10},
    }


@pytest.mark.parametrize(
    ("codec_name", "spec"),
    [
        ("powersgd", {"w": (9, 9), "w:P": (3,)}),
        ("powersgd", {"__metadata__": (3,)}),
        ("powersgd-q8", {"w": (9, 9), "w:S": (3,)}),
        ("topk", {"w": (90, 90), "w:I": (3,)}),
    ],
)
def test_specs_whose_names_collide_on_the_wire_are_refused(codec_name, spec):
    params = {"rank": 1} if codec_name == "powersgd" else {}
    with pytest.raises(ConfigError, match="collides"):
        make_codec(codec_name, **params).new_encoder(spec, 0)


@pytest.mark.parametrize("codec_name", sorted(CODECS))
@pytest.mark.parametrize(
    ("delta", "message"),
    [
        ({"w": np.full((9, 8), np.nan, np.float32)}, "NaN"),
        ({"w": np.full((9, 8), 1e39)}, "Inf"),
        ({"w": np.zeros((8, 9), np.float32)}, "shape"),
        ({"w": np.zeros((9, 8), np.float32), "extra": np.zeros(1, np.float32)}, "extra"),
    ],
)
def test_encoders_refuse_deltas_the_decoder_would_refuse(codec_name, delta, message):
    encoder = make_codec(codec_name).new_encoder({"w": (9, 8)}, 0)
    with pytest.raises(MalformedUpdateError, match=message):
        encoder.encode(delta, BINDING)


@pytest.mark.parametrize(
    "binding",
    [
        UpdateBinding("", "t", 0, 0, "b", 1),
        UpdateBinding("x" * 257, "t", 0, 0, "b", 1),
        UpdateBinding("s", "tâche", 0, 0, "b", 1),
        UpdateBinding("s", "t", -1, 0, "b", 1),
        UpdateBinding("s", "t", 0, 2**63, "b", 1),
        UpdateBinding("s", "t", 1.0, 0, "b", 1),
        UpdateBinding("s", "t", 0, 0, "b", 0),
    ],
)
def test_encoders_refuse_bindings_that_cannot_round_trip(binding):
    with pytest.raises(MalformedUpdateError, match="binding"):
        make_codec("none").new_encoder({"w": (2,)}, 0).encode(
            {"w": np.zeros(2, np.float32)}, binding
        )


def _nesting_depth_by_scanning(text: str) -> int:
    """The definition: a character-by-character scan that skips string literals."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='[]{}"\\a\n', max_size=60))
def test_vectorised_nesting_depth_equals_the_scan(text):
    assert nesting_depth(text) == _nesting_depth_by_scanning(text)


def test_nesting_depth_stays_linear_on_escaped_quotes_after_an_unclosed_string():
    text = '"' + '\\"' * 200_000 + "[" * 10
    started = time.perf_counter()
    assert nesting_depth(text) == 0
    assert time.perf_counter() - started < 1.0


# Digests of three successive blobs from one encoder, recorded before the codec speed-ups and
# the new codecs (topk: when it was added). PowerSGD's are not pinned: its encoder's power
# step is a BLAS product, whose rounding may differ between machines (its decoder's is not).
PINNED_BLOB_DIGESTS = {
    "none": "9937848fac574c7a29fd819d0425e779889273ab4781b453b6b4f7863bd4b805",
    "gzip": "d2b75bbaf4e6588bd9c765e25fa4cf148464f81c6336986dfcd5a3ed9a829b17",
    "topk": "531b64a118739a436b47047c058147c7d04af226fb3d7101483e120c8ecca59d",
}


@pytest.mark.parametrize("codec_name", sorted(PINNED_BLOB_DIGESTS))
def test_blob_bytes_are_the_pinned_ones(codec_name):
    spec = {"conv": (6, 2, 3, 3), "fc": (10, 8), "bias": (8,)}
    rng = np.random.default_rng(11)
    deltas = [
        {name: rng.standard_normal(shape).astype(np.float32) for name, shape in spec.items()}
        for _ in range(3)
    ]
    encoder = make_codec(codec_name).new_encoder(spec, 5)
    digest = hashlib.sha256()
    for delta in deltas:
        digest.update(encoder.encode(delta, BINDING))
    assert digest.hexdigest() == PINNED_BLOB_DIGESTS[codec_name]

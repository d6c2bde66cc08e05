"""The decoder against hostile input: every defect is a MalformedUpdateError, nothing else."""

import json
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.compression import MalformedUpdateError, UpdateBinding, decode_update, make_codec
from flare.compression.decode import blob_limit, container_limit
from flare.compression.wire import (
    canonical_json,
    gzip_compress,
    load_container_tensors,
    read_container_header,
    write_container,
)

SPEC = {"conv": (6, 2, 3, 3), "fc": (10, 8), "bias": (8,)}
BINDING = UpdateBinding("0xc1", "task-7", 3, 1, "bafkreigh2akiscaildc", 120)
DELTA = {
    name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for name, shape in SPEC.items()
}
CODEC_PARAMS = {"none": {}, "gzip": {}, "powersgd": {"rank": 2}}
BLOBS = {
    name: make_codec(name, **params).new_encoder(SPEC, 0).encode(DELTA, BINDING)
    for name, params in CODEC_PARAMS.items()
}


def rejects(blob: bytes, message: str, **kwargs) -> None:
    with pytest.raises(MalformedUpdateError, match=message):
        decode_update(blob, SPEC, **kwargs)


def tamper(codec_name: str, edit_metadata=None, edit_tensors=None, gzip=None) -> bytes:
    """Re-encode a valid blob after editing its metadata and/or tensors."""
    blob = BLOBS["powersgd" if codec_name == "powersgd" else "none"]
    metadata = json.loads(read_container_header(blob, 10**6).metadata)
    metadata["codec"] = codec_name
    tensors = load_container_tensors(blob)
    if edit_metadata:
        edit_metadata(metadata)
    if edit_tensors:
        edit_tensors(tensors)
    container = write_container(tensors, canonical_json(metadata))
    wrap = codec_name == "gzip" if gzip is None else gzip
    return gzip_compress(container) if wrap else container


def raw_container(header: dict | str, data: bytes = b"") -> bytes:
    """A container with a hand-written header (padded to 8 bytes as safetensors does)."""
    text = header if isinstance(header, str) else json.dumps(header)
    encoded = text.encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + data


def valid_header(**tensors) -> dict:
    metadata = read_container_header(BLOBS["none"], 10**6).metadata
    return {"__metadata__": {"flare": metadata}, **tensors}


def test_tamper_helper_without_edits_gives_valid_blobs():
    for name in CODEC_PARAMS:
        assert decode_update(tamper(name), SPEC).codec == name


# --- size, truncation, random bytes ---------------------------------------------------


@pytest.mark.parametrize("codec_name", sorted(BLOBS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_strict_prefix_is_rejected(codec_name, data):
    blob = BLOBS[codec_name]
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(MalformedUpdateError):
        decode_update(blob[:cut], SPEC)


@pytest.mark.parametrize("codec_name", sorted(BLOBS))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_byte_flips_raise_only_malformed_update_error(codec_name, data):
    blob = bytearray(BLOBS[codec_name])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] ^= data.draw(st.integers(1, 255))
    try:
        decoded = decode_update(bytes(blob), SPEC)
    except MalformedUpdateError:
        return
    for array in decoded.delta.values():  # a flip inside tensor data may still be valid
        assert np.isfinite(array).all()


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=300) | st.binary(max_size=40).map(lambda b: b"\x1f\x8b\x08\x00" + b))
def test_random_bytes_raise_only_malformed_update_error(blob):
    with pytest.raises(MalformedUpdateError):
        decode_update(blob, SPEC)


@settings(max_examples=100, deadline=None)
@given(
    header=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_random_json_headers_raise_only_malformed_update_error(header):
    with pytest.raises(MalformedUpdateError):
        decode_update(raw_container(json.dumps(header)), SPEC)


def test_blob_over_the_callers_limit_is_rejected():
    blob = BLOBS["none"]
    assert decode_update(blob, SPEC, max_blob_bytes=len(blob)).codec == "none"
    rejects(blob, "limit", max_blob_bytes=len(blob) - 1)


def test_blob_over_the_spec_derived_limit_is_rejected_before_parsing():
    rejects(b"\0" * (blob_limit(SPEC) + 1), "limit")


def test_header_length_over_the_limit_is_rejected():
    rejects(struct.pack("<Q", 2**63) + b"{}", "header length")


def test_decompression_bomb_is_stopped_at_the_spec_bound():
    bomb = gzip_compress(b"\0" * (container_limit(SPEC) + 1))
    assert len(bomb) < len(BLOBS["none"])
    rejects(bomb, "inflates beyond")


def test_decompression_bomb_never_inflates_in_full():
    bomb = gzip_compress(bytes(10_000_000))
    assert len(bomb) <= blob_limit(SPEC)  # so only the inflate bound can stop it
    tracemalloc.start()
    try:
        rejects(bomb, "inflates beyond")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (BLOBS["gzip"] + b"\0", "trailing"),
        (BLOBS["gzip"][:-4] + b"\0\0\0\0", "corrupt gzip"),
        (BLOBS["gzip"][:-30], "truncated gzip"),
        (BLOBS["gzip"][:3] + b"\x08" + BLOBS["gzip"][4:], "flags"),
        (b"not bytes", "bytes"),
    ],
)
def test_gzip_framing_defects_are_rejected(blob, message):
    if message == "bytes":
        blob = bytearray(blob).decode()
    rejects(blob, message)


def test_gzip_framing_must_match_the_codec():
    rejects(tamper("none", gzip=True), "gzip-framed")
    rejects(tamper("gzip", gzip=False), "not gzip-framed")


# --- container header -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x10\0\0\0\0\0\0\0" + b"\xff" * 16, "UTF-8"),
        (raw_container("{not json"), "not valid JSON"),
        (raw_container('{"a": 1, "a": 2}'), "duplicate"),
        (raw_container('{"a": NaN}'), "NaN"),
        (raw_container("[" * 4000 + "]" * 4000), "not valid JSON"),
        (raw_container("[]"), "not a JSON object"),
        (raw_container({"w": {}}), "__metadata__"),
        (raw_container({"__metadata__": {"flare": "{}", "x": "y"}}), "__metadata__"),
        (raw_container({"__metadata__": {"flare": 1}}), "not a string"),
        (struct.pack("<Q", 12) + b"{}" + b" " * 10, "multiple of 8"),
        (struct.pack("<Q", 0), "multiple of 8"),
    ],
)
def test_malformed_container_headers_are_rejected(blob, message):
    rejects(blob, message)


F32_4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}


@pytest.mark.parametrize(
    ("entries", "data", "message"),
    [
        ({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, bytes(8), "only F32"),
        ({"w": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]}}, bytes(32), "only F32"),
        ({"w": {**F32_4, "extra": 1}}, bytes(16), "exactly dtype"),
        ({"w": {**F32_4, "shape": [-4]}}, bytes(16), "invalid shape"),
        ({"w": {**F32_4, "shape": [4.0]}}, bytes(16), "invalid shape"),
        ({"w": {**F32_4, "data_offsets": [0]}}, bytes(16), "data_offsets"),
        ({"w": {**F32_4, "data_offsets": [0, 12]}}, bytes(16), "needs 16"),
        ({"w": {**F32_4, "data_offsets": [4, 20]}}, bytes(20), "starts at byte 4"),
        ({"w": F32_4, "v": F32_4}, bytes(16), "starts at byte 0, expected 16"),
        ({"w": F32_4}, bytes(20), "trailing bytes"),
        ({"w": F32_4}, bytes(12), "truncated"),
    ],
)
def test_malformed_tensor_entries_are_rejected(entries, data, message):
    rejects(raw_container(valid_header(**entries), data), message)


# --- metadata schema ------------------------------------------------------------------


def set_path(path: tuple, value):
    def edit(metadata):
        target = metadata
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def delete(path: tuple):
    def edit(metadata):
        target = metadata
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


@pytest.mark.parametrize(
    ("codec_name", "edit", "message"),
    [
        ("none", set_path(("format",), "flare-update/2"), "unsupported format"),
        ("none", set_path(("codec",), "zstd"), "unknown codec"),
        ("none", set_path(("codec",), 7), "codec name"),
        ("none", set_path(("extra",), 1), "exactly the keys"),
        ("none", delete(("layout",)), "exactly the keys"),
        ("none", set_path(("params",), []), "params"),
        ("none", set_path(("params",), {"level": 9}), "unknown"),
        ("powersgd", set_path(("params",), {}), "not all explicit"),
        ("powersgd", set_path(("params", "rank"), 0), "rank"),
        ("powersgd", set_path(("params", "rank"), 2.0), "rank"),
        ("powersgd", set_path(("params", "rank"), 3), "layout entry"),
        ("none", set_path(("binding", "round"), -1), "round"),
        ("none", set_path(("binding", "round"), 1.5), "round"),
        ("none", set_path(("binding", "round"), "3"), "round"),
        ("none", set_path(("binding", "round"), True), "round"),
        ("none", set_path(("binding", "attempt"), 2**63), "attempt"),
        ("none", set_path(("binding", "num_samples"), 0), "num_samples"),
        ("none", set_path(("binding", "sender"), ""), "sender"),
        ("none", set_path(("binding", "sender"), "s\u00e9"), "sender"),
        ("none", set_path(("binding", "task"), None), "task"),
        ("none", delete(("binding", "base_model")), "exactly the fields"),
        ("none", set_path(("binding", "extra"), 1), "exactly the fields"),
        ("none", set_path(("layout",), {}), "not a JSON array"),
        ("none", set_path(("layout", 0), "conv"), "not a JSON object"),
    ],
)
def test_metadata_schema_violations_are_rejected(codec_name, edit, message):
    rejects(tamper(codec_name, edit_metadata=edit), message)


def test_non_canonical_metadata_is_rejected():
    header = read_container_header(BLOBS["none"], 10**6)
    spaced = json.dumps(json.loads(header.metadata), sort_keys=True)
    blob = write_container(load_container_tensors(BLOBS["none"]), spaced)
    rejects(blob, "canonical")


# --- layout and tensors vs the model spec ---------------------------------------------


def drop_layout_entry(metadata):
    del metadata["layout"][1]


def add_layout_entry(metadata):
    metadata["layout"].append({"kind": "dense", "name": "x", "shape": [1], "tensor": "x"})


def swap_layout_entries(metadata):
    metadata["layout"][0], metadata["layout"][1] = metadata["layout"][1], metadata["layout"][0]


def make_conv_dense(metadata):
    metadata["layout"][0] = {
        "kind": "dense",
        "name": "conv",
        "shape": [6, 2, 3, 3],
        "tensor": "conv",
    }


def without(name):
    return lambda tensors: tensors.pop(name)


def replace(name, value):
    return lambda tensors: tensors.__setitem__(name, np.asarray(value, np.float32))


@pytest.mark.parametrize(
    ("codec_name", "edit_metadata", "edit_tensors", "message"),
    [
        ("none", drop_layout_entry, None, r"missing \['fc'\]"),
        ("none", add_layout_entry, None, r"extra \['x'\]"),
        ("none", swap_layout_entries, None, "in order"),
        ("none", set_path(("layout", 1, "shape"), [8, 10]), None, "shape"),
        ("none", set_path(("layout", 1, "shape"), [10.0, 8]), None, "shape"),
        ("powersgd", set_path(("layout", 0, "rank"), 1), None, "layout entry for 'conv'"),
        ("powersgd", set_path(("layout", 0, "rank"), True), None, "layout entry for 'conv'"),
        ("powersgd", make_conv_dense, None, "layout entry for 'conv'"),
        ("none", None, without("fc"), "missing tensor 'fc'"),
        ("none", None, replace("extra", [1.0]), "unexpected tensor 'extra'"),
        ("none", None, replace("fc", np.zeros((8, 10))), r"'fc' has shape \(8, 10\)"),
        ("powersgd", None, without("fc:Q"), "missing tensor 'fc:Q'"),
        ("powersgd", None, replace("fc:P", np.zeros((10, 3))), r"'fc:P' has shape \(10, 3\)"),
        ("powersgd", None, replace("fc:Q", np.zeros((10, 2))), r"expected \(8, 2\)"),
        ("powersgd", None, replace("conv:Q", np.zeros((6, 2))), r"expected \(18, 2\)"),
    ],
)
def test_layout_and_tensors_must_match_the_spec(codec_name, edit_metadata, edit_tensors, message):
    rejects(tamper(codec_name, edit_metadata, edit_tensors), message)


def poison(name, index, value):
    def edit(tensors):
        tensors[name].flat[index] = value

    return edit


@pytest.mark.parametrize("codec_name", ["none", "gzip"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_dense_values_are_rejected(codec_name, value):
    rejects(tamper(codec_name, edit_tensors=poison("fc", 5, value)), "NaN or Inf")


@pytest.mark.parametrize("factor", ["fc:P", "fc:Q", "bias"])
def test_non_finite_factors_are_rejected(factor):
    rejects(tamper("powersgd", edit_tensors=poison(factor, 1, np.nan)), "NaN or Inf")


def test_reconstruction_overflow_is_rejected():
    def huge(tensors):
        # on their grids (powers of two), and rank 2 sums two products of 2^127
        tensors["fc:P"][:] = 1.0
        tensors["fc:Q"][:] = 2.0**127

    rejects(tamper("powersgd", edit_tensors=huge), "overflows float32")


def test_decoding_takes_the_codec_from_the_blob():
    for name, blob in BLOBS.items():
        assert decode_update(blob, SPEC).codec == name
    np.testing.assert_array_equal(decode_update(BLOBS["gzip"], SPEC).delta["fc"], DELTA["fc"])

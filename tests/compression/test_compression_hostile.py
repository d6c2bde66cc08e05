"""Hostile update blobs: for any bytes, decode_update returns or raises MalformedUpdateError.

Issue 8 found two correctly framed blobs that escaped as ValueError and TypeError and so
stopped every honest committee member: metadata holding ``1e400``, and a layout entry
whose name is a list or an object. Both are pinned here for every codec, next to property
tests that plant arbitrary JSON at every place of a valid blob's metadata and container
header, mutate valid blobs, and feed random bytes. A refusal must be deliberate: the
decoder's last-resort conversion of a parser's own exception (which keeps that exception
as ``__cause__``) would mean a check is missing, so the property tests fail on it too.
"""

import json

import numpy as np
import pytest
from hostile_inputs import (
    container_header_text,
    json_paths,
    json_text,
    mutated,
    plant,
    with_container_header,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.compression import MalformedUpdateError, UpdateBinding, decode_update, make_codec
from flare.compression.decode import UPDATE_DTYPES
from flare.compression.wire import (
    canonical_json,
    gzip_compress,
    gzip_decompress,
    load_container_tensors,
    read_container_header,
    write_container,
)

SPEC = {"conv": (6, 2, 3, 3), "fc": (10, 8), "bias": (8,)}
BINDING = UpdateBinding("0xc1", "task-7", 3, 1, "bafkreigh2akiscaildc", 120)
DELTA = {
    name: np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    for name, shape in SPEC.items()
}
CODEC_PARAMS = {
    "none": {},
    "gzip": {},
    "powersgd": {"rank": 2},
    "powersgd-q8": {"rank": 2, "ratio": 4},
    "topk": {"per_mille": 100},
}
DENSE_CODECS = ("none", "gzip")
CODECS = sorted(CODEC_PARAMS)
BLOBS = {
    name: make_codec(name, **params).new_encoder(SPEC, 0).encode(DELTA, BINDING)
    for name, params in CODEC_PARAMS.items()
}


def container_of(codec_name: str) -> bytes:
    blob = BLOBS[codec_name]
    return gzip_decompress(blob, 10**7) if codec_name == "gzip" else blob


def metadata_text(codec_name: str) -> str:
    return read_container_header(container_of(codec_name), 10**6, UPDATE_DTYPES).metadata


def framed(codec_name: str, metadata: str) -> bytes:
    """A blob of ``codec_name`` carrying its valid tensors and the given metadata text."""
    container = write_container(load_container_tensors(container_of(codec_name)), metadata)
    return gzip_compress(container) if codec_name == "gzip" else container


def header_text_of(codec_name: str) -> str:
    return container_header_text(container_of(codec_name))


def with_header_text(codec_name: str, header_text: str) -> bytes:
    """A blob of ``codec_name`` whose container header is ``header_text``."""
    rebuilt = with_container_header(container_of(codec_name), header_text)
    return gzip_compress(rebuilt) if codec_name == "gzip" else rebuilt


def decodes_or_refuses(blob: bytes) -> None:
    """The property: a decoded update, or a deliberate MalformedUpdateError; nothing else."""
    try:
        decoded = decode_update(blob, SPEC)
    except MalformedUpdateError as refusal:
        assert refusal.__cause__ is None, f"refused only by the safety net: {refusal}"
        assert "\n" not in str(refusal)
        return
    assert set(decoded.delta) == set(SPEC)
    for name, array in decoded.delta.items():
        assert array.shape == SPEC[name] and np.isfinite(array).all()


def test_unedited_helpers_rebuild_valid_blobs():
    for codec_name in CODECS:
        reframed = framed(codec_name, metadata_text(codec_name))
        assert decode_update(reframed, SPEC).codec == codec_name
        rebuilt = with_header_text(codec_name, header_text_of(codec_name))
        assert decode_update(rebuilt, SPEC).codec == codec_name


# --- the reported blobs and their relatives, for every codec ------------------------------

PARAMS_TEXT = {
    "none": '"params":{}',
    "gzip": '"params":{}',
    "powersgd": '"params":{"rank":2}',
    "powersgd-q8": '"params":{"rank":2,"ratio":4}',
    "topk": '"params":{"per_mille":100}',
}

METADATA_EDITS = {
    "1e400 in params": (lambda c: PARAMS_TEXT[c], '"params":{"rank":1e400}', "out of range"),
    "-1e400 in params": (lambda c: PARAMS_TEXT[c], '"params":{"rank":-1e400}', "out of range"),
    "1e400 in binding": (lambda c: '"round":3', '"round":1e400', "out of range"),
    "1e400 in layout shape": (lambda c: '"shape":[10,8]', '"shape":[1e400,8]', "out of range"),
    "1e400 as a key's value deep down": (
        lambda c: PARAMS_TEXT[c],
        '"params":{"x":[[{"y":1E+999}]]}',
        "out of range",
    ),
    "layout name is a list": (lambda c: '"name":"fc"', '"name":["fc"]', "layout entry 1 name"),
    "layout name is an object": (lambda c: '"name":"fc"', '"name":{"fc":1}', "layout entry 1 name"),
    "layout name is a number": (lambda c: '"name":"fc"', '"name":7', "layout entry 1 name"),
    "layout name is null": (lambda c: '"name":"fc"', '"name":null', "layout entry 1 name"),
    "layout name is a lone surrogate": (
        lambda c: '"name":"fc"',
        '"name":"\\ud800"',
        "in order",
    ),
    "layout shape is a bool": (lambda c: '"shape":[10,8]', '"shape":true', "shape"),
    "layout shape holds bools": (lambda c: '"shape":[10,8]', '"shape":[true,8]', "shape"),
    "layout shape holds a list": (lambda c: '"shape":[10,8]', '"shape":[[10],8]', "shape"),
    "layout entry has an extra key": (
        lambda c: '"tensor":"fc"}' if c in DENSE_CODECS else '"shape":[10,8]}',
        lambda entry_end: entry_end[:-1] + ',"zz":[]}',
        "layout entry for 'fc'",
    ),
    "layout entry key repeated": (
        lambda c: '"name":"fc"',
        '"kind":[],"name":"fc"',
        "duplicate key 'kind'",
    ),
    "round is a 5000-digit integer": (lambda c: '"round":3', '"round":' + "9" * 5000, "integer"),
    "round is a 40-digit integer": (lambda c: '"round":3', '"round":1' + "0" * 39, "integer"),
    "round is negative": (lambda c: '"round":3', '"round":-3', "round"),
    "round is a bool": (lambda c: '"round":3', '"round":true', "round"),
    "round is a float": (lambda c: '"round":3', '"round":3.0', "round"),
    "duplicate key": (lambda c: '"round":3', '"round":3,"round":3', "duplicate key"),
    "non-string key": (lambda c: PARAMS_TEXT[c], '"params":{1:2}', "not valid JSON"),
    "params nested too deep": (
        lambda c: PARAMS_TEXT[c],
        '"params":{"rank":' + "[" * 70 + "]" * 70 + "}",
        "nested deeper",
    ),
    "params value is a list": (lambda c: PARAMS_TEXT[c], '"params":{"rank":[2]}', "params"),
    "params value is a string": (lambda c: PARAMS_TEXT[c], '"params":{"rank":"2"}', "params"),
    "escaped key spelling": (lambda c: '"format"', '"\\u0066ormat"', "canonical"),
    "full-width codec name": (
        lambda c: f'"codec":"{c}"',
        '"codec":"\\uff4e\\uff4f\\uff4e\\uff45"',
        "unknown codec",
    ),
}


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize("variant", sorted(METADATA_EDITS))
def test_hostile_metadata_is_refused_with_the_typed_error(codec_name, variant):
    find, replacement, message = METADATA_EDITS[variant]
    original, found = metadata_text(codec_name), find(codec_name)
    assert original.count(found) == 1
    hostile = original.replace(found, replacement(found) if callable(replacement) else replacement)
    with pytest.raises(MalformedUpdateError, match=message) as refusal:
        decode_update(framed(codec_name, hostile), SPEC)
    assert refusal.value.__cause__ is None
    assert "\n" not in str(refusal.value) and len(str(refusal.value)) < 300


HEADER_EDITS = {
    "1e400 in a tensor shape": ('"shape":[8]', '"shape":[1e400]', "out of range"),
    "1e400 in data offsets": ('"data_offsets":[0,', '"data_offsets":[1e400,', "out of range"),
    "shape is an object": ('"shape":[8]', '"shape":{"8":8}', "invalid shape"),
    "shape holds a huge integer": ('"shape":[8]', '"shape":[18446744073709551617]', "shape"),
    "dtype is a list": ('"dtype":"F32","shape":[8]', '"dtype":["F32"],"shape":[8]', "F32"),
    "duplicate tensor": ('"bias":{', '"bias":{},"bias":{', "duplicate key"),
    "metadata is an object": ('"flare":"', '"flare":{},"x":"', "__metadata__"),
}


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize("variant", sorted(HEADER_EDITS))
def test_hostile_container_headers_are_refused_with_the_typed_error(codec_name, variant):
    find, replacement, message = HEADER_EDITS[variant]
    header_text = header_text_of(codec_name)
    assert find in header_text
    blob = with_header_text(codec_name, header_text.replace(find, replacement, 1))
    with pytest.raises(MalformedUpdateError, match=message) as refusal:
        decode_update(blob, SPEC)
    assert refusal.value.__cause__ is None


def test_a_codec_that_cannot_carry_the_receivers_model_is_refused():
    # The model travels dense under "none"; rank 1 would make "w" low-rank, and its factor
    # name "w:P" collides with the model's own tensor "w:P".
    spec = {"w": (6, 6), "w:P": (6, 1)}
    tensors = {name: np.zeros(shape) for name, shape in spec.items()}
    valid = make_codec("none").new_encoder(spec, 0).encode(tensors, BINDING)
    assert decode_update(valid, spec).codec == "none"
    metadata = json.loads(read_container_header(valid, 10**6, UPDATE_DTYPES).metadata)
    metadata["codec"], metadata["params"] = "powersgd", {"rank": 1}
    hostile = write_container(tensors, canonical_json(metadata))
    with pytest.raises(MalformedUpdateError, match="cannot carry"):
        decode_update(hostile, spec)


# --- properties ---------------------------------------------------------------------------
# Each property draws the codec instead of being parametrized over it: the same number of
# examples then covers all three codecs at a third of the run time.

codecs = st.sampled_from(CODECS)
METADATA = {name: json.loads(metadata_text(name)) for name in CODECS}
METADATA_PATHS = {name: json_paths(METADATA[name]) for name in CODECS}


@settings(max_examples=300, deadline=None)
@given(codec_name=codecs, data=st.data(), fragment=json_text)
def test_any_json_planted_in_valid_metadata_is_decoded_or_refused(codec_name, data, fragment):
    path = data.draw(st.sampled_from(METADATA_PATHS[codec_name]), label="path")
    decodes_or_refuses(framed(codec_name, plant(METADATA[codec_name], path, fragment)))


HEADERS = {name: json.loads(header_text_of(name)) for name in CODECS}
HEADER_PATHS = {name: json_paths(HEADERS[name]) for name in CODECS}


@settings(max_examples=200, deadline=None)
@given(codec_name=codecs, data=st.data(), fragment=json_text)
def test_any_json_planted_in_a_valid_container_header_is_decoded_or_refused(
    codec_name, data, fragment
):
    path = data.draw(st.sampled_from(HEADER_PATHS[codec_name]), label="path")
    header_text = plant(HEADERS[codec_name], path, fragment, json.dumps)
    decodes_or_refuses(with_header_text(codec_name, header_text))


@settings(max_examples=200, deadline=None)
@given(codec_name=codecs, behind_valid_gzip=st.booleans(), data=st.data())
def test_mutated_blobs_are_decoded_or_refused(codec_name, behind_valid_gzip, data):
    if behind_valid_gzip:
        decodes_or_refuses(gzip_compress(mutated(container_of(codec_name), data)))
    else:
        decodes_or_refuses(mutated(BLOBS[codec_name], data))


@settings(max_examples=200, deadline=None)
@given(
    blob=st.binary(max_size=600)
    | st.binary(max_size=600).map(gzip_compress)
    | st.binary(max_size=200).map(lambda tail: container_of("none")[:64] + tail)
)
def test_arbitrary_bytes_are_decoded_or_refused(blob):
    decodes_or_refuses(blob)


def test_a_shape_whose_size_has_thousands_of_digits_is_refused_quickly():
    # 300 dimensions of 10**31: the byte size has 9,300 digits, past Python's limit for
    # printing an integer, so it must be refused before it is computed in full or shown.
    dims = ",".join(["1" + "0" * 31] * 300)
    header_text = header_text_of("none").replace('"shape":[8]', f'"shape":[{dims}]', 1)
    with pytest.raises(MalformedUpdateError, match="over 18446744073709551616 bytes") as refusal:
        decode_update(with_header_text("none", header_text), SPEC)
    assert len(str(refusal.value)) < 300


def test_an_unexpected_parser_exception_still_leaves_as_the_typed_error(monkeypatch):
    def fails(left, right, bound):
        raise FloatingPointError("overflow in outer product")

    monkeypatch.setattr("flare.compression.rebuild.exact_product", fails)
    monkeypatch.setattr("flare.compression.decode.read_natively", lambda *args: None)
    with pytest.raises(MalformedUpdateError, match="FloatingPointError: overflow") as refusal:
        decode_update(BLOBS["powersgd"], SPEC)
    assert isinstance(refusal.value.__cause__, FloatingPointError)


@pytest.mark.parametrize("codec_name", sorted(CODECS))
def test_params_naming_the_codec_argument_are_refused_as_unknown(codec_name):
    """Hypothesis found it: ``make_codec(name, **params)`` with ``"name"`` among the params
    once raised TypeError, which only the safety net caught."""
    metadata = metadata_text(codec_name)
    empty = '"params":{}' in metadata
    hostile = (
        metadata.replace('"params":{}', '"params":{"name":0}', 1)
        if empty
        else metadata.replace('"params":{"', '"params":{"name":0,"', 1)
    )
    with pytest.raises(MalformedUpdateError, match="unknown \\['name'\\]") as refusal:
        decode_update(framed(codec_name, hostile), SPEC)
    assert refusal.value.__cause__ is None


def test_refusals_quote_only_the_start_of_a_long_value():
    long_name = "z" * 500
    hostile = metadata_text("none").replace('"codec":"none"', f'"codec":"{long_name}"')
    with pytest.raises(MalformedUpdateError, match="unknown codec 'zzz") as refusal:
        decode_update(framed("none", hostile), SPEC)
    assert "z" * 80 not in str(refusal.value) and "..." in str(refusal.value)

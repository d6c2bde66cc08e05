"""Hostile model and manifest blobs: the decoders return or raise MalformedArtifactError.

Both blobs come from the store, where anyone may have put bytes under a CID the chain
names, so they get the update decoder's treatment: the same hostile JSON planted at every
place of a valid blob's metadata and container header, mutations of valid blobs, and
random bytes, with a refusal counted only if it is deliberate (no ``__cause__``).
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

from flare.compression import MalformedUpdateError
from flare.compression.wire import load_container_tensors, read_container_header, write_container
from flare.federation.protocol.artifacts import (
    MAX_LABEL,
    MalformedArtifactError,
    TaskManifest,
    decode_manifest,
    decode_model,
    encode_manifest,
    encode_model,
)

SPEC = {"fc.weight": (3, 4), "fc.bias": (3,)}
WEIGHTS = {
    name: np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    for name, shape in SPEC.items()
}
MANIFEST = TaskManifest("logreg", 4, 3, "krum", {"num_byzantine": 1})
FEATURES = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
LABELS = np.array([0, 1, 2, 1, 0])
BLOBS = {
    "model": encode_model(WEIGHTS),
    "manifest": encode_manifest(MANIFEST, FEATURES, LABELS),
}
DECODERS = {
    "model": lambda blob: decode_model(blob, SPEC),
    "manifest": decode_manifest,
}
KINDS = sorted(BLOBS)


def metadata_text(kind: str) -> str:
    return read_container_header(BLOBS[kind], 10**6).metadata


def header_text_of(kind: str) -> str:
    return container_header_text(BLOBS[kind])


def with_metadata(kind: str, metadata: str) -> bytes:
    return write_container(load_container_tensors(BLOBS[kind]), metadata)


def with_header_text(kind: str, header_text: str) -> bytes:
    return with_container_header(BLOBS[kind], header_text)


def refuses(kind: str, blob: bytes, message: str) -> None:
    with pytest.raises(MalformedArtifactError, match=message) as refusal:
        DECODERS[kind](blob)
    assert refusal.value.__cause__ is None
    assert "\n" not in str(refusal.value) and len(str(refusal.value)) < 300


def decodes_or_refuses(kind: str, blob: bytes) -> None:
    """The property: a decoded artifact, or a deliberate MalformedArtifactError; nothing else."""
    try:
        decoded = DECODERS[kind](blob)
    except MalformedArtifactError as refusal:
        assert refusal.__cause__ is None, f"refused only by the safety net: {refusal}"
        assert "\n" not in str(refusal)
        return
    if kind == "model":
        assert {name: array.shape for name, array in decoded.items()} == SPEC
    else:
        assert decoded.manifest.num_features == decoded.validation_features.shape[1]
        assert decoded.validation_labels.min() >= 0
        assert decoded.validation_labels.max() < decoded.manifest.num_classes


def test_helpers_without_edits_rebuild_valid_blobs():
    for kind in KINDS:
        decodes_or_refuses(kind, with_metadata(kind, metadata_text(kind)))
        decodes_or_refuses(kind, with_header_text(kind, header_text_of(kind)))
    np.testing.assert_array_equal(decode_model(BLOBS["model"], SPEC)["fc.bias"], WEIGHTS["fc.bias"])
    assert decode_manifest(BLOBS["manifest"]).manifest == MANIFEST


def test_artifact_refusals_are_update_refusals_too():
    # Callers that reject a bad update with one except clause reject bad artifacts alike.
    assert issubclass(MalformedArtifactError, MalformedUpdateError)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text[:-1] + ',"x":1e400}', "out of range"),
        (lambda text: text[:-1] + ',"x":-1e400}', "out of range"),
        (lambda text: text[:-1] + ',"x":' + "9" * 5000 + "}", "integer of 5000 characters"),
        (lambda text: text[:-1] + ',"x":' + "[" * 70 + "]" * 70 + "}", "nested deeper"),
        (lambda text: text.replace('"format"', '"format":1,"format"'), "duplicate key"),
        (lambda text: text[:-1] + ",1:2}", "not valid JSON"),
        (lambda text: "[" + text + "]", "not a flare-"),
        (lambda text: text.replace('"flare-', '"\\uff46lare-'), "not a flare-"),
    ],
)
def test_hostile_metadata_is_refused_with_the_typed_error(kind, edit, message):
    refuses(kind, with_metadata(kind, edit(metadata_text(kind))), message)


MANIFEST_EDITS = {
    "num_classes is 1e400": ('"num_classes":3', '"num_classes":1e400', "out of range"),
    "num_classes past the label bound": (
        '"num_classes":3',
        f'"num_classes":{MAX_LABEL + 1}',
        "num_classes must be an integer",
    ),
    "num_classes is a 30-digit integer": (
        '"num_classes":3',
        '"num_classes":' + "9" * 30,
        "num_classes must be an integer",
    ),
    "num_classes is a 401-digit integer": (
        '"num_classes":3',
        '"num_classes":1' + "0" * 400,
        "integer of 401 characters",
    ),
    "num_classes is a bool": ('"num_classes":3', '"num_classes":true', "num_classes"),
    "num_features is a float": ('"num_features":4', '"num_features":4.0', "num_features"),
    "model is a list": ('"model":"logreg"', '"model":["logreg"]', "names"),
    "model is an object": ('"model":"logreg"', '"model":{"logreg":1}', "names"),
    "aggregator has a NUL": ('"aggregator":"krum"', '"aggregator":"krum\\u0000"', "names"),
    "aggregator is a lone surrogate": ('"aggregator":"krum"', '"aggregator":"\\ud800"', "names"),
    "aggregator param is a list": ('"num_byzantine":1', '"num_byzantine":[1]', "aggregator_params"),
    "aggregator param is an object": (
        '"num_byzantine":1',
        '"num_byzantine":{"a":1}',
        "aggregator_params",
    ),
    "aggregator param is 1e400": ('"num_byzantine":1', '"num_byzantine":1e400', "out of range"),
    "aggregator_params is a list": (
        '"aggregator_params":{"num_byzantine":1}',
        '"aggregator_params":[]',
        "aggregator_params",
    ),
}


@pytest.mark.parametrize("variant", sorted(MANIFEST_EDITS))
def test_hostile_manifest_fields_are_refused_with_the_typed_error(variant):
    find, replacement, message = MANIFEST_EDITS[variant]
    original = metadata_text("manifest")
    assert original.count(find) == 1
    refuses("manifest", with_metadata("manifest", original.replace(find, replacement)), message)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("find", "replacement", "message"),
    [
        ('"shape":[3]', '"shape":[1e400]', "out of range"),
        ('"shape":[3]', '"shape":{"3":3}', "invalid shape"),
        ('"shape":[3]', '"shape":[' + ",".join(["1" + "0" * 31] * 300) + "]", "over"),
        ('"dtype":"F32"', '"dtype":["F32"]', "only F32"),
        ('"data_offsets":[0,', '"data_offsets":[1e400,', "out of range"),
    ],
)
def test_hostile_container_headers_are_refused_with_the_typed_error(
    kind, find, replacement, message
):
    header_text = header_text_of(kind)
    if kind == "manifest":
        find = find.replace("[3]", "[5]")
        replacement = replacement.replace("[3]", "[5]").replace('"3":3', '"5":5')
    assert find in header_text
    refuses(kind, with_header_text(kind, header_text.replace(find, replacement, 1)), message)


def test_a_manifest_with_every_kind_of_scalar_parameter_and_the_most_classes_decodes():
    manifest = TaskManifest("mlp", 4, MAX_LABEL, "mi_filter", {"a": 1.5, "b": "x", "c": True})
    bundle = decode_manifest(encode_manifest(manifest, FEATURES, LABELS))
    assert bundle.manifest == manifest
    np.testing.assert_array_equal(bundle.validation_labels, LABELS)


@pytest.mark.parametrize(
    "manifest",
    [
        TaskManifest("logreg", 4, 3, "krum", {"num_byzantine": [1]}),
        TaskManifest("logreg", 4, 3, "k" * 65),
        TaskManifest("logreg", 4, MAX_LABEL + 1, "krum"),
    ],
)
def test_the_encoder_refuses_a_manifest_the_decoder_would_refuse(manifest):
    with pytest.raises(MalformedArtifactError):
        encode_manifest(manifest, FEATURES, LABELS)


@pytest.mark.parametrize(
    ("labels", "features", "message"),
    [
        (np.array([0, 1, 3, 1, 0]), FEATURES, "class indices"),
        (np.array([0, 1, 2, 1, 0.5]), FEATURES, "class indices"),
        (LABELS, np.where(np.eye(5, 4) == 1, np.inf, FEATURES), "NaN or Inf"),
        (LABELS, FEATURES[:, :3], "inconsistent shapes"),
    ],
)
def test_a_manifest_whose_validation_split_does_not_fit_is_refused(labels, features, message):
    tensors = {"features": features, "labels": labels.astype(np.float32)}
    refuses("manifest", write_container(tensors, metadata_text("manifest")), message)


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({**WEIGHTS, "fc.bias": np.array([0.0, np.nan, 1.0])}, "NaN or Inf"),
        ({**WEIGHTS, "fc.bias": np.zeros(4)}, "do not match"),
        ({"fc.weight": WEIGHTS["fc.weight"]}, "do not match"),
        ({**WEIGHTS, "extra": np.zeros(1)}, "do not match"),
    ],
)
def test_a_model_that_does_not_fit_the_spec_is_refused(tensors, message):
    refuses("model", write_container(tensors, metadata_text("model")), message)


@pytest.mark.parametrize("kind", KINDS)
def test_a_header_over_one_mebibyte_is_refused(kind):
    padded = header_text_of(kind) + " " * (1 << 20)
    refuses(kind, with_header_text(kind, padded), "exceeds the limit of 1048576 bytes")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("blob", ["text", None, 7, [1, 2]])
def test_a_blob_that_is_not_bytes_is_refused(kind, blob):
    refuses(kind, blob, "must be bytes")


# --- properties ---------------------------------------------------------------------------

kinds = st.sampled_from(KINDS)
METADATA = {kind: json.loads(metadata_text(kind)) for kind in KINDS}
METADATA_PATHS = {kind: json_paths(METADATA[kind]) for kind in KINDS}
HEADERS = {kind: json.loads(header_text_of(kind)) for kind in KINDS}
HEADER_PATHS = {kind: json_paths(HEADERS[kind]) for kind in KINDS}


@settings(max_examples=300, deadline=None)
@given(kind=kinds, data=st.data(), fragment=json_text)
def test_any_json_planted_in_valid_metadata_is_decoded_or_refused(kind, data, fragment):
    path = data.draw(st.sampled_from(METADATA_PATHS[kind]), label="path")
    decodes_or_refuses(kind, with_metadata(kind, plant(METADATA[kind], path, fragment)))


@settings(max_examples=200, deadline=None)
@given(kind=kinds, data=st.data(), fragment=json_text)
def test_any_json_planted_in_a_valid_container_header_is_decoded_or_refused(kind, data, fragment):
    path = data.draw(st.sampled_from(HEADER_PATHS[kind]), label="path")
    header_text = plant(HEADERS[kind], path, fragment, json.dumps)
    decodes_or_refuses(kind, with_header_text(kind, header_text))


@settings(max_examples=200, deadline=None)
@given(kind=kinds, data=st.data())
def test_mutated_blobs_are_decoded_or_refused(kind, data):
    decodes_or_refuses(kind, mutated(BLOBS[kind], data))


@settings(max_examples=200, deadline=None)
@given(kind=kinds, blob=st.binary(max_size=400))
def test_arbitrary_bytes_are_decoded_or_refused(kind, blob):
    decodes_or_refuses(kind, blob)

"""The blobs a task puts on the store besides updates: global models and the task manifest.

Both are canonical safetensors containers (the same framing as updates, see
docs/wire-format.md), so they are parsed without pickle and with every size checked
before anything is trusted. A global model is just the named float32 tensors. The task
manifest carries the public validation split the MI filter runs on, plus everything a
committee member or auditor needs to recompute an aggregate: the model architecture,
the aggregation rule and its parameters. With the manifest CID on chain (as the task's
validation set), a task is fully described by chain and store alone. The manifest may also
require client-level DP of every participant: public, so anyone auditing the task sees it.
A model of the user's own is bound by its architecture: parameter names and shapes, and a
hash of its definition (docs/models.md), so a participant with another model refuses.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from flare.compression.base import MalformedUpdateError
from flare.compression.wire import (
    canonical_json,
    load_container_tensors,
    parse_json_strictly,
    read_container_header,
    refusing_as,
    shown,
    write_container,
)
from flare.errors import ConfigError
from flare.privacy.requirement import PrivacyRequirement
from flare.tensors import ModelSpec, Weights, raw_nbytes

if TYPE_CHECKING:
    from torch import nn

MODEL_FORMAT = "flare-model/1"
MANIFEST_FORMAT = "flare-task/1"
MANIFEST_KEYS = {
    "format",
    "model",
    "num_features",
    "num_classes",
    "aggregator",
    "aggregator_params",
}
OPTIONAL_MANIFEST_KEYS = {"privacy", "architecture"}
"""Written only when set, so a manifest without them keeps its bytes and its CID."""
MAX_HEADER_BYTES = 1 << 20
MAX_LABEL = 1 << 20
"""Labels travel as float32; integers up to 2^24 are exact, this bound keeps them so."""

MAX_SUBMISSIONS = 1 << 32
"""Submission indices are uint32 on chain."""
MAX_NAME_CHARS = 64
"""Longest aggregator name in a manifest (the registered names are far shorter)."""
MAX_MODEL_CHARS = 256
"""Longest model reference in a manifest (``flare.models.factory.MAX_REFERENCE_CHARS``)."""
MAX_PARAMETERS = 4096
"""Most named tensors an architecture may list."""
MAX_DIMENSIONS = 8
MAX_DIMENSION_SIZE = 1 << 31
DEFINITION_HEX_CHARS = 64


class MalformedArtifactError(MalformedUpdateError):
    """A model or manifest blob is malformed or does not fit what it should hold.

    The only exception :func:`decode_model` and :func:`decode_manifest` raise, whatever the
    bytes; a subclass, so code that rejects bad updates rejects bad artifacts the same way.
    """


def encode_model(weights: Weights, unavailable: Sequence[int] = ()) -> bytes:
    """Canonical bytes of a global model: same weights, same bytes, same CID.

    ``unavailable`` lists, by submission index, the updates its proposer could not fetch
    and so left out: members judge the proposal on exactly the others, and an auditor
    recomputes it the same way (docs/protocol.md, "Availability"). Written only when some
    update was left out, so a model that counts every update keeps its bytes.
    """
    meta: dict[str, Any] = {"format": MODEL_FORMAT}
    if unavailable:
        meta["unavailable"] = sorted(set(unavailable))
    return write_container(weights, canonical_json(meta))


def decode_model(blob: bytes, spec: ModelSpec) -> Weights:
    """Parse a global model and check it against ``spec``: names, shapes, finiteness.

    Raises :class:`MalformedArtifactError` for any defect, and nothing else.
    """
    with refusing_as(MalformedArtifactError, "model blob"):
        return _decode_model(_as_bytes(blob), spec)


def model_unavailable(blob: bytes) -> frozenset[int]:
    """The submission indices a global model's proposer left out as unavailable.

    Reads the header only. Raises :class:`MalformedArtifactError` for any defect.
    """
    with refusing_as(MalformedArtifactError, "model blob"):
        header = read_container_header(_as_bytes(blob), MAX_HEADER_BYTES)
        return _unavailable(parse_json_strictly(header.metadata, "model metadata"))


def model_blob_limit(spec: ModelSpec) -> int:
    """The most bytes a valid global model of ``spec`` can take, header included."""
    return 8 + MAX_HEADER_BYTES + raw_nbytes(spec)


def _decode_model(blob: bytes, spec: ModelSpec) -> Weights:
    header = read_container_header(blob, MAX_HEADER_BYTES)
    _unavailable(parse_json_strictly(header.metadata, "model metadata"))
    if header.shapes != dict(spec):
        raise MalformedArtifactError("model tensors do not match the task's architecture")
    tensors = load_container_tensors(blob)
    weights = {name: tensors[name] for name in spec}
    if not all(np.isfinite(array).all() for array in weights.values()):
        raise MalformedArtifactError("model holds NaN or Inf")
    return weights


def _unavailable(meta: Any) -> frozenset[int]:
    """The ``unavailable`` list of model metadata, checked to be canonical."""
    if (
        not isinstance(meta, dict)
        or meta.get("format") != MODEL_FORMAT
        or not (set(meta) <= {"format", "unavailable"})
    ):
        raise MalformedArtifactError(f"not a {MODEL_FORMAT} blob: {shown(meta)}")
    if "unavailable" not in meta:
        return frozenset()
    listed = meta["unavailable"]
    canonical = (
        isinstance(listed, list)
        and len(listed) > 0
        and all(type(i) is int and 0 <= i < MAX_SUBMISSIONS for i in listed)
        and listed == sorted(set(listed))
    )
    if not canonical:
        raise MalformedArtifactError(
            f"a model's unavailable updates must be a sorted list of distinct submission "
            f"indices below {MAX_SUBMISSIONS}: {shown(listed)}"
        )
    return frozenset(listed)


@dataclass(frozen=True)
class ModelArchitecture:
    """What binds a user's own model: its weights' names and shapes, in order, and the
    SHA-256 of its definition (``flare.models.factory.definition_hash``)."""

    definition: str
    parameters: ModelSpec

    def to_json(self) -> dict[str, Any]:
        return {
            "definition": self.definition,
            "parameters": [[name, list(shape)] for name, shape in self.parameters.items()],
        }

    @classmethod
    def from_json(cls, value: Any) -> "ModelArchitecture":
        """Parse a manifest's ``architecture``; :class:`MalformedArtifactError` if malformed."""
        if not isinstance(value, dict) or set(value) != {"definition", "parameters"}:
            raise MalformedArtifactError(
                "manifest architecture must hold exactly 'definition' and 'parameters'"
            )
        definition, listed = value["definition"], value["parameters"]
        if not (
            isinstance(definition, str)
            and len(definition) == DEFINITION_HEX_CHARS
            and all(char in "0123456789abcdef" for char in definition)
        ):
            raise MalformedArtifactError(
                f"manifest architecture definition must be {DEFINITION_HEX_CHARS} lowercase "
                f"hex digits: {shown(definition)}"
            )
        if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_PARAMETERS:
            raise MalformedArtifactError(
                f"manifest architecture must list 1-{MAX_PARAMETERS} parameters"
            )
        parameters: ModelSpec = {}
        for entry in listed:
            if not (
                isinstance(entry, list)
                and len(entry) == 2
                and _is_name(entry[0], MAX_MODEL_CHARS)
                and entry[0] not in parameters
                and isinstance(entry[1], list)
                and len(entry[1]) <= MAX_DIMENSIONS
                and all(_is_integer(size) and 1 <= size <= MAX_DIMENSION_SIZE for size in entry[1])
            ):
                raise MalformedArtifactError(
                    f"manifest architecture parameter must be a new [name, shape]: {shown(entry)}"
                )
            parameters[entry[0]] = tuple(entry[1])
        return cls(definition, parameters)


@dataclass(frozen=True)
class TaskManifest:
    """What a task computes with, published once so anyone can recompute every round."""

    model: str
    num_features: int
    num_classes: int
    aggregator: str
    aggregator_params: dict[str, Any] = field(default_factory=dict)
    privacy: PrivacyRequirement | None = None
    """Client-level DP every participant must apply (docs/privacy.md); None: no demand."""
    architecture: ModelArchitecture | None = None
    """The binding of a user's own model (docs/models.md); None for a built-in model."""

    def to_json(self) -> dict[str, Any]:
        document = {
            "format": MANIFEST_FORMAT,
            "model": self.model,
            "num_features": self.num_features,
            "num_classes": self.num_classes,
            "aggregator": self.aggregator,
            "aggregator_params": self.aggregator_params,
        }
        if self.privacy is not None:
            document["privacy"] = self.privacy.to_json()
        if self.architecture is not None:
            document["architecture"] = self.architecture.to_json()
        return document


@dataclass(frozen=True)
class TaskBundle:
    """A decoded manifest blob: the manifest and the public validation split."""

    manifest: TaskManifest
    validation_features: np.ndarray
    validation_labels: np.ndarray


def encode_manifest(manifest: TaskManifest, features: np.ndarray, labels: np.ndarray) -> bytes:
    """Canonical bytes of a task manifest with its validation split.

    Refuses (with :class:`MalformedArtifactError`) a manifest the decoder would refuse, so
    a task creator learns of it before publishing a task nobody could load.
    """
    _check_manifest_fields(manifest.to_json())
    if features.ndim != 2 or labels.shape != (len(features),):
        raise ValueError("validation features must be (n, d) and labels (n,)")
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= MAX_LABEL:
        raise ValueError(f"labels must lie in [0, {MAX_LABEL})")
    tensors = {"features": features, "labels": labels.astype(np.float32)}
    return write_container(tensors, canonical_json(manifest.to_json()))


def decode_manifest(blob: bytes) -> TaskBundle:
    """Parse a task manifest blob, checking that every field has the type it must.

    Raises :class:`MalformedArtifactError` for any defect, and nothing else.
    """
    with refusing_as(MalformedArtifactError, "task manifest"):
        return _decode_manifest(_as_bytes(blob))


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_name(value: Any, longest: int = MAX_NAME_CHARS) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= longest
        and all(" " <= char <= "~" for char in value)
    )


def _check_manifest_fields(meta: Any) -> None:
    """Type and range of every manifest field, before any of them is used."""
    if not isinstance(meta, dict) or not (
        MANIFEST_KEYS <= set(meta) <= MANIFEST_KEYS | OPTIONAL_MANIFEST_KEYS
    ):
        raise MalformedArtifactError(f"not a {MANIFEST_FORMAT} manifest")
    if meta["format"] != MANIFEST_FORMAT:
        raise MalformedArtifactError(f"not a {MANIFEST_FORMAT} manifest")
    if not _is_integer(meta["num_features"]) or meta["num_features"] < 1:
        raise MalformedArtifactError("manifest field num_features must be a positive integer")
    if not _is_integer(meta["num_classes"]) or not 1 <= meta["num_classes"] <= MAX_LABEL:
        raise MalformedArtifactError(
            f"manifest field num_classes must be an integer in [1, {MAX_LABEL}]"
        )
    if not _is_name(meta["model"], MAX_MODEL_CHARS) or not _is_name(meta["aggregator"]):
        raise MalformedArtifactError(
            f"manifest model and aggregator must be names of 1-{MAX_MODEL_CHARS} and "
            f"1-{MAX_NAME_CHARS} printable ASCII characters"
        )
    if not _committee_can_run(meta["aggregator"]):
        raise MalformedArtifactError(
            f"aggregator {meta['aggregator']!r} is not bitwise reproducible across machines, "
            "so a committee cannot agree on its aggregate; use it in offline simulations"
        )
    params = meta["aggregator_params"]
    if not isinstance(params, dict) or any(
        isinstance(value, dict | list) for value in params.values()
    ):
        raise MalformedArtifactError(
            "manifest aggregator_params must map names to numbers, strings, booleans or null"
        )
    if "privacy" in meta:
        _privacy_requirement(meta["privacy"])
    if "architecture" in meta:
        ModelArchitecture.from_json(meta["architecture"])


def _committee_can_run(aggregator: str) -> bool:
    from flare.aggregation.registry import AGGREGATORS

    rule = AGGREGATORS.get(aggregator)
    return rule is None or rule.bitwise_portable


def _privacy_requirement(value: Any) -> PrivacyRequirement:
    try:
        return PrivacyRequirement.from_json(value)
    except ConfigError as exc:
        raise MalformedArtifactError(f"manifest privacy requirement refused: {exc}") from None


def _decode_manifest(blob: bytes) -> TaskBundle:
    header = read_container_header(blob, MAX_HEADER_BYTES)
    meta = parse_json_strictly(header.metadata, "task manifest")
    _check_manifest_fields(meta)
    shapes = header.shapes
    if set(shapes) != {"features", "labels"}:
        raise MalformedArtifactError("manifest must hold exactly 'features' and 'labels'")
    rows = shapes["labels"][0] if len(shapes["labels"]) == 1 else 0
    if rows == 0:
        raise MalformedArtifactError("manifest validation labels must be a non-empty vector")
    if shapes["features"] != (rows, meta["num_features"]):
        raise MalformedArtifactError("manifest validation split has inconsistent shapes")
    tensors = load_container_tensors(blob)
    labels = tensors["labels"]
    if not np.isfinite(tensors["features"]).all() or not np.isfinite(labels).all():
        raise MalformedArtifactError("manifest validation split holds NaN or Inf")
    if (
        (labels != np.round(labels)).any()
        or labels.min() < 0
        or labels.max() >= meta["num_classes"]
    ):
        raise MalformedArtifactError("manifest labels must be class indices")
    manifest = TaskManifest(
        model=meta["model"],
        num_features=meta["num_features"],
        num_classes=meta["num_classes"],
        aggregator=meta["aggregator"],
        aggregator_params=meta["aggregator_params"],
        privacy=_privacy_requirement(meta["privacy"]) if "privacy" in meta else None,
        architecture=(
            ModelArchitecture.from_json(meta["architecture"]) if "architecture" in meta else None
        ),
    )
    return TaskBundle(manifest, tensors["features"], labels.astype(np.int64))


def _as_bytes(blob: Any) -> bytes:
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise MalformedArtifactError(f"blob must be bytes, got {type(blob).__name__}")
    return bytes(blob)


def build_task_model(manifest: TaskManifest) -> "nn.Module":
    """The task's model as this machine builds it from the manifest's reference, refused in
    one line (:class:`ModelMismatchError`) unless it is the model the manifest binds."""
    from flare.models import ModelMismatchError, build_model  # torch: only when building
    from flare.models.factory import check_binding, is_builtin

    module = build_model(manifest.model, manifest.num_features, manifest.num_classes, seed=0)
    if manifest.architecture is not None:
        bound = manifest.architecture
        check_binding(manifest.model, module, bound.definition, bound.parameters)
    elif not is_builtin(manifest.model):
        raise ModelMismatchError(
            f"the task names its own model {manifest.model!r} but binds no architecture"
        )
    return module

"""Models named by reference: parsing, loading, the definition hash and the manifest binding."""

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flare.errors import ConfigError
from flare.federation.protocol.artifacts import (
    MAX_MODEL_CHARS,
    MalformedArtifactError,
    ModelArchitecture,
    TaskManifest,
    decode_manifest,
    encode_manifest,
)
from flare.models import ModelMismatchError, TorchModelAdapter, build_model
from flare.models.factory import (
    MAX_REFERENCE_CHARS,
    check_binding,
    check_exact,
    check_reference,
    definition_hash,
    parameter_shapes,
    resolve_factory,
)

TWO_LAYERS = """
from torch import nn


def build(num_features, num_classes):
    return nn.Sequential(nn.Linear(num_features, 16), nn.ReLU(), nn.Linear(16, num_classes))
"""


def user_file(directory: Path, body: str, name: str = "user_model.py") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(body)
    return path


def weights_of(module: nn.Module) -> dict[str, np.ndarray]:
    return TorchModelAdapter(module).get_weights()


def skipping_the_relu() -> nn.Sequential:
    """The two linear layers of TWO_LAYERS under the same names, without the ReLU."""
    return nn.Sequential(OrderedDict([("0", nn.Linear(64, 16)), ("2", nn.Linear(16, 10))]))


def test_a_file_factory_builds_seeded_weights(tmp_path):
    reference = f"{user_file(tmp_path, TWO_LAYERS)}:build"
    first, again = (weights_of(build_model(reference, 64, 10, seed=3)) for _ in range(2))
    other = weights_of(build_model(reference, 64, 10, seed=4))
    assert list(first) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert first["0.weight"].shape == (16, 64) and first["2.weight"].shape == (10, 16)
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not np.array_equal(first["0.weight"], other["0.weight"])


def test_a_file_reference_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    user_file(tmp_path / "project" / "models", TWO_LAYERS, "relative_model.py")
    monkeypatch.chdir(tmp_path / "project")
    module = build_model("models/relative_model.py:build", 8, 3, seed=0)
    assert parameter_shapes(module)["2.weight"] == (3, 16)


def test_a_module_factory_is_the_same_model_as_the_built_in_name():
    by_name = weights_of(build_model("mlp", 64, 10, seed=1))
    by_module = weights_of(build_model("flare.models.zoo:mlp", 64, 10, seed=1))
    assert all(np.array_equal(by_name[name], by_module[name]) for name in by_name)


@pytest.mark.parametrize(
    ("reference", "refusal"),
    [
        ("resnet", "unknown model 'resnet'"),
        ("model.py:", "unknown model"),
        (":build", "unknown model"),
        ("my model.py:build", None),  # a path may hold spaces; this one does not exist
        ("not-a-module:build", "neither a module nor a .py file"),
        ("model.py:build-it", "unknown model"),
        ("x" * MAX_REFERENCE_CHARS + ".py:f", "printable ASCII"),
        ("modèle.py:build", "printable ASCII"),
    ],
)
def test_malformed_references_are_refused_in_one_line(reference, refusal):
    if refusal is None:
        check_reference(reference)
        with pytest.raises(ConfigError, match="does not exist"):
            resolve_factory(reference)
        return
    with pytest.raises(ConfigError, match=refusal) as caught:
        resolve_factory(reference)
    assert "\n" not in str(caught.value)


def test_factories_that_cannot_be_used_are_refused(tmp_path):
    broken = user_file(tmp_path, "raise RuntimeError('no GPU here')\n", "broken.py")
    with pytest.raises(ConfigError, match="failed to load: no GPU here"):
        resolve_factory(f"{broken}:build")
    returns_list = user_file(tmp_path, "def build(f, c):\n    return [f, c]\n", "listing.py")
    with pytest.raises(ConfigError, match=r"returned list, not a torch nn\.Module"):
        build_model(f"{returns_list}:build", 4, 2, seed=0)
    with pytest.raises(ConfigError, match=r"defines no function 'missing'"):
        resolve_factory(f"{returns_list}:missing")
    with pytest.raises(ConfigError, match=r"cannot import flare\.no_such_module"):
        resolve_factory("flare.no_such_module:build")
    failing = user_file(tmp_path, "def build(f, c):\n    return 1 / 0\n", "failing.py")
    with pytest.raises(ConfigError, match="failed to build: division by zero"):
        build_model(f"{failing}:build", 4, 2, seed=0)
    with pytest.raises(ConfigError, match="the cnn model needs square images"):
        build_model("cnn", 10, 2, seed=0)


def test_the_definition_hash_follows_the_computation_not_the_source(tmp_path):
    rewritten = (
        "import torch\n\n\n"
        "def build(f, c):  # the same layers, written another way\n"
        "    hidden = 16\n"
        "    layers = [torch.nn.Linear(f, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, c)]\n"
        "    return torch.nn.Sequential(*layers)\n"
    )
    a = build_model(f"{user_file(tmp_path / 'a', TWO_LAYERS)}:build", 64, 10, seed=0)
    b = build_model(f"{user_file(tmp_path / 'b', rewritten)}:build", 64, 10, seed=9)
    assert definition_hash(a) == definition_hash(b)
    no_relu = skipping_the_relu()
    assert parameter_shapes(no_relu) == parameter_shapes(a)
    assert definition_hash(no_relu) != definition_hash(a)
    pooled = [
        nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.MaxPool2d(k), nn.Flatten()) for k in (2, 3)
    ]
    assert definition_hash(pooled[0]) != definition_hash(pooled[1])


def test_a_model_other_than_the_bound_one_is_refused_in_one_line():
    bound = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    definition, parameters = definition_hash(bound), parameter_shapes(bound)
    check_binding("m.py:build", bound, definition, parameters)
    wider = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with pytest.raises(ModelMismatchError, match=r"0.weight of shape \(32, 64\); the task's has"):
        check_binding("m.py:build", wider, definition, parameters)
    deeper = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 16), nn.Linear(16, 10))
    with pytest.raises(
        ModelMismatchError,
        match=r"6 parameters, the task's 4; parameter 4 is '3\.weight' here, missing in",
    ):
        check_binding("m.py:build", deeper, definition, parameters)
    no_relu = skipping_the_relu()
    with pytest.raises(ModelMismatchError, match="defined differently") as caught:
        check_binding("m.py:build", no_relu, definition, parameters)
    assert "\n" not in str(caught.value)


def test_a_model_exact_inference_cannot_label_is_refused():
    check_exact("logreg", build_model("logreg", 64, 10, seed=0))
    with pytest.raises(ConfigError, match=r"cannot be labelled exactly: .*Dropout"):
        check_exact("m.py:build", nn.Sequential(nn.Linear(4, 4), nn.Dropout(), nn.Linear(4, 2)))


def manifest_with(architecture: ModelArchitecture | None, model: str = "m.py:build") -> bytes:
    manifest = TaskManifest(model, 4, 2, "fedavg", architecture=architecture)
    return encode_manifest(manifest, np.ones((3, 4), np.float32), np.array([0, 1, 0]))


def test_the_manifest_carries_the_binding_and_only_when_set():
    module = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    architecture = ModelArchitecture(definition_hash(module), parameter_shapes(module))
    decoded = decode_manifest(manifest_with(architecture)).manifest
    assert decoded.architecture == architecture
    assert list(decoded.architecture.parameters) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert b"architecture" not in manifest_with(None, "logreg")
    assert decode_manifest(manifest_with(None, "logreg")).manifest.architecture is None
    assert MAX_MODEL_CHARS == MAX_REFERENCE_CHARS


@pytest.mark.parametrize(
    ("definition", "parameters", "refusal"),
    [
        ("AB" * 32, {"w": (2, 4)}, "lowercase hex"),
        ("ab" * 31, {"w": (2, 4)}, "lowercase hex"),
        ("ab" * 32, {}, "1-4096 parameters"),
        ("ab" * 32, {"w": (0, 4)}, "new \\[name, shape\\]"),
        ("ab" * 32, {"w\n": (2,)}, "new \\[name, shape\\]"),
    ],
)
def test_a_malformed_binding_is_refused(definition, parameters, refusal):
    with pytest.raises(MalformedArtifactError, match=refusal):
        manifest_with(ModelArchitecture(definition, parameters))


def test_a_repeated_parameter_name_is_refused():
    with pytest.raises(MalformedArtifactError, match="new \\[name, shape\\]"):
        ModelArchitecture.from_json(
            {"definition": "ab" * 32, "parameters": [["w", [2]], ["w", [2]]]}
        )


def test_the_seed_does_not_leak_into_the_callers_generator():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    build_model("flare.models.zoo:mlp", 8, 2, seed=7)
    assert torch.equal(torch.rand(1), expected)

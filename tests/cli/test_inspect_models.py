"""``flare inspect`` beyond the MLP: global-model blobs, models named by reference, and the
model a task's manifest binds (from a manifest file, or the task on chain and its store)."""

import re
from pathlib import Path

import numpy as np
import pytest

from flare.cli import main
from flare.compression import UpdateBinding, make_codec
from flare.federation.protocol.artifacts import encode_model
from flare.models import build_model
from flare.models.factory import parameter_shapes

USER_MODEL = """from torch import nn


def narrow_net(num_features: int, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(num_features, 8), nn.ReLU(), nn.Linear(8, num_classes))
"""
REFERENCE = "narrow.py:narrow_net"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's project holding a model file; the working directory, as for task create."""
    (tmp_path / "narrow.py").write_text(USER_MODEL)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_global_model_blob_is_described_with_what_it_left_out(tmp_path, capsys):
    module = build_model("mlp", 64, 10, seed=0)
    weights = {name: tensor.numpy() for name, tensor in module.state_dict().items()}
    path = tmp_path / "model.blob"
    path.write_bytes(encode_model(weights, unavailable=[5, 2]))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "checked against model mlp (64 features, 10 classes)" in out
    assert "global model; submissions left out as unavailable: 2, 5" in out
    assert re.search(r"4\.weight\s+\(10, 128\)", out), out


def test_a_global_model_of_another_model_is_refused_in_one_line(tmp_path, capsys):
    module = build_model("logreg", 64, 10, seed=0)
    weights = {name: tensor.numpy() for name, tensor in module.state_dict().items()}
    path = tmp_path / "model.blob"
    path.write_bytes(encode_model(weights))
    assert main(["inspect", str(path)]) == 2
    assert "do not match the task's architecture" in one_line_error(capsys)
    assert main(["inspect", str(path), "--model", "logreg"]) == 0
    assert "global model" in capsys.readouterr().out


def test_an_update_of_a_user_model_is_checked_against_that_model(project, capsys):
    spec = parameter_shapes(build_model(REFERENCE, 64, 10, seed=0))
    delta = {name: np.full(shape, 0.01, np.float32) for name, shape in spec.items()}
    encoder = make_codec("none").new_encoder(spec, 0)
    path = project / "update.blob"
    path.write_bytes(encoder.encode(delta, UpdateBinding("client-1", "task", 1, 0, "base", 5)))
    assert main(["inspect", str(path), "--model", REFERENCE]) == 0
    out = capsys.readouterr().out
    assert f"checked against model {REFERENCE} (64 features, 10 classes)" in out
    assert "update, codec none, bound to sender client-1" in out
    assert re.search(r"2\.weight\s+\(10, 8\)", out), out
    assert main(["inspect", str(path)]) == 2  # not an MLP's update
    one_line_error(capsys)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--model", "nowhere.py:net"], "model file nowhere.py does not exist"),
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--task", "1", "--manifest", "m.blob"], "give --task or --manifest, not both"),
        (["--manifest", "m.blob", "--classes", "3"], "come from the task's manifest"),
        (["--manifest", "missing.blob"], "cannot read --manifest missing.blob"),
    ],
)
def test_a_model_that_cannot_be_had_is_one_line(project, capsys, arguments, message):
    (project / "m.blob").write_bytes(b"")
    (project / "some.blob").write_bytes(b"\x00" * 16)
    assert main(["inspect", "some.blob", *arguments]) == 2
    assert message in one_line_error(capsys)


def test_the_task_s_model_comes_from_its_manifest_without_the_user_s_code(
    project, capsys, monkeypatch
):
    network = ["--state", str(project / "chain.db"), "--store", str(project / "blobs")]
    create = ["task", "create", "--model", REFERENCE, "--rounds", "1", "--min-clients", "1"]
    assert main([*create, *network]) == 0
    created = re.search(r"model (\S+), manifest (\S+)", capsys.readouterr().out)
    assert created is not None
    model_blob, manifest_blob = (project / "blobs" / "blobs" / cid for cid in created.groups())
    # The manifest binds the architecture: inspecting needs no code of the user's. Elsewhere,
    # the relative reference names no file, as on an auditor's machine.
    (project / "elsewhere").mkdir()
    monkeypatch.chdir(project / "elsewhere")

    assert main(["inspect", str(model_blob), "--task", "1", *network]) == 0
    out = capsys.readouterr().out
    assert f"checked against model {REFERENCE} of task 1" in out
    assert "global model; submissions left out as unavailable: none" in out
    assert re.search(r"0\.weight\s+\(8, 64\)", out), out

    assert main(["inspect", str(model_blob), "--manifest", str(manifest_blob)]) == 0
    assert f"of {manifest_blob}" in capsys.readouterr().out
    assert main(["inspect", str(model_blob), "--model", REFERENCE]) == 2
    assert "model file narrow.py does not exist" in one_line_error(capsys)


def test_a_built_in_task_s_manifest_names_its_model(tmp_path, capsys):
    network = ["--state", str(tmp_path / "chain.db"), "--store", str(tmp_path / "blobs")]
    create = ["task", "create", "--model", "logreg", "--rounds", "1", "--min-clients", "1"]
    assert main([*create, *network]) == 0
    model_cid = re.search(r"model (\S+),", capsys.readouterr().out).group(1)
    model_blob = tmp_path / "blobs" / "blobs" / model_cid
    assert main(["inspect", str(model_blob), "--task", "1", *network]) == 0
    assert "checked against model logreg of task 1" in capsys.readouterr().out
    assert main(["inspect", str(model_blob)]) == 2  # the MLP is only the default
    one_line_error(capsys)

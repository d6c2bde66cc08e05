"""``flare simulate --model`` takes a model by reference, as ``flare task create`` does: a
built-in name, ``package.module:function`` or ``path/to/file.py:function``."""

import json
from pathlib import Path

import pytest

from flare.chain import InMemoryChain
from flare.cli import main
from flare.federation.protocol.artifacts import decode_manifest
from flare.storage import DirectoryStore

USER_MODEL = """from torch import nn


def narrow_net(num_features: int, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(num_features, 8), nn.ReLU(), nn.Linear(8, num_classes))
"""
RUN = ["simulate", "--quiet", "--rounds", "1", "--clients", "3", "--malicious", "0"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "narrow.py").write_text(USER_MODEL)
    (tmp_path / "user_models").mkdir()
    (tmp_path / "user_models" / "__init__.py").write_text("")
    (tmp_path / "user_models" / "narrow.py").write_text(USER_MODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("reference", ["narrow.py:narrow_net", "user_models.narrow:narrow_net"])
def test_an_offline_run_trains_the_model_a_reference_names(project, capsys, reference):
    report = project / "report.json"
    assert main([*RUN, "--offline", "--model", reference, "--report", str(report)]) == 0
    written = json.loads(report.read_text())
    assert written["config"]["model"] == reference
    # The user's model has 8 hidden units: 64*8+8 + 8*10+10 = 610 weights, 2440 bytes raw.
    assert written["rounds"][0]["bytes_raw"] == 3 * 610 * 4, written["rounds"][0]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("nowhere.py:net", "model file nowhere.py does not exist"),
        ("narrow.py:missing", "defines no function 'missing'"),
        ("resnet", "unknown model 'resnet'"),
    ],
)
def test_a_model_that_cannot_be_built_stops_the_run_before_it_starts(
    project, capsys, reference, message
):
    report = project / "report.json"
    assert main([*RUN, "--offline", "--model", reference, "--report", str(report)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not report.exists()


def test_a_protocol_run_of_a_user_model_binds_it_and_verifies(project, capsys):
    network = ["--state", str(project / "chain.db"), "--store", str(project / "blobs")]
    assert main([*RUN, "--model", "narrow.py:narrow_net", *network]) == 0
    capsys.readouterr()
    assert main(["verify", *network]) == 0
    assert "task 1: 1/1 rounds re-derived" in capsys.readouterr().out
    with InMemoryChain(project / "chain.db", read_only=True) as chain:
        manifest_cid = chain.task(1).manifest.to_cid()
    manifest = decode_manifest(DirectoryStore(project / "blobs").get(manifest_cid)).manifest
    assert manifest.model == "narrow.py:narrow_net"
    assert manifest.architecture is not None
    assert manifest.architecture.parameters == {
        "0.weight": (8, 64), "0.bias": (8,), "2.weight": (10, 8), "2.bias": (10,)
    }  # fmt: skip

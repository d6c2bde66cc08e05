"""``flare model export`` on the embedded chain: the files it writes, the lines in load.py
that load them, and its refusals. Finalized rounds are exported in
tests/federation/test_e2e_user_model.py."""

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from flare.cli import main
from flare.federation.protocol.artifacts import decode_model
from flare.models import TorchModelAdapter, build_model
from flare.storage import DirectoryStore

MODEL = """
from torch import nn


def build(num_features, num_classes):
    return nn.Sequential(nn.Linear(num_features, 12), nn.ReLU(), nn.Linear(12, num_classes))
"""


def create_task(root: Path, model: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    network = ["--state", str(root / "chain.db"), "--store", str(root / "blobs")]
    create = ["task", "create", "--model", model, "--seed", "3", "--min-clients", "1"]
    assert main([*create, *network]) == 0
    assert "task 1 created" in capsys.readouterr().out
    return network


def usage_lines(loader: Path) -> str:
    """The lines load.py's docstring tells a user to run."""
    doc = loader.read_text().split('"""')[1]
    return textwrap.dedent(doc.split(":\n\n", 1)[1])


def run_usage(loader: Path, *paths: Path) -> dict:
    """Run the usage lines in a fresh namespace, importing from ``paths``; what they bound."""
    sys.modules.pop("load", None)
    sys.path[:0] = [str(p) for p in paths]
    try:
        namespace: dict = {}
        exec(usage_lines(loader), namespace)
        return namespace
    finally:
        del sys.path[: len(paths)]
        sys.modules.pop("load", None)


def test_the_initial_model_of_a_user_model_task_loads_into_a_fresh_module(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "tiny_net.py").write_text(MODEL)
    monkeypatch.chdir(tmp_path / "project")
    network = create_task(tmp_path, "tiny_net.py:build", capsys)
    out = tmp_path / "export"
    assert (
        main(["model", "export", "--task", "1", "--round", "0", "--out", str(out), *network]) == 0
    )
    printed = capsys.readouterr().out
    assert "Task 1's initial model, CID bafk" in printed
    assert sorted(p.name for p in out.iterdir()) == ["load.py", "model.safetensors"]

    with safe_open(str(out / "model.safetensors"), "np") as exported:
        metadata = exported.metadata()
        tensors = {name: exported.get_tensor(name) for name in exported.keys()}  # noqa: SIM118
    assert metadata["model"] == "tiny_net.py:build" and metadata["round"] == "0"
    spec = {name: tensor.shape for name, tensor in tensors.items()}
    initial = decode_model(DirectoryStore(tmp_path / "blobs").get(metadata["cid"]), spec)
    assert all(np.array_equal(tensors[name], initial[name]) for name in initial)

    assert "from tiny_net import build  # tiny_net.py" in usage_lines(out / "load.py")
    module = run_usage(out / "load.py", out, tmp_path / "project")["module"]
    loaded = TorchModelAdapter(module).get_weights()
    assert list(loaded) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(np.array_equal(loaded[name], initial[name]) for name in initial)
    assert not module.training


def test_a_built_in_model_exports_with_flares_own_builder(tmp_path, capsys):
    network = create_task(tmp_path, "logreg", capsys)
    out = tmp_path / "export"
    assert (
        main(["model", "export", "--task", "1", "--round", "0", "--out", str(out), *network]) == 0
    )
    assert 'build_model("logreg", 64, 10, seed=0)' in usage_lines(out / "load.py")
    module = run_usage(out / "load.py", out)["module"]
    expected = TorchModelAdapter(build_model("logreg", 64, 10, seed=3)).get_weights()
    loaded = TorchModelAdapter(module).get_weights()
    assert all(np.array_equal(loaded[name], expected[name]) for name in expected)


def test_a_round_that_is_not_finalized_is_refused_in_one_line(tmp_path, capsys):
    network = create_task(tmp_path, "logreg", capsys)
    export = ["model", "export", "--task", "1", "--out", str(tmp_path / "export"), *network]
    assert main(export) == 2
    assert "task 1 has no finalized round yet; --round 0 exports" in capsys.readouterr().err
    assert main([*export, "--round", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        "flare model: error: round 2 of task 1 is not finalized"
    )
    assert not (tmp_path / "export").exists()

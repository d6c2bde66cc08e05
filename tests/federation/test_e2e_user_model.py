"""A model of the user's own, end to end: defined in a file of the user's project, named by
``flare task create --model file.py:function``, trained by three ``flare participant run``
processes on Anvil and Kubo, audited by ``flare verify``, taken out with ``flare model
export``; the exported weights, loaded into a fresh instance of the user's module, score
the test set exactly as ``flare task status --test`` reports. Skipped without the anvil or
ipfs binary.
"""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from process_harness import (
    Fleet,
    cli,
    create_task,
    finish_task,
    running_daemons,
    start_task,
    task_options,
)

from flare.federation.protocol.verify import verify_task
from flare.models import TorchModelAdapter
from flare.storage import KuboStore

pytestmark = [pytest.mark.anvil, pytest.mark.kubo, pytest.mark.slow]

CLIENTS = 3
ROUNDS = 2
TASK_ID = 1
DEADLINE_SECONDS = 300
USER_MODEL = '''"""The user's own model: a linear layer on max-pooled 8x8 digit images."""

from torch import nn


def digits_net(num_features: int, num_classes: int) -> nn.Module:
    side = int(num_features**0.5)
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear((side // 2) ** 2, num_classes),
    )
'''
TASK_OPTIONS = task_options(
    "pooled_digits.py:digits_net", ROUNDS, min_clients=CLIENTS, committee=CLIENTS
)


def test_a_user_model_trains_across_processes_and_its_export_reproduces_the_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pooled_digits.py").write_text(USER_MODEL)
    monkeypatch.chdir(project)  # the reference is relative: every process runs from here
    fleet = Fleet(tmp_path, tmp_path / "flare.json", TASK_ID, cwd=project)
    with running_daemons(tmp_path) as (anvil, kubo), fleet:
        task = create_task(tmp_path, anvil.rpc_url, kubo.api_url, CLIENTS, TASK_OPTIONS, capsys)
        start_task(task, fleet, capsys)
        finish_task(task, fleet, DEADLINE_SECONDS)
        verdict = verify_task(task.chain, KuboStore(kubo.api_url), TASK_ID)
        assert verdict.ok and len(verdict.rounds) == ROUNDS, verdict
        export_and_score(tmp_path, project, task.network, capsys)


def export_and_score(
    root: Path, project: Path, network: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The exported weights, in a fresh instance of the user's module, score the test set
    as ``flare task status --test`` reports."""
    test_file = root / "data" / "test.npz"
    status = cli(
        capsys, "task", "status", *network, "--task", str(TASK_ID), "--test", str(test_file)
    )
    reported = re.search(r"global model accuracy (\S+)% \(loss (\S+)\)", status)
    assert reported is not None, status

    out = root / "export"
    cli(capsys, "model", "export", *network, "--task", str(TASK_ID), "--out", str(out))
    loader = importlib.util.spec_from_file_location("exported_loader", out / "load.py")
    user = importlib.util.spec_from_file_location("fresh_user_model", project / "pooled_digits.py")
    assert loader is not None and loader.loader is not None
    assert user is not None and user.loader is not None
    load, user_module = (importlib.util.module_from_spec(spec) for spec in (loader, user))
    loader.loader.exec_module(load)
    user.loader.exec_module(user_module)
    module = load.load_into(user_module.digits_net(64, 10))

    weights = TorchModelAdapter(module).get_weights()
    assert np.abs(weights["3.weight"]).sum() > 0
    with np.load(test_file) as test:
        result = TorchModelAdapter(module).evaluate(test["X"], test["y"])
    assert f"{result.accuracy:.1%}" == f"{reported.group(1)}%"
    assert f"{result.loss:.3f}" == reported.group(2)
    assert result.accuracy > 0.5

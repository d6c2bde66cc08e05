"""A task on a user's own model, on the in-memory chain: what the manifest binds, and a
participant whose model is another refusing before it trains or sends anything."""

import threading
from pathlib import Path

import numpy as np
import pytest
from agent_fleet import client_data

from flare.chain import InMemoryChain
from flare.crypto.identity import ParticipantKeys
from flare.errors import ConfigError
from flare.federation.agents import ParticipantAgent, StepOutcome, TaskSpec, publish_task
from flare.federation.protocol.artifacts import decode_manifest, decode_model
from flare.federation.protocol.simulated_device import participant_keys
from flare.models import ModelMismatchError, TorchModelAdapter, build_model
from flare.models.factory import definition_hash
from flare.storage import MemoryStore

MODEL = """
from torch import nn


def build(num_features, num_classes):
    hidden = {hidden}
    return nn.Sequential(nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return client_data(tmp_path_factory.mktemp("data"))


def project(root: Path, hidden: int, layers: str = MODEL) -> Path:
    """A directory holding ``net.py``, the user's model file."""
    root.mkdir(parents=True)
    (root / "net.py").write_text(layers.format(hidden=hidden))
    return root


def created(chain: InMemoryChain, store: MemoryStore, model: str) -> int:
    creator = chain.as_sender(participant_keys(0, -1)[0])
    return publish_task(creator, store, TaskSpec(model=model, seed=5))


def agent(chain, store, task: int, data: Path, state: Path) -> ParticipantAgent:
    keys = ParticipantKeys(*participant_keys(0, 0))
    return ParticipantAgent(chain, store, keys, task, data / "client-0.npz", state)


def test_the_manifest_binds_a_user_model_and_the_initial_weights_are_its_own(tmp_path, monkeypatch):
    monkeypatch.chdir(project(tmp_path / "creator", hidden=16))
    chain, store = InMemoryChain(), MemoryStore()
    task = created(chain, store, "net.py:build")
    manifest = decode_manifest(store.get(chain.task(task).manifest.to_cid())).manifest
    module = build_model("net.py:build", 64, 10, seed=5)
    assert manifest.model == "net.py:build"
    assert manifest.architecture is not None
    assert manifest.architecture.definition == definition_hash(module)
    assert manifest.architecture.parameters == {
        "0.weight": (16, 64),
        "0.bias": (16,),
        "2.weight": (10, 16),
        "2.bias": (10,),
    }
    initial = decode_model(
        store.get(chain.task(task).model.to_cid()), manifest.architecture.parameters
    )
    expected = TorchModelAdapter(module).get_weights()
    assert all(np.array_equal(initial[name], expected[name]) for name in expected)


def test_a_participant_with_another_model_refuses_before_sending_anything(
    tmp_path, monkeypatch, data
):
    monkeypatch.chdir(project(tmp_path / "creator", hidden=16))
    chain, store = InMemoryChain(), MemoryStore()
    task = created(chain, store, "net.py:build")
    monkeypatch.chdir(project(tmp_path / "device", hidden=32))
    refusing = agent(chain, store, task, data, tmp_path / "state")
    with pytest.raises(ModelMismatchError, match=r"0\.weight of shape \(32, 64\); the task's has"):
        refusing.run(threading.Event(), 0.01)
    assert chain.task(task).registered_count == 0


def test_a_participant_with_the_same_layers_written_otherwise_takes_part(
    tmp_path, monkeypatch, data
):
    monkeypatch.chdir(project(tmp_path / "creator", hidden=16))
    chain, store = InMemoryChain(), MemoryStore()
    task = created(chain, store, "net.py:build")
    rewritten = (
        "import torch.nn as layers\n\n\n"
        "def build(f, c):\n"
        "    width = {hidden}\n"
        "    first, last = layers.Linear(f, width), layers.Linear(width, c)\n"
        "    return layers.Sequential(first, layers.ReLU(), last)\n"
    )
    monkeypatch.chdir(project(tmp_path / "device", hidden=16, layers=rewritten))
    taking_part = agent(chain, store, task, data, tmp_path / "state")
    assert taking_part.step() is StepOutcome.ACTED
    assert chain.task(task).registered_count == 1


def test_task_creation_refuses_a_model_the_committee_cannot_label_exactly(tmp_path, monkeypatch):
    dropout = MODEL.replace("nn.ReLU()", "nn.Dropout(0.1)")
    monkeypatch.chdir(project(tmp_path / "creator", hidden=16, layers=dropout))
    chain, store = InMemoryChain(), MemoryStore()
    with pytest.raises(ConfigError, match=r"cannot be labelled exactly: 1: Dropout"):
        created(chain, store, "net.py:build")
    assert chain.task_count() == 0

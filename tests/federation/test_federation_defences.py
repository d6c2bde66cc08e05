"""The baseline defences inside a run: what the federation hands them, and where they may run."""

import numpy as np
import pytest

from flare.federation.config import SimulationConfig
from flare.federation.protocol.artifacts import (
    MalformedArtifactError,
    TaskManifest,
    encode_manifest,
)
from flare.federation.simulation import Simulation

FEATURES = np.zeros((4, 3), dtype=np.float32)
LABELS = np.array([0, 1, 0, 1])


def test_fltrust_gets_a_server_update_offline_and_filters_sign_flippers():
    config = SimulationConfig(
        clients=6, malicious=2, rounds=2, aggregator="fltrust", local_epochs=1, seed=3
    )
    report = Simulation(config).run()
    last = report.rounds[-1]
    assert set(last.malicious) <= set(last.flagged)
    assert not set(last.flagged) - set(last.malicious)
    assert report.rounds[-1].accuracy > 0.5


def test_bucketing_shuffles_with_the_round_seed():
    config = SimulationConfig(clients=6, malicious=0, rounds=2, aggregator="bucketing", seed=1)
    first, second = Simulation(config).run(), Simulation(config).run()
    assert [r.accuracy for r in first.rounds] == [r.accuracy for r in second.rounds]


def test_a_committee_task_refuses_a_rule_whose_bits_vary_by_machine():
    with pytest.raises(MalformedArtifactError, match="not bitwise reproducible"):
        encode_manifest(TaskManifest("mlp", 3, 2, "fltrust"), FEATURES, LABELS)
    assert encode_manifest(TaskManifest("mlp", 3, 2, "geomedian"), FEATURES, LABELS)

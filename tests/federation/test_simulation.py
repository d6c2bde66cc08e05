"""End-to-end offline runs: learning, compression, attacks, and the report they leave."""

import json

import numpy as np
import pytest

from flare.errors import ConfigError
from flare.federation import simulation
from flare.federation.config import SimulationConfig
from flare.federation.report import RoundRecord
from flare.federation.simulation import RunObserver, Simulation


def run(**options) -> dict:
    config = SimulationConfig(**{"rounds": 3, "malicious": 0, **options})
    return Simulation(config).run().to_dict()


@pytest.fixture(scope="module")
def clean_fedavg():
    return run(aggregator="fedavg", codec="none")


def test_clean_fedavg_learns(clean_fedavg):
    accuracies = [r["accuracy"] for r in clean_fedavg["rounds"]]
    assert accuracies[-1] > 0.9
    assert clean_fedavg["final"]["accuracy"] == accuracies[-1]
    assert all(r["flagged"] == [] and r["malicious"] == [] for r in clean_fedavg["rounds"])


def test_report_has_every_documented_field(clean_fedavg, tmp_path):
    record = clean_fedavg["rounds"][0]
    for key in (
        "round",
        "accuracy",
        "loss",
        "bytes_up",
        "bytes_raw",
        "accepted",
        "flagged",
        "malicious",
        "dropped",
        "seconds",
    ):
        assert key in record
    assert set(clean_fedavg["config"]) >= {
        "dataset",
        "model",
        "clients",
        "rounds",
        "partition",
        "alpha",
        "malicious",
        "attack",
        "aggregator",
        "codec",
        "rank",
        "dropout",
        "seed",
    }
    assert clean_fedavg["final"]["bytes_up"] == sum(r["bytes_up"] for r in clean_fedavg["rounds"])
    assert len(record["accepted"]) == 10
    # raw bytes are exactly ten float32 copies of the model
    assert record["bytes_raw"] == 10 * 4 * (64 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10)


def test_powersgd_sends_far_fewer_bytes_and_still_learns(clean_fedavg):
    # Error feedback needs a few rounds to carry what rank 4 leaves out; by round 6 it has.
    compressed = run(aggregator="fedavg", codec="powersgd", rounds=6)
    final = compressed["final"]
    assert final["bytes_raw"] / final["bytes_up"] > 10
    assert final["accuracy"] >= 0.93
    assert final["accuracy"] > clean_fedavg["final"]["accuracy"] - 0.03


def test_same_seed_same_run_bit_for_bit():
    a = run(rounds=2, malicious=3, attack="noise", codec="powersgd")
    b = run(rounds=2, malicious=3, attack="noise", codec="powersgd")
    for key in ("accuracy", "loss", "bytes_up", "flagged", "scores"):
        assert [r[key] for r in a["rounds"]] == [r[key] for r in b["rounds"]]


@pytest.mark.parametrize("attack", ["sign-flip", "scaling"])
def test_mi_filter_holds_where_fedavg_breaks(attack):
    defended = run(malicious=3, attack=attack, aggregator="mi")
    undefended = run(malicious=3, attack=attack, aggregator="fedavg")
    assert defended["final"]["accuracy"] > 0.9
    assert undefended["final"]["accuracy"] < defended["final"]["accuracy"] - 0.2
    detection = defended["final"]["detection"]
    assert detection["malicious_flagged"] >= 0.9
    assert detection["honest_flagged"] <= 0.1
    for record in defended["rounds"]:
        assert set(record["malicious"]) <= set(record["flagged"])


def test_dropout_removes_clients_reproducibly():
    report = run(rounds=3, dropout=0.5, aggregator="fedavg")
    dropped = [r["dropped"] for r in report["rounds"]]
    assert any(dropped)
    for record in report["rounds"]:
        assert not set(record["dropped"]) & set(record["accepted"])
        assert len(record["dropped"]) + len(record["accepted"]) == 10


def test_observer_sees_every_client_and_round():
    seen: list[str] = []
    rounds: list[RoundRecord] = []

    class Recorder(RunObserver):
        def client_finished(self, client_id: str) -> None:
            seen.append(client_id)

        def round_finished(self, record: RoundRecord) -> None:
            rounds.append(record)

    Simulation(SimulationConfig(rounds=2, clients=4, malicious=0)).run(Recorder())
    assert len(seen) == 8 and [r.round for r in rounds] == [1, 2]


def test_user_model_through_the_python_api():
    import torch

    def tiny(num_features: int, num_classes: int) -> torch.nn.Module:
        return torch.nn.Linear(num_features, num_classes)

    report = Simulation(SimulationConfig(rounds=2, malicious=0), model_builder=tiny).run()
    assert report.rounds[-1].accuracy > 0.8
    assert report.rounds[0].bytes_raw == 10 * 4 * (64 * 10 + 10)


def test_non_iid_npz_data(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(4, 6))
    labels = rng.integers(0, 4, 600)
    path = tmp_path / "blobs.npz"
    np.savez(path, X=centers[labels] + rng.normal(size=(600, 6)), y=labels)
    report = run(
        dataset=str(path),
        partition="dirichlet",
        alpha=0.3,
        clients=6,
        malicious=2,
        attack="label-flip",
    )
    assert report["final"]["accuracy"] > 0.8


def test_a_diverged_run_keeps_going_and_reports_valid_json(tmp_path):
    config = SimulationConfig(
        rounds=3,
        malicious=5,
        attack="sign-flip",
        attack_strength=1000.0,
        aggregator="fedavg",
    )
    report = Simulation(config).run()
    path = tmp_path / "report.json"
    report.write_json(path)
    loaded = json.loads(path.read_text())
    assert len(loaded["rounds"]) == 3
    last = loaded["rounds"][-1]
    assert last["loss"] is None  # NaN is not JSON; the report says null
    assert last["rejected"] and all(
        "could not encode" in reason for reason in last["rejected"].values()
    )


def test_config_is_validated():
    with pytest.raises(ConfigError, match="malicious"):
        SimulationConfig(clients=3, malicious=4)
    with pytest.raises(ConfigError, match="dropout"):
        SimulationConfig(dropout=1.0)


@pytest.mark.parametrize(
    ("aggregator", "max_update_bytes", "contexts_per_round"),
    [
        ("median", 64 * 1024 * 1024, 1),
        ("median", 16, 0),  # every blob refused: nothing to aggregate
        ("fedavg", 64 * 1024 * 1024, 1),  # streamed: the stream opens with it
    ],
)
def test_a_round_builds_its_aggregation_context_only_to_aggregate(
    monkeypatch, aggregator, max_update_bytes, contexts_per_round
):
    built: list[int] = []
    context = simulation.AggregationContext

    def counted(**fields):
        built.append(fields["seed"])
        return context(**fields)

    monkeypatch.setattr(simulation, "AggregationContext", counted)
    config = SimulationConfig(
        rounds=2, malicious=0, aggregator=aggregator, max_update_bytes=max_update_bytes
    )
    report = Simulation(config).run()
    assert [bool(record.accepted) for record in report.rounds] == [contexts_per_round > 0] * 2
    assert len(built) == 2 * contexts_per_round

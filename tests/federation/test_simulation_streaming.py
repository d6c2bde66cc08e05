"""The offline round streams through a rule that can take one update at a time: the same
global models and records as training the whole round first, holding one update, not all."""

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest

from flare.federation import simulation
from flare.federation.config import SimulationConfig
from flare.federation.simulation import Simulation, weights_digest


def run(monkeypatch: pytest.MonkeyPatch, *, stream: bool, **options) -> tuple[list[str], dict]:
    """The run's report and the digest of every global model it evaluated."""
    evaluated: list[str] = []
    original = simulation.evaluate

    def recording_evaluate(federation, weights):
        evaluated.append(weights_digest(weights))
        return original(federation, weights)

    monkeypatch.setattr(simulation, "evaluate", recording_evaluate)
    if not stream:
        monkeypatch.setattr(simulation, "streaming_rule", lambda *_: None)
    config = SimulationConfig(**{"rounds": 2, "malicious": 0, "aggregator": "fedavg", **options})
    report = Simulation(config).run().to_dict()
    monkeypatch.undo()
    for record in report["rounds"]:
        del record["seconds"], record["timings"]
    del report["final"]["seconds"], report["final"]["peak_memory_mb"]
    return evaluated, report


@contextmanager
def batched_rounds() -> Iterator[mock.MagicMock]:
    """Counts the rounds run batched (``run`` undoes its own patches, not this one)."""
    with mock.patch.object(
        Simulation, "_batched", autospec=True, side_effect=Simulation._batched
    ) as batched:
        yield batched


@pytest.mark.parametrize(
    "options",
    [
        {"partition": "dirichlet", "alpha": 0.3, "clients": 12},
        {"dropout": 0.3, "aggregator_params": {"count_weighting": "claimed"}},
        {"codec": "gzip"},
    ],
    ids=["capped-dirichlet", "claimed-dropout", "gzip"],
)
def test_a_streamed_round_gives_the_batched_rounds_models_and_records(monkeypatch, options):
    with batched_rounds() as batched:
        streamed = run(monkeypatch, stream=True, **options)
    assert batched.call_count == 0
    assert streamed == run(monkeypatch, stream=False, **options)


def test_a_client_that_cannot_send_replays_the_round_to_the_same_result(monkeypatch):
    # this learning rate diverges some clients' training in the first round
    options = {"learning_rate": 3.0, "partition": "dirichlet", "clients": 8, "rounds": 1}
    with batched_rounds() as batched:
        streamed_models, streamed = run(monkeypatch, stream=True, **options)
    assert batched.call_count == 1
    rejected = streamed["rounds"][0]["rejected"]
    assert rejected and all("could not encode" in reason for reason in rejected.values())
    assert len(rejected) < 8
    assert (streamed_models, streamed) == run(monkeypatch, stream=False, **options)


def test_streams_only_what_it_can_replay_and_predict():
    def can_stream(**options) -> bool:
        config = SimulationConfig(**{"rounds": 1, "malicious": 0, **options})
        federation = simulation.build_federation(config)
        participants, _ = simulation.active_clients(config, federation.clients, 1)
        clients = simulation.LocalClients(federation)
        return simulation.streaming_rule(federation, clients, participants) is not None

    assert can_stream(aggregator="fedavg")
    assert not can_stream(aggregator="median")  # compares the updates with each other
    assert not can_stream(aggregator="fedavg", codec="powersgd")  # error feedback: no replay
    assert not can_stream(aggregator="fedavg", malicious=2)  # an attack claims any count


def test_a_streamed_round_holds_one_update_not_the_fleets(monkeypatch):
    clients = 60
    update_bytes = 4 * (64 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10)

    def peak_bytes(stream: bool) -> int:
        tracemalloc.start()
        run(monkeypatch, stream=stream, clients=clients, rounds=1)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    assert peak_bytes(stream=False) > clients * update_bytes
    assert peak_bytes(stream=True) < 20 * update_bytes

"""The protocol simulation counts the committee's recomputation as deployed: members that
hold the same blobs and follow the same rule share one computation, with unchanged result."""

import time

import pytest

from flare.federation.backends import InProcessRecomputer
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig

RECOMPUTATION_SECONDS = 1.0
DEFAULT_FIRST_ROUND_MODEL = "bafkreih5cdggbrpbazog3xdjo2b7h3yahgtvo5jh57tod2o7uqticf2p2q"


@pytest.mark.parametrize("dishonest_committee", [False, True])
def test_members_share_one_recomputation_per_rule_and_attempt(
    dishonest_committee: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: list[tuple[int, int, str]] = []
    compute = InProcessRecomputer.recompute

    def counted(self, inputs, context, rule):
        computed.append((inputs.round, inputs.attempt, "fedavg" if rule else "task rule"))
        return compute(self, inputs, context, rule)

    monkeypatch.setattr(InProcessRecomputer, "recompute", counted)
    protocol = ProtocolConfig(dishonest_committee=dishonest_committee)
    report = ProtocolSimulation(SimulationConfig(rounds=1), protocol).run()

    members = [vote for record in report.rounds for vote in record.protocol["votes"]]
    assert len(members) > 1  # several members judged: without sharing, each computes
    assert computed  # every recomputation goes through the backend's recomputer
    assert len(computed) == len(set(computed))  # one computation per attempt and rule
    assert report.rounds[0].protocol["recomputations"] == {
        "count": len(computed),
        "where": "in process",
    }
    if not dishonest_committee:
        assert report.rounds[0].protocol["global_model"] == DEFAULT_FIRST_ROUND_MODEL


def test_the_round_reports_the_slowest_members_aggregate_phase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each member keeps its own clock: the one that ran the shared recomputation shows it
    in full, the summed phase counts it once, not once per member."""
    compute = InProcessRecomputer.recompute

    def slow(self, inputs, context, rule):
        time.sleep(RECOMPUTATION_SECONDS)
        return compute(self, inputs, context, rule)

    monkeypatch.setattr(InProcessRecomputer, "recompute", slow)
    (record,) = ProtocolSimulation(SimulationConfig(rounds=1)).run().rounds
    slowest = record.protocol["slowest_member_aggregate_s"]
    assert len(record.protocol["votes"]) > 1 and record.protocol["recomputations"]["count"] == 1
    assert RECOMPUTATION_SECONDS <= slowest <= record.timings["aggregate"]
    assert record.timings["aggregate"] < 2 * RECOMPUTATION_SECONDS

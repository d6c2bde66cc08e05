"""The protocol simulation counts the committee's recomputation as deployed: members that
hold the same blobs and follow the same rule share one computation, with unchanged result."""

import pytest

from flare.federation.backends import InProcessRecomputer
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig

DEFAULT_FIRST_ROUND_MODEL = "bafkreiajqmbaj2bp7ybvboaaglpeea2bcivueuwxfips26rivwhizozi7a"


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

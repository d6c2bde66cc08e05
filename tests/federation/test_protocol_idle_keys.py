"""Simulated devices finalize among a flood of idle keys: the attempts that seat fewer than
``minCommittee`` escalate the committee until the devices hold the seats (docs/protocol.md
§4.12, §11 "Liveness")."""

import pytest

from flare.chain import InMemoryChain, RoundOpened
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.protocol.simulated_device import participant_keys
from flare.federation.protocol.verify import verify_task
from flare.federation.task_parameters import TaskParameters
from flare.storage import DirectoryStore

IDLE_KEYS = 45
IDLE_SEED = 9_999
"""Keys of a seed no simulated client uses: registered, never stepped."""


def test_devices_finalize_among_45_idle_keys(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """6 devices beside 45 idle keys with k = 5 and minCommittee 3: each key is seated with
    odds about 1/10, three of the six about once in 70 attempts, so five attempts without
    escalation fail with odds 0.93. The attempts draw with 5, 10, 20, 40, 80 >= 51 seats
    expected, and the round finalizes within them."""
    start_task = InMemoryChain.start_task

    def flood_then_start(chain: InMemoryChain, task_id: int):
        for index in range(IDLE_KEYS):
            account, bls_key = participant_keys(IDLE_SEED, index)
            ProtocolParticipant(f"idle {index}", account, bls_key).register(chain, task_id)
        return start_task(chain, task_id)

    monkeypatch.setattr(InMemoryChain, "start_task", flood_then_start)
    task = TaskParameters(expected_committee=5, min_committee=3, max_attempts=5)
    protocol = ProtocolConfig(task=task, state=tmp_path / "chain.db", store=tmp_path / "blobs")
    config = SimulationConfig(model="logreg", clients=6, malicious=0, rounds=1)
    report = ProtocolSimulation(config, protocol).run()

    (record,) = report.rounds
    assert record.protocol["task_completed"]
    assert len(record.protocol["committee"]) >= 3
    with InMemoryChain(tmp_path / "chain.db") as chain:
        assert chain.task(1).registered_count == 6 + IDLE_KEYS
        opened = [event for event in chain.events() if isinstance(event, RoundOpened)]
        failed = record.protocol["failed_attempts"]
        assert [event.expected_committee for event in opened] == [
            5 * 2**attempt for attempt in range(len(failed) + 1)
        ]
        assert all(len(attempt["committee"]) < 3 for attempt in failed)
        assert len(failed) >= 1  # the flood did hold the first attempt below minCommittee
        verdict = verify_task(chain, DirectoryStore(tmp_path / "blobs"), 1)
    assert verdict.ok

"""The agents against the shipped contract on Anvil: the same fleet, a real node.

The in-memory chain and the contract are held to one specification; this shows the
agents need nothing else. Like the conformance suite, it skips only when no Anvil binary
exists, and every test leaves the session's node as it found it.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_fleet import CLIENTS, client_data, make_fleet
from conformance.anvil_harness import FUNDING, shared_anvil, shared_deployment

from flare.chain import TaskStatus
from flare.chain.rpc.chain import RpcChain, RpcSettings
from flare.federation.protocol.simulated_device import participant_keys
from flare.federation.protocol.verify import verify_task

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


@pytest.fixture
def anvil() -> Iterator[RpcChain]:
    chain = shared_deployment().connect(shared_anvil().rpc_url, settings=RpcSettings.dev_node())
    baseline = chain.rpc.request("evm_snapshot")
    for index in range(-1, CLIENTS):  # -1 is the task's creator
        address = participant_keys(0, index)[0].address
        chain.rpc.request("anvil_setBalance", address, hex(FUNDING))
    try:
        yield chain
    finally:
        assert chain.rpc.request("evm_revert", baseline)


def test_agents_restarted_at_every_step_finish_a_task_on_the_contract(
    tmp_path: Path, anvil: RpcChain
) -> None:
    fleet = make_fleet(tmp_path, client_data(tmp_path / "data"), inner=anvil)
    agents = [fleet.agent(i) for i in range(CLIENTS)]
    fleet.start(agents)
    fleet.drive(agents, fresh=fleet.agent)  # a new process, same keys and state, every step
    assert anvil.task(fleet.task_id).status is TaskStatus.COMPLETED
    assert fleet.refusals() == []
    verdict = verify_task(anvil, fleet.store, fleet.task_id)
    assert verdict.ok and len(verdict.rounds) == 3

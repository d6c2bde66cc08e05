"""The dashboard on a real node: gas comes from Anvil's receipts and adds up."""

from pathlib import Path

import pytest
from conformance.anvil_harness import start_anvil

from flare.chain.rpc.accounts import dev_account
from flare.chain.rpc.chain import RpcSettings
from flare.chain.rpc.deployment import deploy
from flare.config import NetworkConfig, open_chain
from flare.dashboard.watch import TaskWatcher
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig
from flare.storage import DirectoryStore

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def test_gas_per_round_and_in_all_is_what_the_node_charged_the_contract(tmp_path: Path) -> None:
    node = start_anvil(tmp_path / "anvil")
    try:
        deployment = deploy(node.rpc_url, dev_account(), settings=RpcSettings.dev_node())
        deployment_file = deployment.save(tmp_path / "deployment.json")
        config = SimulationConfig(model="logreg", clients=4, malicious=1, rounds=2, seed=0)
        protocol = ProtocolConfig(
            chain_url=node.rpc_url, deployment=deployment_file, store=tmp_path / "blobs"
        )
        ProtocolSimulation(config, protocol).run()
        network = NetworkConfig(rpc_url=node.rpc_url, deployment=deployment_file)
        watcher = TaskWatcher(
            lambda: open_chain(network, read_only=True), DirectoryStore(tmp_path / "blobs")
        )
        snapshot = watcher.snapshot()
        chain = deployment.connect(node.rpc_url, settings=RpcSettings.dev_node())
        # every transaction to this fresh chain's coordinator was one of this task's
        charged = gas = 0
        for block in range(chain.block_number() + 1):
            for receipt in chain.rpc.request("eth_getBlockReceipts", hex(block)):
                if (receipt.get("to") or "").lower() == chain.contract_address.lower():
                    used = int(receipt["gasUsed"], 16)
                    gas += used
                    charged += used * int(receipt["effectiveGasPrice"], 16)
    finally:
        node.kill()
    assert snapshot["status"] == "completed" and snapshot["history_matches"] is True
    assert snapshot["gas_total"] == {"gas": gas, "wei": charged}
    round_gas = [r["gas"] for r in snapshot["rounds"]]
    assert len(round_gas) == 2 and all(g > 0 for g in round_gas)
    # creating the task and registering are in the total but in no round
    assert sum(round_gas) < gas
    assert all(r["verification"] == "re-derived" for r in snapshot["rounds"])

"""One way to open a chain (``flare.config.open_chain``): in memory, journaled, or a deployment
over JSON-RPC, whose artifact must be the shipped one; ``flare verify`` goes through it."""

import dataclasses
import json

import pytest
from eth_account import Account

from flare.chain import ContentRef, InMemoryChain, TaskCreated
from flare.cli import main
from flare.config import DEV_FUNDING_WEI, NetworkConfig, open_chain
from flare.errors import ConfigError
from flare.federation.task_parameters import DEFAULT_TASK_PARAMETERS
from flare.storage import MemoryStore

CID = MemoryStore().put(b"a model")


def create_task(chain) -> int:
    ref = ContentRef.from_cid(CID)
    receipt = chain.create_task(ref, ref, DEFAULT_TASK_PARAMETERS.on_chain())
    return receipt.one(TaskCreated).task_id


def test_without_a_network_config_a_fresh_chain_lives_in_memory():
    with open_chain(None) as chain:
        assert isinstance(chain, InMemoryChain)
    creator = Account.create()
    with open_chain(None, creator) as chain:
        assert create_task(chain) == 1
        assert chain.task(1).creator == creator.address
    with open_chain(None) as chain:
        assert chain.task_count() == 0


def test_a_journal_opened_read_only_must_exist_and_keeps_what_was_written(tmp_path):
    state = tmp_path / "chain.db"
    config = NetworkConfig(rpc_url=None, state=state)
    with pytest.raises(ConfigError, match="no chain state at"), open_chain(config, read_only=True):
        pass
    assert not state.exists()
    with open_chain(config, Account.create()) as chain:
        create_task(chain)
    with open_chain(config, read_only=True) as chain:
        assert chain.task_count() == 1


def write_deployment(path, **changes) -> None:
    shipped = {
        "format": 1,
        "contract": "FlareCoordinator",
        "chain_id": 31337,
        "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "deploy_block": 1,
        "transaction_hash": "0x" + "11" * 32,
        "deployer": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "artifact_sha256": "00" * 32,
    }
    path.write_text(json.dumps({**shipped, **changes}))


def test_verify_refuses_a_deployment_of_another_artifact_before_reading_the_chain(tmp_path, capsys):
    (tmp_path / "blobs" / "blobs").mkdir(parents=True)
    write_deployment(tmp_path / "deployment.json")
    argv = [
        "verify",
        "--rpc",
        "http://127.0.0.1:9",
        "--deployment",
        str(tmp_path / "deployment.json"),
    ]
    assert main([*argv, "--store", str(tmp_path / "blobs")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "was deployed from artifact 000000000000" in error


@pytest.mark.anvil
def test_a_dev_node_gets_a_fresh_deployment_and_funded_accounts_and_verify_reads_it(
    tmp_path, capsys
):
    from conformance.anvil_harness import start_anvil

    from flare.chain.rpc.accounts import dev_account
    from flare.chain.rpc.chain import RpcSettings
    from flare.chain.rpc.contract import Artifact, load_artifact
    from flare.chain.rpc.deployment import deploy

    node = start_anvil(tmp_path / "anvil")
    try:
        device = Account.create()
        config = NetworkConfig(rpc_url=node.rpc_url)
        with open_chain(config, dev_accounts=[device.address]) as chain:
            balance = chain.rpc.request("eth_getBalance", device.address, "latest")
            assert int(balance, 16) == DEV_FUNDING_WEI
            assert chain.task_count() == 0
        # a contract whose code is not the shipped artifact: creation code that only stops
        other = dataclasses.replace(load_artifact(), bytecode=b"\x00", deployed_bytecode=b"")
        assert isinstance(other, Artifact)
        deployment = deploy(node.rpc_url, dev_account(), settings=RpcSettings.dev_node(),
                            artifact=other)  # fmt: skip
        deployment.save(tmp_path / "other.json")
        (tmp_path / "blobs" / "blobs").mkdir(parents=True)
        argv = ["verify", "--rpc", node.rpc_url, "--store", str(tmp_path / "blobs")]
        assert main([*argv, "--deployment", str(tmp_path / "other.json")]) == 2
        assert f"the contract at {deployment.address} was deployed from artifact" in (
            capsys.readouterr().err
        )
    finally:
        node.kill()

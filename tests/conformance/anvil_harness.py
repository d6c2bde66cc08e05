"""The conformance suite's real node: one Anvil per test session, reset between tests.

Starting Anvil and deploying the contract takes a second or two, so both happen once; the
deployed baseline is captured with ``evm_snapshot`` and every test ends with
``evm_revert`` to it. The node is skipped only when no Anvil binary exists (with that
reason); a missing or mismatched contract artifact is a failure, never a skip.
"""

import atexit
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from conformance.harness import ChainHarness
from conformance.scenario import identities
from flare.chain import ChainConnector
from flare.chain.rpc.accounts import dev_account
from flare.chain.rpc.chain import RpcSettings
from flare.chain.rpc.deployment import Deployment, deploy
from flare.chain.rpc.transport import HttpProvider, RpcClient
from flare.node import AnvilConfig, AnvilNode, NodeError, find_anvil

FUNDING = 10**21
"""Wei given to every test identity (1,000 ether: gas is never the limit in a test)."""

_shared: dict[str, object] = {}


def anvil_binary() -> Path:
    """The Anvil binary, or a skip that says why the Anvil tests cannot run here."""
    try:
        return find_anvil()
    except NodeError as exc:
        pytest.skip(f"Anvil tests need an anvil binary: {exc}")


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_anvil(state_dir: Path, **config: object) -> AnvilNode:
    """A fresh Anvil on a free port with its state under ``state_dir``."""
    node = AnvilNode(AnvilConfig(state_dir=state_dir, port=free_port(), **config), anvil_binary())
    node.start()
    return node


def shared_anvil() -> AnvilNode:
    """The session's Anvil, started on first use and stopped when the session ends."""
    node = _shared.get("node")
    if node is None:
        state_dir = Path(tempfile.mkdtemp(prefix="flare-anvil-"))
        atexit.register(shutil.rmtree, state_dir, ignore_errors=True)
        node = start_anvil(state_dir)
        atexit.register(node.kill)  # runs first: atexit is last in, first out
        _shared["node"] = node
    assert isinstance(node, AnvilNode)
    return node


def shared_deployment() -> Deployment:
    """``FlareCoordinator`` deployed once on the session's Anvil, identities funded."""
    deployment = _shared.get("deployment")
    if deployment is None:
        node = shared_anvil()
        deployment = deploy(node.rpc_url, dev_account(), settings=RpcSettings.dev_node())
        rpc = RpcClient(HttpProvider(node.rpc_url, 10))
        for identity in identities():
            rpc.request("anvil_setBalance", identity.address, hex(FUNDING))
        _shared["deployment"] = deployment
    assert isinstance(deployment, Deployment)
    return deployment


class AnvilHarness(ChainHarness):
    """The shipped contract on the session's Anvil, rolled back after every test."""

    def __init__(self, workdir: Path) -> None:
        del workdir  # the node's state lives with the session, not the test
        deployment = shared_deployment()
        self.chain = deployment.connect(shared_anvil().rpc_url, settings=RpcSettings.dev_node())
        self._baseline = self.chain.rpc.request("evm_snapshot")

    def connector(self) -> ChainConnector:
        return self.chain

    def mine(self, blocks: int) -> None:
        self.chain.mine(blocks)

    def prevrandao(self, block_number: int) -> int:
        block = self.chain.rpc.request("eth_getBlockByNumber", hex(block_number), False)
        return int(block["mixHash"], 16)  # post-merge, the header's mixHash is prevrandao

    def contract_balance(self) -> int:
        return int(
            self.chain.rpc.request("eth_getBalance", self.chain.contract_address, "latest"), 16
        )

    def close(self) -> None:
        if not self.chain.rpc.request("evm_revert", self._baseline):
            raise RuntimeError("Anvil refused to revert to the test's baseline snapshot")

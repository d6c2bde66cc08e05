"""``RpcChain`` with the shipped ``FlareCoordinator`` on a real Anvil.

The conformance suite already runs every protocol rule through this connector; these
tests cover what only a real node has: deploying and the deployment file, concurrent
senders, a transaction that reverts after it was broadcast, the gas the contract really
uses, and a node that dies and comes back from its state file.
"""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance.anvil_harness import FUNDING, shared_anvil, shared_deployment, start_anvil
from conformance.scenario import World, content, identities

from flare.chain import Receipt, UpdateSubmitted
from flare.chain.api import errors as e
from flare.chain.api.derive import encode_accepted
from flare.chain.rpc.accounts import ANVIL_DEV_KEY, dev_account
from flare.chain.rpc.chain import (
    ChainUnavailableError,
    ContractNotFoundError,
    RpcChain,
    RpcSettings,
    TransactionSettings,
)
from flare.chain.rpc.deployment import Deployment, deploy
from flare.chain.rpc.transactions import CallReverted
from flare.chain.rpc.transport import RetryPolicy, WrongChainError
from flare.cli import main

pytestmark = pytest.mark.anvil

RESEND_SOON = RpcSettings(
    # Long enough for a test to rearrange the chain before a dropped transaction returns.
    transactions=TransactionSettings(poll_interval=0.01, resend_after=1.5, receipt_timeout=30),
    retry=RetryPolicy(attempts=3, initial_delay=0.05, max_delay=0.2),
)


@pytest.fixture
def world() -> Iterator[World]:
    """The session's deployment, rolled back after the test (automine restored)."""
    chain = shared_deployment().connect(shared_anvil().rpc_url, settings=RESEND_SOON)
    baseline = chain.rpc.request("evm_snapshot")
    try:
        yield World(chain, chain.mine)
    finally:
        chain.rpc.request("evm_setAutomine", True)
        chain.rpc.request("evm_revert", baseline)


def test_flare_deploy_writes_a_file_that_connects(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = shared_anvil().rpc_url
    out = tmp_path / "deployment.json"
    key_file = tmp_path / "key"
    key_file.write_text(ANVIL_DEV_KEY)
    assert main(["deploy", "--rpc", url, "--key-file", str(key_file), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    deployment = Deployment.load(out, chain_id=31337)
    assert deployment.deployer == dev_account().address
    chain = deployment.connect(url)
    assert chain.task_count() == 0
    assert chain.contract_address != shared_deployment().address
    assert main(["deploy", "--rpc", url, "--dev-account", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["deploy", "--rpc", url, "--dev-account", "--chain-id", "5", "--force"]) == 2
    assert "serves chain id 31337, not the configured 5" in capsys.readouterr().err


def test_a_node_of_another_chain_or_an_empty_address_is_refused(world: World) -> None:
    url = shared_anvil().rpc_url
    with pytest.raises(WrongChainError):
        RpcChain(url, world.chain.contract_address, chain_id=1)
    with pytest.raises(ContractNotFoundError, match="no contract at"):
        RpcChain(url, "0x" + "12" * 20, chain_id=31337)


def test_receipts_name_the_transaction_and_the_gas_it_used(world: World) -> None:
    task_id = world.started_task(registered=2)
    receipt = world.by(0).submit(task_id, content("u"), 5)
    assert receipt.transaction_hash is not None and len(receipt.transaction_hash) == 32
    assert receipt.gas_used is not None
    assert receipt.events == (
        UpdateSubmitted(
            receipt.block_number, 0, task_id, 1, world.address(0), 0, 0, content("u"), 5
        ),
    )


def test_the_contract_meets_the_gas_targets_of_protocol_section_10(world: World) -> None:
    task_id = world.started_task(registered=4, quorum_bps=10_000)
    submits = [world.by(who).submit(task_id, content(f"u{who}"), 5) for who in range(3)]
    world.claim(task_id, 0, 1, 2)
    world.to_voting(task_id)
    world.by(0).propose(task_id, content("model"), encode_accepted([0, 1, 2], 3))
    votes = [world.by(who).vote(task_id, 1, True) for who in range(3)]
    assert max(_gas(r) for r in submits) <= 70_000
    assert max(_gas(r) for r in votes[:2]) <= 60_000, "an ordinary vote"


def _gas(receipt: Receipt) -> int:
    assert receipt.gas_used is not None
    return receipt.gas_used


def test_concurrent_participants_and_one_busy_account(world: World) -> None:
    task_id = world.create_task(min_clients=8, submission_window=40)
    _all_succeed([lambda who=who: world.register(task_id, who) for who in range(8)])
    world.by(0).start_task(task_id)
    _all_succeed([lambda who=who: world.submit(task_id, who) for who in range(8)])
    submissions = world.chain.submissions(task_id, 1, 0)  # checked against the hash chain
    assert [s.index for s in submissions] == list(range(8))
    assert {s.participant for s in submissions} == {world.address(who) for who in range(8)}
    busy = world.by(9)
    _all_succeed([lambda: world.create_task(creator=9) for _ in range(6)])
    assert world.chain.task_count() == 7
    assert {world.chain.task(t).creator for t in range(2, 8)} == {busy.sender}


def _all_succeed(actions: list[object]) -> None:
    errors: list[BaseException] = []

    def run(action: object) -> None:
        try:
            action()  # type: ignore[operator]
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_transaction_that_reverts_after_broadcast_raises_the_typed_error(world: World) -> None:
    task_id = world.started_task(registered=2, submission_window=5)
    deadline = world.chain.current_round(task_id).submission_deadline
    rpc = world.chain.rpc
    rpc.request("evm_setAutomine", False)
    outcome: dict[str, BaseException] = {}

    def submit() -> None:
        try:
            world.by(1).submit(task_id, content("late"), 5)
        except e.ChainError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=submit)
    thread.start()
    dropped = _wait_for_pool(world)
    rpc.request("anvil_dropTransaction", dropped)  # lost, and resent after the deadline
    world.mine_to(deadline)
    rpc.request("evm_setAutomine", True)
    thread.join()
    error = outcome["error"]
    assert error == e.SubmissionWindowClosed(task_id, deadline)
    assert isinstance(error.__cause__, CallReverted)
    assert error.__cause__.transaction_hash is not None
    assert world.chain.block_number() == deadline + 1, "unlike a preflight, it mined a block"
    assert world.chain.current_round(task_id).submission_count == 0


def _wait_for_pool(world: World) -> str:
    for _ in range(500):
        pool = world.chain.rpc.request("txpool_content")["pending"]
        hashes = [tx["hash"] for by_nonce in pool.values() for tx in by_nonce.values()]
        if hashes:
            return hashes[0]
        time.sleep(0.01)
    raise AssertionError("the transaction never reached the pool")


def test_a_killed_node_is_unavailable_and_restarts_from_its_last_state(tmp_path: Path) -> None:
    node = start_anvil(tmp_path / "state")
    try:
        deployment = deploy(node.rpc_url, dev_account(), settings=RpcSettings.dev_node())
        chain = deployment.connect(node.rpc_url, settings=RESEND_SOON)
        for identity in identities():
            chain.rpc.request("anvil_setBalance", identity.address, hex(FUNDING))
        world = World(chain, chain.mine)
        kept = world.create_task()
        world.register(kept, 0, 1)
        proof = identities()[2].possession_proof(chain, kept)
        node.checkpoint()
        world.create_task()  # mined after the last state write: a crash loses it
        node.kill()

        with pytest.raises(ChainUnavailableError, match="unavailable"):
            chain.task_count()
        with pytest.raises(ChainUnavailableError):
            world.by(2).register(kept, identities()[2].public_key, proof)

        node.start()
        assert chain.task_count() == 1
        assert chain.public_key(kept, world.address(1)) == identities()[1].public_key
        world.register(kept, 2)
        node.stop()  # a clean stop writes everything
        node.start()
        assert chain.task(kept).registered_count == 3
        assert chain.public_key(kept, world.address(2)) == identities()[2].public_key
    finally:
        node.kill()

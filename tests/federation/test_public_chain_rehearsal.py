"""The public-chain rehearsal: participant processes on an Anvil that behaves like a testnet.

Anvil mines on a timer (no transaction is mined the moment it arrives), with a block gas
limit under which load moves the base fee; a loopback proxy in front of it refuses log
queries over more than a few blocks, as public providers do. Each participant waits for
two confirmations. Mid-run the test drops one participant's pending submission from the
node's pool (``anvil_dropTransaction``) and reorganises away a block holding protocol
transactions (``anvil_reorg``). Three rounds must still finalize with every submission
and vote on the final chain exactly once, and ``flare verify`` must re-derive them all.

CI mines a block a second so the test stays near three minutes; the rehearsal's documented
setting is twelve (docs/anvil.md §7), which ``FLARE_REHEARSAL_BLOCK_TIME=12`` selects. A
quick test checks the node ``flare node up --public-chain`` starts, and measures the
deployment's gas that docs/testnet.md quotes. Skipped only without the anvil or ipfs binary.
"""

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conformance.anvil_harness import anvil_binary, free_port
from process_harness import (
    CreatedTask,
    Fleet,
    assert_once_per_attempt,
    assert_verify_cli_agrees,
    create_task,
    finish_task,
    running_daemons,
    start_task,
    task_options,
)
from public_chain_proxy import PublicChainProxy

from flare.chain import (
    ContentRef,
    Round,
    RoundFinalized,
    RoundOpened,
)
from flare.chain.api.calls import Submit, decode_call
from flare.chain.rpc.accounts import dev_account
from flare.chain.rpc.chain import RpcSettings
from flare.chain.rpc.deployment import deploy
from flare.chain.rpc.transport import HttpProvider, RpcClient
from flare.cli import main
from flare.federation.protocol.follow import TaskFollower
from flare.node import AnvilConfig
from flare.node.anvil import PUBLIC_CHAIN_GAS_LIMIT

CLIENTS = 3
ROUNDS = 3
TASK_ID = 1
BLOCK_TIME = float(os.environ.get("FLARE_REHEARSAL_BLOCK_TIME", "1"))
"""Seconds per block: 1 in CI; ``FLARE_REHEARSAL_BLOCK_TIME=12`` rehearses at Ethereum's pace."""
MAX_LOG_BLOCKS = 64
"""Below the length the run reaches (about 250 blocks), so later reads are split."""
DEPLOYMENT_GAS = 4_404_395
"""docs/testnet.md's figure: the coordinator's one deployment transaction (its BLS and VRF
code is internal, so no library is deployed on its own)."""
DEADLINE_SECONDS = 300 * BLOCK_TIME
TASK_OPTIONS = task_options(
    "logreg", ROUNDS, min_clients=CLIENTS, committee=CLIENTS, submission_window=24
)
"""Every participant must submit in every round, so a lost submission fails the round;
windows leave room for a resend (5 s) and two confirmations per transaction."""


class Dropper:
    """Drops from the pool the first submission broadcast once armed; remembers it."""

    def __init__(self) -> None:
        self.proxy: PublicChainProxy | None = None
        self.armed = threading.Event()
        self.dropped: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def __call__(self, tx_hash: str) -> None:
        assert self.proxy is not None
        if not self.armed.is_set():
            return
        with self._lock:
            if self.dropped is not None:
                return
            transaction = self.proxy.upstream_request("eth_getTransactionByHash", tx_hash)
            if not isinstance(decode_call(bytes.fromhex(transaction["input"][2:])), Submit):
                return
            if self.proxy.upstream_request("anvil_dropTransaction", tx_hash) == tx_hash:
                self.dropped = transaction


class ReopeningChain:
    """Just enough chain for a follower: the open attempt's log, in whichever block a
    reorganisation last put it."""

    def __init__(self, opened_at: int) -> None:
        self.opened_at = opened_at

    def round_opened(self, task_id: int, round_number: int, attempt: int) -> RoundOpened:
        return RoundOpened(
            block_number=self.opened_at, log_index=0, task_id=task_id, round=round_number,
            attempt=attempt, epoch=4, base_model=ContentRef(0x55, bytes(32)),
            registered_snapshot=3, expected_committee=40, submission_deadline=self.opened_at + 24,
            vote_deadline=self.opened_at + 44,
        )  # fmt: skip

    def events(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def open_round(opened_at: int) -> Round:
    return Round(
        round=2, attempt=0, epoch=4, seed=b"\x01" * 32, opened_at=opened_at,
        submission_deadline=opened_at + 24, vote_deadline=opened_at + 44,
        registered_snapshot=3, expected_committee=40, submission_count=0,
        submissions_hash=bytes(32),
        committee_size=0, quorum_threshold=2, rejections=0,
    )  # fmt: skip


def test_an_attempt_reopened_by_a_reorganisation_is_followed_afresh() -> None:
    chain = ReopeningChain(opened_at=40)
    follower = TaskFollower(chain, 1, logging.getLogger("test"))  # type: ignore[arg-type]
    memo = follower.attempt(open_round(40))
    memo.seat_refused_for = b"\x01" * 32
    assert follower.attempt(open_round(40)) is memo
    chain.opened_at = 42  # the opening block was reorganised away; it opened again later
    fresh = follower.attempt(open_round(42))
    assert fresh is not memo and fresh.seat_refused_for is None
    assert fresh.opened.submission_deadline == 66


@pytest.mark.anvil
def test_node_up_public_chain_mines_on_a_timer_and_load_raises_the_base_fee(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anvil_binary()
    port, state_dir = free_port(), tmp_path / "node"
    up = ["node", "up", "--public-chain", "--block-time", "0.5", "--no-kubo"]
    assert main([*up, "--port", str(port), "--state-dir", str(state_dir)]) == 0
    try:
        url = f"http://127.0.0.1:{port}"
        rpc = RpcClient(HttpProvider(url, 10))
        assert rpc.request("anvil_getAutomine") is False
        deployment = deploy(url, dev_account(), settings=RpcSettings.dev_node())
        receipt = rpc.request("eth_getTransactionReceipt", deployment.transaction_hash)
        gas_used = int(receipt["gasUsed"], 16)
        assert abs(gas_used - DEPLOYMENT_GAS) <= DEPLOYMENT_GAS // 10, gas_used
        # The deployment fills more than half the block: the next block's base fee rises.
        deployed = deployment.deploy_block
        deadline = time.monotonic() + 30
        while rpc.block_number() <= deployed and time.monotonic() < deadline:
            time.sleep(0.1)
        blocks = [
            rpc.request("eth_getBlockByNumber", hex(n), False) for n in (deployed, deployed + 1)
        ]
        assert int(blocks[0]["gasLimit"], 16) == PUBLIC_CHAIN_GAS_LIMIT
        assert int(blocks[0]["gasUsed"], 16) > PUBLIC_CHAIN_GAS_LIMIT // 2
        fees = [int(block["baseFeePerGas"], 16) for block in blocks]
        assert fees[1] > fees[0], fees
    finally:
        main(["node", "down", "--state-dir", str(state_dir)])
        capsys.readouterr()


@pytest.mark.anvil
@pytest.mark.kubo
@pytest.mark.slow
def test_three_rounds_finalize_across_a_reorg_and_a_dropped_transaction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = AnvilConfig.public_chain(
        block_time=BLOCK_TIME, state_dir=tmp_path / "anvil", port=free_port()
    )
    fleet = Fleet(tmp_path, tmp_path / "flare.json", TASK_ID)
    dropper = Dropper()
    with (
        running_daemons(tmp_path, config) as (anvil, kubo),
        PublicChainProxy(anvil.rpc_url, MAX_LOG_BLOCKS, dropper) as proxy,
        fleet,
    ):
        dropper.proxy = proxy
        task = create_task(
            tmp_path, proxy.rpc_url, kubo.api_url, CLIENTS, TASK_OPTIONS, capsys, confirmations=2
        )
        rehearse(task, proxy, fleet, dropper, capsys)


def rehearse(
    task: CreatedTask,
    proxy: PublicChainProxy,
    fleet: Fleet,
    dropper: Dropper,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chain = task.chain
    started = time.monotonic()
    start_task(task, fleet, capsys)

    fleet.wait_until(lambda: chain.current_round(TASK_ID).round >= 2, DEADLINE_SECONDS, "round 2")
    dropper.armed.set()
    fleet.wait_until(lambda: dropper.dropped is not None, DEADLINE_SECONDS, "a submission to drop")
    removed = reorganise_a_protocol_block(proxy, chain.contract_address, DEADLINE_SECONDS)

    finish_task(task, fleet, DEADLINE_SECONDS - (time.monotonic() - started))

    assert proxy.refused_log_queries > 0, "no log query was long enough to be refused"
    assert removed, "the reorganisation removed no protocol transaction"
    dropped = dropper.dropped
    assert dropped is not None
    assert proxy.upstream_request("eth_getTransactionReceipt", dropped["hash"]) is None

    # Every participant's update is in every finalized attempt exactly once, and nobody
    # submitted or voted twice in any attempt.
    finalized = {
        (event.round, event.attempt)
        for event in chain.events([RoundFinalized], task_id=TASK_ID)
        if isinstance(event, RoundFinalized)
    }
    assert {round_number for round_number, _ in finalized} == set(range(1, ROUNDS + 1))
    submissions = assert_once_per_attempt(chain, TASK_ID)
    for round_number, attempt in finalized:
        submitters = {who for (r, a, who) in submissions if (r, a) == (round_number, attempt)}
        assert len(submitters) == CLIENTS, (round_number, attempt, submitters)
    assert any(who == dropped["from"].lower() for (_, _, who) in submissions)

    assert_verify_cli_agrees(task, ROUNDS, capsys)


def reorganise_a_protocol_block(
    proxy: PublicChainProxy, contract: str, seconds: float
) -> list[str]:
    """Wait for a head block holding a transaction to ``contract``, then reorganise it away
    (with whatever was mined on top of it meanwhile); the hashes it removed."""
    deadline = time.monotonic() + seconds
    checked = int(proxy.upstream_request("eth_blockNumber"), 16)
    while time.monotonic() < deadline:
        head = int(proxy.upstream_request("eth_blockNumber"), 16)
        for number in range(checked + 1, head + 1):
            block = proxy.upstream_request("eth_getBlockByNumber", hex(number), True)
            ours = [
                tx["hash"]
                for tx in block["transactions"]
                if (tx.get("to") or "").lower() == contract.lower()
            ]
            if ours:
                depth = int(proxy.upstream_request("eth_blockNumber"), 16) - number + 1
                proxy.upstream_request("anvil_reorg", depth, [])
                return [
                    tx_hash
                    for tx_hash in ours
                    if proxy.upstream_request("eth_getTransactionReceipt", tx_hash) is None
                ]
        checked = head
        time.sleep(0.05)
    raise AssertionError("no block with a protocol transaction to reorganise")

"""The transaction machinery against a real Anvil, with two hand-assembled contracts.

Nothing here needs the Flare contract: these are the node-level guarantees (nonces under
concurrency, dropped transactions, mined reverts, chain-id and fee refusals) that every
Flare call relies on. Each test runs on the session's Anvil and is rolled back with
``evm_snapshot``/``evm_revert``; they skip only if no Anvil binary exists.
"""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from conformance.anvil_harness import shared_anvil
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from flare.chain.rpc.accounts import dev_account
from flare.chain.rpc.fees import FeeCapExceededError, FeePolicy
from flare.chain.rpc.transactions import (
    CallReverted,
    MinedTransaction,
    TransactionSender,
    TransactionSettings,
)
from flare.chain.rpc.transport import HttpProvider, RpcClient, WrongChainError

pytestmark = pytest.mark.anvil

# Runtime: log the calldata (LOG0); if its first byte is 0xff, revert with the rest.
ECHO = bytes.fromhex("365f5f375f5160f81c60ff14601357365fa0005b600136036001fd")
# Runtime: the first call sets slot 0; every later call reverts with "taken".
ONE_SHOT = bytes.fromhex("5f54600a5760015f55005b6474616b656e5f526005601bfd")
FAST = TransactionSettings(poll_interval=0.01, resend_after=0.3, receipt_timeout=30)


def creation_code(runtime: bytes) -> bytes:
    """Init code that returns ``runtime`` (10 bytes: CODECOPY it, RETURN it)."""
    length = len(runtime)
    return bytes([0x60, length, 0x60, 0x0A, 0x5F, 0x39, 0x60, length, 0x5F, 0xF3]) + runtime


@dataclass
class Node:
    rpc: RpcClient
    sender: TransactionSender

    def deploy(self, runtime: bytes) -> str:
        mined = self.sender.send(dev_account(), None, creation_code(runtime))
        assert mined.contract_address is not None
        return to_checksum_address(mined.contract_address)

    def funded(self, label: str) -> LocalAccount:
        account = Account.from_key(keccak(label.encode()))
        self.rpc.request("anvil_setBalance", account.address, hex(10**20))
        return account

    def pool_hashes(self) -> list[str]:
        pool = self.rpc.request("txpool_content")["pending"]
        return [tx["hash"] for by_nonce in pool.values() for tx in by_nonce.values()]

    def wait_for_pool(self, count: int = 1) -> list[str]:
        for _ in range(500):
            hashes = self.pool_hashes()
            if len(hashes) >= count:
                return hashes
            time.sleep(0.01)
        raise AssertionError("the transaction never reached the pool")


@pytest.fixture
def node() -> Iterator[Node]:
    rpc = RpcClient(HttpProvider(shared_anvil().rpc_url, 10))
    baseline = rpc.request("evm_snapshot")
    try:
        yield Node(rpc, TransactionSender(rpc, 31337, FeePolicy(), FAST))
    finally:
        rpc.request("evm_setAutomine", True)
        rpc.request("evm_revert", baseline)


def in_thread(action: object) -> tuple[threading.Thread, dict[str, object]]:
    """Run ``action`` in a thread; its result or exception lands in the returned dict."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = action()  # type: ignore[operator]
        except Exception as exc:  # handed to the test thread, which asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_threads_sending_from_one_account_each_get_their_own_nonce(node: Node) -> None:
    echo = node.deploy(ECHO)
    accounts = [dev_account(), node.funded("second"), node.funded("third")]
    mined: list[MinedTransaction] = []
    lock = threading.Lock()

    def send_many(account: LocalAccount, thread: int) -> None:
        for number in range(6):
            done = node.sender.send(account, echo, b"%d/%d" % (thread, number))
            with lock:
                mined.append(done)

    threads = [
        threading.Thread(target=send_many, args=(account, number))
        for number, account in enumerate(accounts * 2)
    ]
    start_nonces = [
        node.rpc.request("eth_getTransactionCount", a.address, "latest") for a in accounts
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(mined) == 36
    assert len({m.transaction_hash for m in mined}) == 36
    for account, start in zip(accounts, start_nonces, strict=True):
        now = int(node.rpc.request("eth_getTransactionCount", account.address, "latest"), 16)
        assert now - int(start, 16) == 12


def test_two_processes_on_one_account_recover_from_nonce_collisions(node: Node) -> None:
    echo = node.deploy(ECHO)
    shared = node.funded("shared by two processes")
    senders = [TransactionSender(node.rpc, 31337, FeePolicy(), FAST) for _ in range(2)]
    runs = [
        in_thread(lambda s=s, i=i: [s.send(shared, echo, b"%d/%d" % (i, n)) for n in range(8)])
        for i, s in enumerate(senders)
    ]
    for thread, _ in runs:
        thread.join()
    assert [outcome.get("error") for _, outcome in runs] == [None, None]
    logs = node.rpc.request("eth_getLogs", {"address": echo, "fromBlock": "0x0"})
    assert len(logs) == 16


def test_a_dropped_transaction_is_resent_and_mined_once(node: Node) -> None:
    echo = node.deploy(ECHO)
    node.rpc.request("evm_setAutomine", False)
    thread, outcome = in_thread(lambda: node.sender.send(dev_account(), echo, b"dropped once"))
    (dropped,) = node.wait_for_pool()
    node.rpc.request("anvil_dropTransaction", dropped)
    assert node.pool_hashes() == []
    node.rpc.request("evm_setAutomine", True)
    thread.join()
    mined = outcome["result"]
    assert isinstance(mined, MinedTransaction)
    assert "0x" + mined.transaction_hash.hex() != dropped
    logs = node.rpc.request("eth_getLogs", {"address": echo, "fromBlock": "0x0"})
    assert [log["data"] for log in logs] == ["0x" + b"dropped once".hex()]


def test_a_revert_after_broadcast_is_replayed_for_its_data(node: Node) -> None:
    one_shot = node.deploy(ONE_SHOT)
    late = node.funded("late")
    patient = TransactionSender(node.rpc, 31337, FeePolicy(), replace(FAST, resend_after=1.5))
    node.rpc.request("evm_setAutomine", False)
    thread, outcome = in_thread(lambda: patient.send(late, one_shot, b""))
    (dropped,) = node.wait_for_pool()
    node.rpc.request("anvil_dropTransaction", dropped)
    node.rpc.request("evm_setAutomine", True)
    node.sender.send(dev_account(), one_shot, b"")  # takes the shot while ours is away
    thread.join()  # the resend was never simulated again: it is mined, and reverts
    reverted = outcome["error"]
    assert isinstance(reverted, CallReverted)
    assert reverted.data == b"taken"
    assert reverted.transaction_hash is not None
    receipt = node.rpc.request("eth_getTransactionReceipt", "0x" + reverted.transaction_hash.hex())
    assert receipt["status"] == "0x0"


def test_a_call_that_would_revert_mines_nothing(node: Node) -> None:
    echo = node.deploy(ECHO)
    head = node.rpc.block_number()
    with pytest.raises(CallReverted) as raised:
        node.sender.send(dev_account(), echo, b"\xffno")
    assert raised.value.data == b"no"
    assert node.rpc.block_number() == head


def test_a_node_of_another_chain_is_refused(node: Node) -> None:
    wrong = TransactionSender(node.rpc, 1, FeePolicy(), FAST)
    before = node.rpc.request("eth_getTransactionCount", dev_account().address, "pending")
    with pytest.raises(WrongChainError, match="chain id 31337, not the configured 1"):
        wrong.send(dev_account(), None, creation_code(ECHO))
    assert node.rpc.request("eth_getTransactionCount", dev_account().address, "pending") == before


def test_fees_above_the_cap_are_refused(node: Node) -> None:
    stingy = TransactionSender(
        node.rpc, 31337, FeePolicy(max_fee_cap=1_000, priority_fee_cap=1), FAST
    )
    with pytest.raises(FeeCapExceededError):
        stingy.send(dev_account(), None, creation_code(ECHO))

"""Sending transactions and the connector on top, against a scripted fake node: no Anvil.

The fake answers the handful of JSON-RPC methods a transaction needs and records every
request, so each test can say exactly what was (and was not) sent: a revert or a
wrong chain id must never reach ``eth_sendRawTransaction``.
"""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes

from flare.chain.api import errors as e
from flare.chain.api.calls import CreateTask, StartTask, checked_calldata
from flare.chain.api.events import ParticipantRegistered, TaskCreated, encode_log
from flare.chain.api.types import ContentRef, TaskParams
from flare.chain.rpc.chain import RpcChain, RpcSettings
from flare.chain.rpc.fees import GWEI, FeeCapExceededError, FeePolicy
from flare.chain.rpc.transactions import (
    CallReverted,
    TransactionFailedError,
    TransactionSender,
    TransactionSettings,
    TransactionTimeoutError,
)
from flare.chain.rpc.transport import (
    ChainUnavailableError,
    RetryPolicy,
    RpcClient,
    WrongChainError,
)
from flare.errors import ConfigError

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SENDER = Account.from_key(keccak(b"unit-test-sender"))
NO_RETRY = RetryPolicy(attempts=1)


def rpc_error(code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": 1, "error": error}


class FakeNode:
    """A JSON-RPC provider with one handler per method; every request is recorded.

    A handler returns a result, or a full response dict with ``error``, or raises. The
    defaults mine every broadcast transaction at once with status 1.
    """

    def __init__(self, chain_id: int = 31337) -> None:
        self.requests: list[tuple[str, list[Any]]] = []
        self.sent: list[str] = []
        self.head = 7
        self.handlers: dict[str, Callable[[list[Any]], Any]] = {
            "eth_chainId": lambda _: hex(chain_id),
            "eth_blockNumber": lambda _: hex(self.head),
            "eth_getCode": lambda _: "0x6001",
            "eth_call": lambda _: "0x",
            "eth_estimateGas": lambda _: hex(50_000),
            "eth_getBlockByNumber": lambda _: {"baseFeePerGas": hex(GWEI)},
            "eth_maxPriorityFeePerGas": lambda _: hex(GWEI),
            "eth_getTransactionCount": lambda _: hex(len(self.sent)),
            "eth_sendRawTransaction": self._accept,
            "eth_getTransactionReceipt": lambda params: self.receipt(params[0]),
            "eth_getTransactionByHash": lambda _: None,
            "eth_getLogs": lambda _: [],
        }

    def _accept(self, params: list[Any]) -> str:
        self.sent.append(params[0])
        return "0x" + keccak(bytes.fromhex(params[0][2:])).hex()

    def receipt(self, tx_hash: str, status: int = 1, logs: list[Any] | None = None) -> Any:
        mined = {"0x" + keccak(bytes.fromhex(raw[2:])).hex() for raw in self.sent}
        if tx_hash not in mined:
            return None
        return {
            "transactionHash": tx_hash,
            "blockNumber": hex(self.head),
            "blockHash": "0x" + "ab" * 32,
            "status": hex(status),
            "gasUsed": hex(40_000),
            "logs": logs or [],
            "contractAddress": None,
        }

    def make_request(self, method: str, params: Any) -> Any:
        self.requests.append((method, list(params)))
        outcome = self.handlers[method](list(params))
        if isinstance(outcome, dict) and "error" in outcome:
            return outcome
        return {"jsonrpc": "2.0", "id": 1, "result": outcome}

    def methods(self) -> list[str]:
        return [method for method, _ in self.requests]


def sender_for(node: FakeNode, chain_id: int = 31337, **settings: Any) -> TransactionSender:
    values = {"poll_interval": 0.001, "resend_after": 10.0, "receipt_timeout": 10.0}
    values.update(settings)
    return TransactionSender(
        RpcClient(node, NO_RETRY), chain_id, FeePolicy(), TransactionSettings(**values)
    )


def chain_for(node: FakeNode) -> RpcChain:
    fast = RpcSettings(
        transactions=TransactionSettings(poll_interval=0.001), retry=NO_RETRY, log_chunk_blocks=4
    )
    return RpcChain(node, CONTRACT, chain_id=31337, account=SENDER, settings=fast)


# -- sending ---------------------------------------------------------------------------


def test_a_node_of_another_chain_gets_nothing() -> None:
    node = FakeNode(chain_id=1)
    with pytest.raises(WrongChainError) as raised:
        sender_for(node).send(SENDER, CONTRACT, b"\x01")
    assert (raised.value.expected, raised.value.actual) == (31337, 1)
    assert node.methods() == ["eth_chainId"]


def test_the_chain_id_is_checked_again_after_the_connection_dropped() -> None:
    node = FakeNode()
    sender = TransactionSender(
        RpcClient(node, RetryPolicy(attempts=2), sleep=lambda _: None),
        31337,
        FeePolicy(),
        TransactionSettings(poll_interval=0.001),
    )
    sender.send(SENDER, CONTRACT, b"\x01")
    node.handlers["eth_chainId"] = lambda _: hex(5)  # the URL now reaches another node
    sender.send(SENDER, CONTRACT, b"\x02")  # no interruption seen: no new check
    state = {"failed": False}

    def drop_once(_: list[Any]) -> str:
        if not state["failed"]:
            state["failed"] = True
            raise httpx.ConnectError("reset")
        return hex(node.head)

    node.handlers["eth_blockNumber"] = drop_once
    sender.rpc.block_number()
    with pytest.raises(WrongChainError):
        sender.send(SENDER, CONTRACT, b"\x03")
    assert len(node.sent) == 2


def test_a_call_that_would_revert_is_never_broadcast() -> None:
    node = FakeNode()
    node.handlers["eth_call"] = lambda _: rpc_error(3, "execution reverted", "0xabcd")
    with pytest.raises(CallReverted) as raised:
        sender_for(node).send(SENDER, CONTRACT, b"\x01")
    assert raised.value.data == bytes.fromhex("abcd")
    assert raised.value.transaction_hash is None
    assert "eth_sendRawTransaction" not in node.methods()


def test_a_fee_above_the_cap_is_refused_before_signing() -> None:
    node = FakeNode()
    node.handlers["eth_getBlockByNumber"] = lambda _: {"baseFeePerGas": hex(10**6 * GWEI)}
    with pytest.raises(FeeCapExceededError):
        sender_for(node).send(SENDER, CONTRACT, b"\x01")
    assert "eth_sendRawTransaction" not in node.methods()


def test_gas_limit_leaves_the_configured_margin() -> None:
    node = FakeNode()
    sender_for(node, gas_margin_percent=20, gas_extra=1_000).send(SENDER, CONTRACT, b"\x01")
    signed = Account.recover_transaction(node.sent[0])
    assert signed == SENDER.address
    decoded = _decode_raw(node.sent[0])
    assert decoded["gas"] == 50_000 + 10_000 + 1_000
    assert decoded["maxFeePerGas"] == 3 * GWEI


def _decode_raw(raw: str) -> dict[str, Any]:
    return TypedTransaction.from_bytes(HexBytes(raw)).as_dict()


def test_nonce_too_low_takes_the_next_nonce() -> None:
    node = FakeNode()
    refused: list[str] = []

    def send(params: list[Any]) -> Any:
        if not refused:  # another process's transaction took nonce 2 a moment ago
            refused.append(params[0])
            return rpc_error(-32003, "nonce too low")
        node.sent.append(params[0])
        return "0x" + keccak(bytes.fromhex(params[0][2:])).hex()

    counts = iter([hex(2), hex(3)])
    node.handlers["eth_getTransactionCount"] = lambda _: next(counts)
    node.handlers["eth_sendRawTransaction"] = send
    sender_for(node).send(SENDER, CONTRACT, b"\x01")
    assert _decode_raw(refused[0])["nonce"] == 2
    assert _decode_raw(node.sent[0])["nonce"] == 3


def test_a_dropped_transaction_is_resent_with_the_same_nonce_and_higher_fees() -> None:
    node = FakeNode()
    broadcasts: list[str] = []

    def lossy(params: list[Any]) -> str:
        broadcasts.append(params[0])
        if len(broadcasts) == 2:  # the first copy vanished; the second is mined
            node.sent.append(params[0])
        return "0x" + keccak(bytes.fromhex(params[0][2:])).hex()

    node.handlers["eth_sendRawTransaction"] = lossy
    node.handlers["eth_getTransactionCount"] = lambda _: hex(0)
    mined = sender_for(node, resend_after=0.01).send(SENDER, CONTRACT, b"\x01")
    first, second = (_decode_raw(raw) for raw in broadcasts)
    assert first["nonce"] == second["nonce"] == 0
    assert second["maxFeePerGas"] > first["maxFeePerGas"] * 1.1
    assert mined.transaction_hash == keccak(bytes.fromhex(broadcasts[1][2:]))


def test_a_transaction_never_mined_times_out_naming_its_hashes() -> None:
    node = FakeNode()
    node.handlers["eth_getTransactionReceipt"] = lambda _: None
    with pytest.raises(TransactionTimeoutError) as raised:
        sender_for(node, receipt_timeout=0.05, resend_after=10).send(SENDER, CONTRACT, b"\x01")
    assert len(raised.value.hashes) == 1


def test_a_node_lost_while_waiting_names_the_sent_transaction() -> None:
    node = FakeNode()

    def gone(_: list[Any]) -> Any:
        raise httpx.ConnectError("refused")

    node.handlers["eth_getTransactionReceipt"] = gone
    with pytest.raises(ChainUnavailableError, match="outcome is unknown") as raised:
        sender_for(node).send(SENDER, CONTRACT, b"\x01")
    assert raised.value.transaction_hash == keccak(bytes.fromhex(node.sent[0][2:]))


def test_a_node_lost_during_broadcast_names_the_transaction_that_may_have_arrived() -> None:
    node = FakeNode()
    broadcasts: list[str] = []

    def lost(params: list[Any]) -> Any:
        broadcasts.append(params[0])
        raise httpx.ConnectError("reset by peer")

    node.handlers["eth_sendRawTransaction"] = lost
    with pytest.raises(ChainUnavailableError, match="may have reached the node") as raised:
        sender_for(node).send(SENDER, CONTRACT, b"\x01")
    assert raised.value.transaction_hash == keccak(bytes.fromhex(broadcasts[0][2:]))


def test_confirmations_wait_for_blocks_on_top() -> None:
    node = FakeNode()
    heads = iter([7, 7, 8])

    def advancing(_: list[Any]) -> str:
        node.head = next(heads, 8)
        return hex(node.head)

    node.handlers["eth_blockNumber"] = advancing
    node.handlers["eth_getTransactionReceipt"] = lambda params: {
        **node.receipt(params[0]),
        "blockNumber": hex(7),
    }
    sender_for(node, confirmations=2).send(SENDER, CONTRACT, b"\x01")
    assert node.methods().count("eth_blockNumber") == 3


def test_a_mined_revert_is_replayed_at_its_block_for_the_revert_data() -> None:
    node = FakeNode()
    node.handlers["eth_getTransactionReceipt"] = lambda params: node.receipt(params[0], status=0)
    replays: list[Any] = []

    def call(params: list[Any]) -> Any:
        if params[1] == "pending":
            return "0x"
        replays.append(params[1])
        return rpc_error(3, "execution reverted", "0x" + e.TaskAlreadyStarted(4).encode().hex())

    node.handlers["eth_call"] = call
    with pytest.raises(CallReverted) as raised:
        sender_for(node).send(SENDER, CONTRACT, b"\x01")
    assert replays == [hex(node.head)]
    assert raised.value.transaction_hash == keccak(bytes.fromhex(node.sent[0][2:]))
    assert e.decode_revert(raised.value.data) == e.TaskAlreadyStarted(4)


def test_a_mined_failure_that_does_not_replay_says_so() -> None:
    node = FakeNode()
    node.handlers["eth_getTransactionReceipt"] = lambda params: node.receipt(params[0], status=0)
    with pytest.raises(TransactionFailedError, match="does not revert on replay"):
        sender_for(node).send(SENDER, CONTRACT, b"\x01")


# -- the connector on top --------------------------------------------------------------


def test_reverts_become_the_in_memory_chains_typed_errors() -> None:
    node = FakeNode()
    error = e.TooFewParticipants(3, 1, 2)
    node.handlers["eth_call"] = lambda _: rpc_error(3, "reverted", "0x" + error.encode().hex())
    chain = chain_for(node)
    with pytest.raises(e.TooFewParticipants) as raised:
        chain.start_task(3)
    assert raised.value == error
    with pytest.raises(e.TooFewParticipants):
        chain.task(3)
    assert "eth_sendRawTransaction" not in node.methods()


def test_an_unknown_revert_is_unrecognized_not_guessed() -> None:
    node = FakeNode()
    node.handlers["eth_call"] = lambda _: rpc_error(3, "reverted", "0x08c379a0")
    with pytest.raises(e.UnrecognizedRevert):
        chain_for(node).start_task(1)


def test_receipts_carry_decoded_events_of_this_contract_only() -> None:
    node = FakeNode()
    params = TaskParams(1, 1, 1, 5000, 1, 1, 1, 20)
    model = ContentRef(0x55, keccak(b"m"))
    created = TaskCreated(7, 0, 1, SENDER.address, model, model, params)
    topics, data = encode_log(created)
    log = {
        "address": CONTRACT.lower(),
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x" + data.hex(),
        "blockNumber": hex(7),
        "logIndex": "0x0",
    }
    foreign = {**log, "address": "0x" + "11" * 20}
    node.handlers["eth_getTransactionReceipt"] = lambda p: node.receipt(p[0], logs=[foreign, log])
    receipt = chain_for(node).create_task(model, model, params)
    assert receipt.events == (created,)
    assert (receipt.block_number, receipt.gas_used) == (7, 40_000)
    assert receipt.transaction_hash == keccak(bytes.fromhex(node.sent[0][2:]))
    assert node.sent and _decode_raw(node.sent[0])["data"] == checked_calldata(
        _create_task(model, params)
    )


def _create_task(model: ContentRef, params: TaskParams) -> CreateTask:
    return CreateTask(model, model, params)


def test_log_queries_are_chunked_and_halved_when_refused() -> None:
    node = FakeNode()
    node.head = 9
    ranges: list[tuple[int, int]] = []

    def get_logs(params: list[Any]) -> Any:
        first, last = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        if last - first >= 2:
            return rpc_error(-32005, "query exceeds max block range 2")
        ranges.append((first, last))
        return []

    node.handlers["eth_getLogs"] = get_logs
    chain = chain_for(node)
    assert chain.events([ParticipantRegistered], task_id=1) == []
    assert ranges == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    query = next(p[0] for m, p in node.requests if m == "eth_getLogs")
    assert query["topics"] == [
        ["0x" + ParticipantRegistered.topic().hex()],
        "0x" + (1).to_bytes(32, "big").hex(),
    ]


def test_a_refused_range_stays_halved_for_later_queries() -> None:
    node = FakeNode()
    node.head = 9
    refused: list[tuple[int, int]] = []

    def get_logs(params: list[Any]) -> Any:
        first, last = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        if last - first >= 2:
            refused.append((first, last))
            return rpc_error(-32614, "eth_getLogs is limited to a 2 block range")
        return []

    node.handlers["eth_getLogs"] = get_logs
    chain = chain_for(node)
    chain.events([ParticipantRegistered], task_id=1)
    assert refused == [(0, 3)]
    chain.as_sender(SENDER).events([ParticipantRegistered], task_id=1)
    assert refused == [(0, 3)], "every sender view of the connector shares what was learnt"


def test_a_window_that_ends_in_the_future_is_read_up_to_the_head() -> None:
    node = FakeNode()
    node.head = 9
    chain = chain_for(node)
    assert chain.events([ParticipantRegistered], from_block=6, to_block=30) == []
    queried = [params[0] for method, params in node.requests if method == "eth_getLogs"]
    assert [(int(q["fromBlock"], 16), int(q["toBlock"], 16)) for q in queried] == [(6, 9)]


def test_a_connector_refuses_an_address_without_code() -> None:
    node = FakeNode()
    node.handlers["eth_getCode"] = lambda _: "0x"
    with pytest.raises(e.ChainError, match="no contract"):
        chain_for(node)


def test_a_connector_signs_only_with_local_accounts() -> None:
    class AddressOnly:
        address = SENDER.address

    chain = chain_for(FakeNode())
    with pytest.raises(ConfigError, match="LocalAccount"):
        chain.as_sender(AddressOnly())
    reader = RpcChain(FakeNode(), CONTRACT, chain_id=31337)
    with pytest.raises(ConfigError, match="no sender"):
        reader.transact(StartTask(1))


def test_log_scans_start_at_the_deployment_block() -> None:
    node = FakeNode()
    node.head = 20
    fast = RpcSettings(retry=NO_RETRY, log_chunk_blocks=4)
    chain = RpcChain(node, CONTRACT, chain_id=31337, settings=fast, first_block=13)
    assert chain.events() == []
    queried = [params[0] for method, params in node.requests if method == "eth_getLogs"]
    assert [(int(q["fromBlock"], 16), int(q["toBlock"], 16)) for q in queried] == [
        (13, 16),
        (17, 20),
    ]

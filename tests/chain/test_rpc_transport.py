"""The JSON-RPC transport and the fee policy against a scripted provider: no node.

What is retried and what is not decides whether a flaky node is ridden out, and whether a
revert is (wrongly) repeated; the fee policy decides what an unattended key may spend.
"""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flare.chain.rpc.fees import GWEI, FeeCapExceededError, FeePolicy, Fees
from flare.chain.rpc.transport import (
    RATE_LIMITED,
    ChainUnavailableError,
    RetryPolicy,
    RpcClient,
    RpcError,
    is_transient,
)
from flare.errors import ConfigError

NO_RETRY = RetryPolicy(attempts=1)


class Scripted:
    """A provider that answers each method with a handler; requests are recorded.

    A handler returns a result, a response dict holding an ``error``, or raises.
    """

    def __init__(self, **handlers: Callable[[], Any]) -> None:
        self.handlers = handlers
        self.methods: list[str] = []

    def make_request(self, method: str, params: Any) -> Any:
        self.methods.append(method)
        outcome = self.handlers[method]()
        if isinstance(outcome, dict) and "error" in outcome:
            return outcome
        return {"jsonrpc": "2.0", "id": 1, "result": outcome}


def rpc_error(code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": 1, "error": error}


def fee_node(base_fee: int, priority: int = GWEI) -> RpcClient:
    return RpcClient(
        Scripted(
            eth_getBlockByNumber=lambda: {"baseFeePerGas": hex(base_fee)},
            eth_maxPriorityFeePerGas=lambda: hex(priority),
        ),
        NO_RETRY,
    )


# -- retry classification ------------------------------------------------------------


def _http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://node.invalid")
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


@pytest.mark.parametrize(
    ("failure", "transient"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("server disconnected without a response"), True),
        (ConnectionRefusedError(), True),
        (httpx.UnsupportedProtocol("ftp is not http"), False),
        (_http_error(502), True),
        (_http_error(503), True),
        (_http_error(429), True),
        (_http_error(400), False),
        (_http_error(401), False),
        (RpcError("eth_call", RATE_LIMITED, "limit exceeded"), True),
        (RpcError("eth_call", 3, "execution reverted", "0x"), False),
        (RpcError("eth_sendRawTransaction", -32000, "nonce too low"), False),
    ],
)
def test_retry_classification(failure: BaseException, transient: bool) -> None:
    assert is_transient(failure) is transient


def test_retry_policy_backs_off_exponentially_up_to_a_ceiling() -> None:
    policy = RetryPolicy(attempts=6, initial_delay=0.5, max_delay=3.0, multiplier=2.0)
    assert policy.delays() == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert RetryPolicy(attempts=1).delays() == []


def test_transient_failures_are_retried_then_succeed() -> None:
    failures: list[Any] = [
        httpx.ConnectError("refused"),
        rpc_error(RATE_LIMITED, "request rate exceeded"),
    ]

    def flaky() -> Any:
        failure = failures.pop(0) if failures else None
        if isinstance(failure, BaseException):
            raise failure
        return failure or "0x2a"

    waits: list[float] = []
    client = RpcClient(
        Scripted(eth_blockNumber=flaky),
        RetryPolicy(attempts=3, initial_delay=0.1),
        sleep=waits.append,
    )
    assert client.block_number() == 42
    assert waits == [0.1, 0.2]
    assert client.interruptions == 2


def test_retries_end_in_chain_unavailable() -> None:
    def down() -> Any:
        raise httpx.ConnectError("connection refused")

    node = Scripted(eth_blockNumber=down)
    client = RpcClient(node, RetryPolicy(attempts=3), sleep=lambda _: None)
    with pytest.raises(ChainUnavailableError, match="failed 3 times"):
        client.block_number()
    assert node.methods == ["eth_blockNumber"] * 3


def test_reverts_and_refusals_are_never_retried() -> None:
    node = Scripted(eth_call=lambda: rpc_error(3, "execution reverted", "0x1234"))
    client = RpcClient(node, RetryPolicy(attempts=5), sleep=lambda _: None)
    with pytest.raises(RpcError) as raised:
        client.request("eth_call", {}, "latest")
    assert raised.value.revert_data == bytes.fromhex("1234")
    assert node.methods == ["eth_call"]


def test_an_oversized_log_query_is_not_mistaken_for_rate_limiting() -> None:
    refused = RpcError("eth_getLogs", RATE_LIMITED, "query returned more than 10000 results")
    assert not is_transient(refused)


def test_a_client_error_status_is_unavailable_at_once() -> None:
    def forbidden() -> Any:
        raise _http_error(403)

    node = Scripted(eth_chainId=forbidden)
    with pytest.raises(ChainUnavailableError, match="eth_chainId"):
        RpcClient(node, RetryPolicy(attempts=4), sleep=lambda _: None).chain_id()
    assert node.methods == ["eth_chainId"]


def test_an_unreadable_reply_is_unavailable() -> None:
    def html_error_page() -> Any:
        raise ValueError("Expecting value: line 1 column 1")

    with pytest.raises(ChainUnavailableError, match="unreadable reply"):
        RpcClient(Scripted(eth_chainId=html_error_page), NO_RETRY).chain_id()


@pytest.mark.parametrize(
    ("code", "message", "data", "expected"),
    [
        (3, "execution reverted", "0xdeadbeef", bytes.fromhex("deadbeef")),
        (-32000, "execution reverted", {"data": "0xdeadbeef"}, bytes.fromhex("deadbeef")),
        (-32000, "execution reverted", None, b""),
        (-32000, "nonce too low", None, None),
        (-32603, "EVM error InvalidJump", None, None),
    ],
)
def test_revert_data_is_found_however_the_node_nests_it(
    code: int, message: str, data: Any, expected: bytes | None
) -> None:
    assert RpcError("eth_call", code, message, data).revert_data == expected


# -- fees ----------------------------------------------------------------------------


def test_fees_follow_the_base_fee_within_the_caps() -> None:
    assert FeePolicy().quote(fee_node(10 * GWEI, 2 * GWEI)) == Fees(22 * GWEI, 2 * GWEI)
    capped = FeePolicy(max_fee_cap=15 * GWEI, priority_fee_cap=GWEI)
    assert capped.quote(fee_node(10 * GWEI, 2 * GWEI)) == Fees(15 * GWEI, GWEI)


def test_a_base_fee_above_the_cap_is_refused() -> None:
    with pytest.raises(FeeCapExceededError) as raised:
        FeePolicy(max_fee_cap=50 * GWEI).quote(fee_node(80 * GWEI))
    assert (raised.value.needed, raised.value.cap) == (81 * GWEI, 50 * GWEI)


def test_a_node_without_a_priority_fee_suggestion_gets_the_cap() -> None:
    client = RpcClient(
        Scripted(
            eth_getBlockByNumber=lambda: {"baseFeePerGas": hex(GWEI)},
            eth_maxPriorityFeePerGas=lambda: rpc_error(-32601, "method not found"),
        ),
        NO_RETRY,
    )
    assert FeePolicy(priority_fee_cap=2 * GWEI).quote(client) == Fees(4 * GWEI, 2 * GWEI)


def test_a_pre_london_node_is_refused() -> None:
    client = RpcClient(Scripted(eth_getBlockByNumber=lambda: {"number": "0x1"}), NO_RETRY)
    with pytest.raises(ConfigError, match="EIP-1559"):
        FeePolicy().quote(client)


def test_fee_bumps_are_large_enough_to_replace_and_stop_at_the_cap() -> None:
    policy = FeePolicy(max_fee_cap=100, priority_fee_cap=100, bump_percent=13)
    assert policy.bumped(Fees(80, 10)) == Fees(91, 12)
    assert policy.bumped(Fees(90, 10)) is None
    assert policy.bumped(Fees(1, 1)) == Fees(2, 2)


@pytest.mark.parametrize(
    "settings",
    [
        {"max_fee_cap": 0},
        {"max_fee_cap": GWEI, "priority_fee_cap": 2 * GWEI},
        {"bump_percent": 5},
        {"base_fee_headroom": 0},
    ],
)
def test_nonsensical_fee_policies_are_refused(settings: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        FeePolicy(**settings)

"""``HttpProvider`` on a real socket: the request Flare puts on the wire and how replies end.

A local HTTP server plays the node, so these tests see the bytes httpx sends and the
statuses and bodies a proxy or a failing node really returns.
"""

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flare.chain.rpc.transport import (
    ChainUnavailableError,
    HttpProvider,
    RetryPolicy,
    RpcClient,
    RpcError,
)

Reply = tuple[int, str, bytes]
"""HTTP status, content type and body of one answer."""


class ScriptedNode:
    """Answers each POST with the next scripted reply and records the decoded request."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.received: list[dict[str, Any]] = []

    def json_result(self, result: Any) -> None:
        body = {"jsonrpc": "2.0", "id": 1, "result": result}
        self.replies.append((200, "application/json", json.dumps(body).encode()))

    def handler(self) -> type[BaseHTTPRequestHandler]:
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                node.received.append(json.loads(self.rfile.read(length)))
                status, content_type, body = node.replies.pop(0)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def node() -> Iterator[tuple[ScriptedNode, str]]:
    scripted = ScriptedNode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), scripted.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield scripted, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, attempts: int = 1) -> RpcClient:
    return RpcClient(HttpProvider(url, 5), RetryPolicy(attempts=attempts, initial_delay=0.01))


def test_a_request_is_json_rpc_2_with_a_fresh_id(node: tuple[ScriptedNode, str]) -> None:
    scripted, url = node
    scripted.json_result("0x7a69")
    scripted.json_result("0x2a")
    client = _client(url)
    assert client.chain_id() == 31337
    assert client.request("eth_getCode", "0x" + "11" * 20, "latest") == "0x2a"
    first, second = scripted.received
    assert first == {"jsonrpc": "2.0", "method": "eth_chainId", "params": [], "id": 1}
    assert second["params"] == ["0x" + "11" * 20, "latest"]
    assert second["id"] == 2
    assert client.name == url


def test_a_node_error_object_is_an_rpc_error(node: tuple[ScriptedNode, str]) -> None:
    scripted, url = node
    error = {"code": 3, "message": "execution reverted", "data": "0xdeadbeef"}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": error}).encode()
    scripted.replies.append((200, "application/json", body))
    with pytest.raises(RpcError) as raised:
        _client(url, attempts=3).request("eth_call", {}, "latest")
    assert raised.value.revert_data == bytes.fromhex("deadbeef")
    assert len(scripted.received) == 1


def test_a_503_is_retried(node: tuple[ScriptedNode, str]) -> None:
    scripted, url = node
    scripted.replies.append((503, "text/plain", b"busy"))
    scripted.json_result("0x5")
    client = _client(url, attempts=2)
    assert client.block_number() == 5
    assert client.interruptions == 1


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ((403, "text/plain", b"forbidden"), "eth_chainId failed"),
        ((200, "text/html", b"<html>bad gateway</html>"), "unreadable reply"),
    ],
)
def test_a_refusal_or_an_unreadable_body_is_unavailable_at_once(
    node: tuple[ScriptedNode, str], reply: Reply, message: str
) -> None:
    scripted, url = node
    scripted.replies.append(reply)
    with pytest.raises(ChainUnavailableError, match=message):
        _client(url, attempts=4).chain_id()
    assert len(scripted.received) == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("url_for", "message"),
    [
        (lambda port: f"http://127.0.0.1:{port}", "failed 2 times, last with ConnectError"),
        (lambda port: f"ftp://127.0.0.1:{port}", "eth_chainId failed"),
    ],
)
def test_an_unreachable_endpoint_is_unavailable(
    url_for: Callable[[int], str], message: str
) -> None:
    with pytest.raises(ChainUnavailableError, match=message):
        _client(url_for(_closed_port()), attempts=2).chain_id()

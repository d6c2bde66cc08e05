"""A loopback JSON-RPC proxy that makes Anvil answer log queries as a public provider does.

Anvil serves ``eth_getLogs`` over any range; public providers refuse ranges above a few
thousand blocks (Alchemy, QuickNode and Infura each with their own limit and wording), and
a client that cannot split its queries stops working the day the chain grows past the
limit. The proxy forwards every request to Anvil unchanged except a log query spanning
more than ``max_log_blocks`` blocks, which it refuses with a provider's error text.

It also hands a test the hash of each transaction the node accepted (``on_transaction``),
before the sender hears back, so the test can drop it from the node's pool at once.
"""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

OVERSIZED_RANGE_CODE = -32614
OVERSIZED_RANGE_MESSAGE = "eth_getLogs is limited to a {limit} block range"
"""QuickNode's wording; Flare's client recognises it by "range" and halves its query."""


class PublicChainProxy:
    """Serves ``http://127.0.0.1:<port>`` in a thread, forwarding to ``upstream``."""

    def __init__(
        self,
        upstream: str,
        max_log_blocks: int,
        on_transaction: Callable[[str], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.max_log_blocks = max_log_blocks
        self.on_transaction = on_transaction
        self.refused_log_queries = 0
        self._client = httpx.Client(timeout=30)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "PublicChainProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def upstream_request(self, method: str, *params: Any) -> Any:
        """One request straight to Anvil (bypassing the proxy's rules); its result."""
        reply = self._forward({"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        if "error" in reply:
            raise AssertionError(f"{method} failed on Anvil: {reply['error']}")
        return reply["result"]

    def _forward(self, request: dict[str, Any]) -> dict[str, Any]:
        response = self._client.post(self.upstream, json=request)
        response.raise_for_status()
        return response.json()

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply a public provider in front of Anvil would give to ``request``."""
        if request.get("method") == "eth_getLogs" and self._oversized(request["params"][0]):
            with self._lock:
                self.refused_log_queries += 1
            message = OVERSIZED_RANGE_MESSAGE.format(limit=self.max_log_blocks)
            error = {"code": OVERSIZED_RANGE_CODE, "message": message}
            return {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
        reply = self._forward(request)
        accepted = request.get("method") == "eth_sendRawTransaction" and "result" in reply
        if accepted and self.on_transaction is not None:
            self.on_transaction(reply["result"])
        return reply

    def _oversized(self, query: dict[str, Any]) -> bool:
        if "blockHash" in query:
            return False
        first = self._block(query.get("fromBlock", "latest"))
        last = self._block(query.get("toBlock", "latest"))
        return last - first + 1 > self.max_log_blocks

    def _block(self, tag: str) -> int:
        if tag == "earliest":
            return 0
        if tag in ("latest", "pending", "safe", "finalized"):
            return int(self.upstream_request("eth_blockNumber"), 16)
        return int(tag, 16)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length))
                body = json.dumps(proxy.answer(request)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per request would bury the test's own output

        return Handler

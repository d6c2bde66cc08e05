"""Stand-ins, on loopback, for the remote services a light device uses.

- :class:`AuthenticatingGateway`: a reverse proxy in front of a real Kubo RPC API that
  admits only requests carrying the expected ``Authorization`` header, as a hosted
  gateway's auth layer does. It can be stopped and restarted on its port (an outage) and
  made to corrupt what ``cat`` serves (a lying gateway).
- :class:`SpecPinningService`: a Pinning Service API server written in this test suite
  from the public spec (ipfs/pinning-services-api-spec: ``GET /pins``, ``POST /pins``,
  bearer tokens, ``{"error": {"reason", "details"}}`` bodies). It records requests and
  pins nothing: no real pinning service is reachable offline.

Both are stdlib HTTP servers on threads, so the tests need nothing beyond the dev venv.
"""

import json
import threading
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx


class _LoopbackServer(ABC):
    """A threaded HTTP server on 127.0.0.1 that can stop and start again on its port."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @abstractmethod
    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Answer one request."""

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.handle(self, "GET")

            def do_POST(self) -> None:
                owner.handle(self, "POST")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _reply(
    request: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    extra: dict[str, str] | None = None,
) -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    for name, value in (extra or {}).items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)


def _body(request: BaseHTTPRequestHandler) -> bytes:
    return request.rfile.read(int(request.headers.get("Content-Length") or 0))


class AuthenticatingGateway(_LoopbackServer):
    """Forwards ``/api/v0/*`` to ``upstream`` for requests bearing ``token``; counts them.

    ``admitted`` and ``refused`` count requests by RPC command (``add``, ``cat``, …).
    With ``corrupt_cat`` set, the bytes ``cat`` returns have their first byte flipped.
    """

    def __init__(self, upstream: str, token: str, port: int = 0) -> None:
        super().__init__(port)
        self.upstream, self.token = upstream.rstrip("/"), token
        self.admitted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.corrupt_cat = False
        self._lock = threading.Lock()

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        command = urlsplit(request.path).path.removeprefix("/api/v0/")
        body = _body(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            with self._lock:
                self.refused[command] += 1
            _reply(request, 401, b"unauthorized\n", "text/plain")
            return
        with self._lock:
            self.admitted[command] += 1
        forwarded = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("content-type", "content-length")
        }
        upstream = httpx.request(
            method, self.upstream + request.path, content=body, headers=forwarded, timeout=120
        )
        payload = upstream.content
        if command == "cat" and self.corrupt_cat and payload:
            payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
        kept = {
            name: upstream.headers[name]
            for name in ("X-Content-Length",)
            if name in upstream.headers
        }
        content_type = upstream.headers.get("Content-Type", "application/octet-stream")
        _reply(request, upstream.status_code, payload, content_type, kept)


class SpecPinningService(_LoopbackServer):
    """The Pinning Service API's ``/pins`` as the spec describes it; ``pins`` by request id.

    ``settle()`` moves every queued request to ``pinned``, as a service would once it has
    fetched the blobs; ``fail_next`` makes the next ``POST /pins`` answer HTTP 500.
    """

    STATUSES = ("queued", "pinning", "pinned", "failed")

    def __init__(self, token: str, port: int = 0) -> None:
        super().__init__(port)
        self.token = token
        self.pins: dict[str, dict[str, Any]] = {}
        self.posts = 0
        self.fail_next = False
        self._lock = threading.Lock()

    def requested_cids(self) -> set[str]:
        with self._lock:
            return {pin["pin"]["cid"] for pin in self.pins.values()}

    def settle(self, status: str = "pinned") -> None:
        with self._lock:
            for pin in self.pins.values():
                pin["status"] = status

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(request.path)
        body = _body(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self._error(request, 401, "UNAUTHORIZED", "access token missing or invalid")
        elif url.path != "/pins":
            self._error(request, 404, "NOT_FOUND", f"no route {url.path}")
        elif method == "GET":
            self._list(request, parse_qs(url.query))
        else:
            self._add(request, body)

    def _list(self, request: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        cids = set(",".join(query.get("cid", [])).split(",")) - {""}
        # The spec's default status filter is "pinned" alone.
        statuses = set(",".join(query.get("status", ["pinned"])).split(","))
        if not statuses <= set(self.STATUSES):
            self._error(request, 400, "BAD_REQUEST", f"unknown status in {sorted(statuses)}")
            return
        with self._lock:
            results = [
                pin
                for pin in self.pins.values()
                if pin["status"] in statuses and (not cids or pin["pin"]["cid"] in cids)
            ]
        _reply(request, 200, json.dumps({"count": len(results), "results": results}).encode())

    def _add(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            pin = json.loads(body)
        except json.JSONDecodeError:
            pin = None
        if not isinstance(pin, dict) or not isinstance(pin.get("cid"), str):
            self._error(request, 400, "BAD_REQUEST", "a Pin object needs a cid")
            return
        with self._lock:
            self.posts += 1
            if self.fail_next:
                self.fail_next = False
                failing = True
            else:
                failing = False
                status = {
                    "requestid": str(uuid.uuid4()),
                    "status": "queued",
                    "created": datetime.now(UTC).isoformat(),
                    "pin": {key: pin[key] for key in ("cid", "name") if key in pin},
                    "delegates": ["/ip4/127.0.0.1/tcp/4001/p2p/QmPinningServiceDouble"],
                }
                self.pins[status["requestid"]] = status
        if failing:
            self._error(request, 500, "INTERNAL_SERVER_ERROR", "storage backend down")
            return
        _reply(request, 202, json.dumps(status).encode())

    @staticmethod
    def _error(request: BaseHTTPRequestHandler, status: int, reason: str, details: str) -> None:
        body = json.dumps({"error": {"reason": reason, "details": details}}).encode()
        _reply(request, status, body)

"""JSON-RPC transport for the RPC connector: one request, classified and retried.

A node answers a request in one of three ways that callers must tell apart:

* a **transient failure** (connection refused or reset, a timeout, an HTTP 5xx or 429, a
  JSON-RPC ``-32005`` "limit exceeded"): the same request may well succeed in a moment, so
  it is retried with exponential backoff, and once the attempts are spent the caller gets
  one :class:`ChainUnavailableError` instead of a library-specific exception;
* a **JSON-RPC error** (a revert, "nonce too low", "insufficient funds"): the node
  understood the request and refused it; retrying cannot help and, for a revert, would
  only repeat the refusal, so it is raised at once as :class:`RpcError`;
* a **result**.

:class:`HttpProvider` is the wire: one httpx client per endpoint, which keeps connections
alive and is shared by every thread of a connector. It never retries on its own, so that
this module is the only place that decides what to retry.
"""

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from flare.chain.api.abi import hex_bytes
from flare.chain.api.errors import ChainError

RATE_LIMITED = -32005
"""EIP-1474 "limit exceeded": public nodes answer it when a client sends too fast."""
REVERTED = 3
"""The JSON-RPC code geth and Anvil give ``eth_call``/``eth_estimateGas`` reverts."""
_TRANSIENT_HTTP_STATUS = frozenset({429, 500, 502, 503, 504})
_OVERSIZED = ("range", "more than", "too many results", "too large")
_TRANSIENT_TRANSPORT = (
    httpx.TimeoutException
    | httpx.NetworkError
    | httpx.RemoteProtocolError
    | httpx.ProxyError
    | ConnectionError
    | TimeoutError
)
"""The wire failures a repeat may cure: refused, reset, dropped or too slow connections.

A malformed URL or an unsupported scheme fails the same way every time.
"""


class ChainUnavailableError(ChainError):
    """The node could not be reached, or kept failing, after every retry.

    ``transaction_hash`` is set when a signed transaction had already been handed to the
    node: it may or may not be mined, and the caller must look before sending again.
    """

    def __init__(self, message: str, transaction_hash: bytes | None = None) -> None:
        super().__init__(message)
        self.transaction_hash = transaction_hash


class WrongChainError(ChainError):
    """The node serves another chain than the one configured; nothing is sent to it."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"the node serves chain id {actual}, not the configured {expected}")
        self.expected = expected
        self.actual = actual


class RpcError(ChainError):
    """The node answered a request with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method} failed: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data

    @property
    def revert_data(self) -> bytes | None:
        """The revert data if this error is an EVM revert, else ``None``.

        Anvil and geth use code 3 with hex ``data``; other nodes use ``-32000`` with
        "execution reverted" and sometimes nest the hex one level deeper.
        """
        is_revert = self.code == REVERTED or "revert" in self.message.lower()
        if not is_revert:
            return None
        data = self.data.get("data") if isinstance(self.data, dict) else self.data
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return hex_bytes(data)
            except ValueError:
                return None
        return b"" if data is None else None

    def mentions(self, *phrases: str) -> bool:
        """True if the node's message contains any of ``phrases`` (case-insensitive).

        Nodes agree on messages ("nonce too low", "already known") far more than on codes.
        """
        text = self.message.lower()
        return any(phrase in text for phrase in phrases)


class Provider(Protocol):
    """What the transport needs of a JSON-RPC endpoint (and what test fakes implement)."""

    def make_request(self, method: str, params: list[Any]) -> Any:
        """Send one JSON-RPC request; return the decoded response object."""
        ...


class HttpProvider:
    """A JSON-RPC endpoint over HTTP: posts one request, returns the decoded reply.

    An HTTP error status raises ``httpx.HTTPStatusError`` and a body that is not JSON
    raises ``ValueError``; :class:`RpcClient` classifies both.
    """

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout, follow_redirects=True)
        self._request_ids = itertools.count(1)

    def make_request(self, method: str, params: list[Any]) -> Any:
        """POST ``method(params)`` to the endpoint; the reply's JSON object."""
        request = {
            "jsonrpc": "2.0",
            "method": method,
            "params": params,
            "id": next(self._request_ids),
        }
        response = self._client.post(self.url, json=request)
        response.raise_for_status()
        return response.json()


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a transient failure is retried.

    The defaults ride out a node restart or a burst of rate limiting (about 8 s in all)
    without hiding a node that is really gone.
    """

    attempts: int = 6
    initial_delay: float = 0.25
    max_delay: float = 4.0
    multiplier: float = 2.0

    def delays(self) -> list[float]:
        """Seconds to wait before each retry (one fewer than ``attempts``)."""
        return [
            min(self.max_delay, self.initial_delay * self.multiplier**retry)
            for retry in range(max(0, self.attempts - 1))
        ]


def is_transient(exc: BaseException) -> bool:
    """Whether a failed request is worth repeating unchanged."""
    if isinstance(exc, RpcError):
        return exc.code == RATE_LIMITED and not is_oversized_query(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in _TRANSIENT_HTTP_STATUS
    return isinstance(exc, _TRANSIENT_TRANSPORT)


def is_oversized_query(exc: RpcError) -> bool:
    """A log query refused for its block range or result count, which a retry repeats.

    Some providers use -32005 for this too, so the message decides.
    """
    return exc.mentions(*_OVERSIZED)


class RpcClient:
    """JSON-RPC requests over a provider, with classification and retries.

    ``interruptions`` counts transient failures seen so far; a caller that checked
    something about the node (its chain id) re-checks it once the count moves, because the
    node behind the URL may have been restarted or replaced in between.
    """

    def __init__(
        self,
        provider: Provider,
        retry: RetryPolicy = RetryPolicy(),
        *,
        sleep: Callable[[float], None] = time.sleep,
        name: str | None = None,
    ) -> None:
        self.provider = provider
        self.retry = retry
        self.name = name or str(getattr(provider, "url", None) or type(provider).__name__)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._interruptions = 0

    @property
    def interruptions(self) -> int:
        """Transient failures seen so far (whether or not a retry then succeeded)."""
        return self._interruptions

    def request(self, method: str, *params: Any) -> Any:
        """The ``result`` of ``method(params)``; :class:`RpcError` or retry as classified."""
        delays = self.retry.delays()
        for attempt in range(len(delays) + 1):
            try:
                return self._request_once(method, list(params))
            except (RpcError, httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                if not is_transient(exc):
                    if isinstance(exc, RpcError):
                        raise
                    raise ChainUnavailableError(f"{self.name}: {method} failed: {exc}") from exc
                with self._lock:
                    self._interruptions += 1
                if attempt == len(delays):
                    raise ChainUnavailableError(
                        f"{self.name} unavailable: {method} failed {attempt + 1} times, "
                        f"last with {_describe(exc)}"
                    ) from exc
                self._sleep(delays[attempt])
        raise AssertionError("unreachable: the loop returns or raises")

    def _request_once(self, method: str, params: list[Any]) -> Any:
        try:
            response = self.provider.make_request(method, params)
        except ValueError as exc:  # an unparsable body (a proxy's HTML error page)
            raise ChainUnavailableError(f"{self.name}: unreadable reply to {method}") from exc
        if not isinstance(response, dict):
            raise ChainUnavailableError(f"{self.name}: malformed reply to {method}")
        error = response.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise RpcError(method, 0, str(error))
            raise RpcError(
                method, int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
            )
        if "result" not in response:
            raise ChainUnavailableError(f"{self.name}: reply to {method} has no result")
        return response["result"]

    # -- the few typed reads every user of the transport needs --------------------------

    def chain_id(self) -> int:
        """``eth_chainId``."""
        return int(self.request("eth_chainId"), 16)

    def block_number(self) -> int:
        """``eth_blockNumber``: the latest mined block."""
        return int(self.request("eth_blockNumber"), 16)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, RpcError):
        return f"JSON-RPC error {exc.code} ({exc.message})"
    return type(exc).__name__

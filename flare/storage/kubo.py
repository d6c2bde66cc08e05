"""``KuboStore``: blobs on a Kubo node, through its HTTP RPC API (``/api/v0``).

Every RPC call is a POST (Kubo refuses GET on the API). ``ipfshttpclient`` is not
used: it refuses every Kubo newer than 0.8.

``put`` passes every import setting that shapes the DAG explicitly (CIDv1,
sha2-256, raw leaves, ``size-262144`` chunks, 174 links per node, balanced
layout), so the node's own ``Import.*`` config cannot change the CID; if the
node still reports a CID other than the one Flare computed (for example a node
configured for data-first dag-pb nodes), the put fails with
:class:`ContentMismatchError` rather than handing out a CID that names bytes
in a different way. ``get`` is verified by the base class like every provider.

Kubo reports every failure as HTTP 500 with a JSON ``Message``; messages that
mean "no such block" (offline miss, or a network fetch that ran out of
``fetch_timeout``) become :class:`BlobNotFoundError`, everything else,
including an unreachable node, :class:`StorageUnavailableError`.

The node may be someone else's: a gateway's RPC endpoint behind an authenticating proxy.
``headers`` go with every request (``Authorization: Bearer …``), a 401 or 403 reply is
:class:`StorageAccessDeniedError`, and nothing it serves is trusted, since every ``get``
re-hashes the bytes here. A :class:`~flare.storage.pinning.PinningService` given as
``pinning`` is asked to keep every blob this store pins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import httpx

from flare.storage.base import DEFAULT_MAX_BLOB_SIZE, StorageProvider
from flare.storage.errors import (
    BlobNotFoundError,
    ContentMismatchError,
    StorageAccessDeniedError,
    StorageUnavailableError,
)
from flare.storage.pinning import PinningService
from flare.storage.unixfs import CHUNK_SIZE, MAX_LINKS

DEFAULT_API_URL = "http://127.0.0.1:5001"

_IMPORT_PARAMS = {
    "cid-version": "1",
    "hash": "sha2-256",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "max-file-links": str(MAX_LINKS),
    "trickle": "false",
    "inline": "false",
    "pin": "false",
}
_NOT_FOUND_MARKERS = ("could not find", "was not found", "context deadline exceeded")
_NOT_PINNED_MARKER = "is not pinned"


class KuboStore(StorageProvider):
    """A :class:`StorageProvider` backed by a Kubo node's RPC API.

    ``timeout`` bounds each HTTP exchange; ``fetch_timeout`` is passed to Kubo
    to bound how long ``get`` and ``pin`` search the network for a blob the
    node does not hold, so a missing blob fails as not found instead of
    hanging. ``headers`` are sent with every request (a gateway's credentials);
    ``pinning`` is a pinning service asked to keep every blob pinned here.
    ``transport`` replaces the HTTP transport (tests use it to play a misbehaving node).
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        *,
        max_blob_size: int = DEFAULT_MAX_BLOB_SIZE,
        timeout: float = 120.0,
        fetch_timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        pinning: PinningService | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(max_blob_size=max_blob_size)
        self._api_url = api_url.rstrip("/")
        self._fetch_timeout = f"{fetch_timeout}s"
        self._pinning = pinning
        self._client = httpx.Client(
            base_url=f"{self._api_url}/api/v0",
            headers=dict(headers or {}),
            timeout=timeout,
            transport=transport,
        )

    @property
    def api_url(self) -> str:
        """The Kubo RPC endpoint, e.g. ``http://127.0.0.1:5001``."""
        return self._api_url

    def close(self) -> None:
        """Release the HTTP connection pools."""
        self._client.close()
        if self._pinning is not None:
            self._pinning.close()

    def __enter__(self) -> KuboStore:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def _store(self, cid: str, data: bytes) -> None:
        response = self._call("add", _IMPORT_PARAMS, files={"file": ("blob", data)})
        reported = self._result(response).get("Hash")
        if reported != cid:
            raise ContentMismatchError(
                f"Kubo at {self._api_url} stored the blob as {reported}, Flare computed {cid};"
                " the node's import settings differ from Kubo's defaults"
            )

    def _load(self, cid: str, limit: int) -> bytes:
        # Kubo stops after ``length`` bytes and announces the shortened size, so a blob
        # over the limit is refused from the header; a node that sends more anyway is
        # cut off one chunk past the limit.
        params = {"arg": cid, "timeout": self._fetch_timeout, "length": limit + 1}
        try:
            with self._client.stream("POST", "/cat", params=params) as response:
                if response.status_code != httpx.codes.OK:
                    response.read()
                    self._raise_for(response, cid)
                declared = self._declared_length(response, cid)
                if declared is not None:
                    self._check_size(declared, f"get {cid}", limit)
                blob = bytearray()
                for piece in response.iter_bytes():
                    blob += piece
                    self._check_size(len(blob), f"get {cid}", limit)
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from None
        if declared is not None and len(blob) != declared:
            raise StorageUnavailableError(
                f"Kubo at {self._api_url} sent {len(blob)} of {declared} bytes of {cid}"
            )
        return bytes(blob)

    def _declared_length(self, response: httpx.Response, cid: str) -> int | None:
        """Blob size Kubo announces before streaming it, so oversize fails before reading."""
        header = response.headers.get("X-Content-Length")
        if header is None:
            return None
        try:
            return int(header)
        except ValueError:
            raise StorageUnavailableError(
                f"Kubo at {self._api_url} announced an unreadable length for {cid}: {header!r}"
            ) from None

    def _contains(self, cid: str) -> bool:
        try:
            self._call("dag/stat", {"arg": cid, "offline": "true", "progress": "false"})
        except BlobNotFoundError:
            return False
        return True

    def _pin(self, cid: str) -> None:
        self._call("pin/add", {"arg": cid, "timeout": self._fetch_timeout})
        if self._pinning is not None:
            self._pinning.request_pin(cid)

    def _is_pinned(self, cid: str) -> bool:
        response = self._post("pin/ls", {"arg": cid, "type": "recursive"})
        if response.status_code != httpx.codes.OK:
            if _NOT_PINNED_MARKER in _error_message(response):
                return False
            self._raise_for(response, cid)
        return cid in self._result(response).get("Keys", {})

    def _post(
        self,
        command: str,
        params: dict[str, Any],
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> httpx.Response:
        """POST one RPC command; an unreachable node becomes StorageUnavailableError."""
        try:
            return self._client.post(f"/{command}", params=params, files=files)
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from None

    def _call(
        self,
        command: str,
        params: dict[str, Any],
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> httpx.Response:
        """POST one RPC command and turn a Kubo error reply into a storage error."""
        response = self._post(command, params, files)
        if response.status_code != httpx.codes.OK:
            self._raise_for(response, params.get("arg", command))
        return response

    def _result(self, response: httpx.Response) -> dict[str, Any]:
        """The final object of Kubo's newline-delimited JSON reply."""
        lines = [line for line in response.text.splitlines() if line.strip()]
        try:
            decoded = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            decoded = None
        if not isinstance(decoded, dict):
            raise StorageUnavailableError(f"Kubo at {self._api_url} sent an unreadable reply")
        return decoded

    def _raise_for(self, response: httpx.Response, subject: str) -> NoReturn:
        message = _error_message(response)
        if response.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            raise StorageAccessDeniedError(
                f"Kubo at {self._api_url} refused the request for {subject} "
                f"(HTTP {response.status_code}: {message}); check the auth header"
            )
        if any(marker in message for marker in _NOT_FOUND_MARKERS):
            raise BlobNotFoundError(f"Kubo at {self._api_url} has no blob {subject}: {message}")
        raise StorageUnavailableError(f"Kubo at {self._api_url} failed on {subject}: {message}")

    def _unavailable(self, exc: httpx.HTTPError) -> StorageUnavailableError:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return StorageUnavailableError(f"Kubo at {self._api_url} is unreachable: {reason}")


def _error_message(response: httpx.Response) -> str:
    """Kubo's one-line error text (its JSON ``Message``), or the HTTP status."""
    try:
        message = str(response.json().get("Message", ""))
    except (json.JSONDecodeError, AttributeError):
        message = response.text[:200]
    return " ".join(message.split()) or f"HTTP {response.status_code}"

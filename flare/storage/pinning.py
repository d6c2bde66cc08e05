"""``PinningService``: a client of the IPFS Pinning Service API (ipfs/pinning-services-api-spec).

A device that publishes through a remote endpoint may want its blobs kept by a service
that outlives that endpoint's garbage collector. The client uses two calls of the spec,
with the service's bearer token: ``GET /pins?cid=…&status=…`` to see whether the CID is
already requested, then ``POST /pins`` with ``{"cid", "name"}`` if it is not, so a
restarted device never files a second request for the same blob.

Pinning is asynchronous in the spec: the service answers ``queued`` and fetches the blob
from the IPFS network later, so the endpoint that holds it must be reachable by the
service. The client asks and checks the reply; it does not wait for ``pinned``.
It has been tested against a server written to the spec inside the test suite, never
against a commercial service.
"""

from typing import Any

import httpx

from flare.storage.cid import Cid
from flare.storage.errors import StorageAccessDeniedError, StorageUnavailableError

PIN_STATUSES = ("queued", "pinning", "pinned", "failed")
"""The spec's ``Status`` values."""
_KEPT = ("queued", "pinning", "pinned")
"""A request in one of these needs no second one; a ``failed`` one is filed again."""
_MOST_ADVANCED_FIRST = ("pinned", "pinning", "queued", "failed")
MAX_PIN_NAME_CHARS = 255
"""The spec's longest pin name."""


class PinningService:
    """Requests pins from one Pinning Service API endpoint (its base URL, e.g.
    ``https://pin.example.org/psa``) with one bearer token; ``transport`` replaces HTTP."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._client = httpx.Client(
            base_url=self._endpoint,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def close(self) -> None:
        self._client.close()

    def request_pin(self, cid: str, name: str = "flare") -> str:
        """Ask the service to keep ``cid`` unless it already is asked to; the status
        (``queued``, ``pinning`` or ``pinned``) the service reports for it."""
        canonical = str(Cid.parse(cid))
        if not 0 < len(name) <= MAX_PIN_NAME_CHARS:
            raise ValueError(f"a pin name has 1-{MAX_PIN_NAME_CHARS} characters")
        known = self.status(canonical)
        if known in _KEPT:
            return known
        reply = self._exchange("POST", "/pins", json={"cid": canonical, "name": name})
        return self._pin_status(reply, canonical)

    def status(self, cid: str) -> str | None:
        """The most advanced status of the service's requests for ``cid``; None if none."""
        canonical = str(Cid.parse(cid))
        reply = self._exchange(
            "GET", "/pins", params={"cid": canonical, "status": ",".join(PIN_STATUSES)}
        )
        results = reply.get("results")
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise self._unreadable("a pin list without results")
        statuses = {self._pin_status(result, canonical) for result in results}
        return next((status for status in _MOST_ADVANCED_FIRST if status in statuses), None)

    def _pin_status(self, reply: dict[str, Any], cid: str) -> str:
        """The status of one ``PinStatus`` object, checked to be about ``cid``."""
        pin = reply.get("pin")
        status = reply.get("status")
        if not isinstance(pin, dict) or pin.get("cid") != cid or status not in PIN_STATUSES:
            raise self._unreadable(f"a pin status that is not about {cid}")
        return str(status)

    def _exchange(self, method: str, path: str, **arguments: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, **arguments)
        except httpx.HTTPError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StorageUnavailableError(
                f"pinning service {self._endpoint} is unreachable: {reason}"
            ) from None
        if response.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            raise StorageAccessDeniedError(
                f"pinning service {self._endpoint} refused the token "
                f"(HTTP {response.status_code}): {_reason(response)}"
            )
        if not response.is_success:
            raise StorageUnavailableError(
                f"pinning service {self._endpoint} failed (HTTP {response.status_code}): "
                f"{_reason(response)}"
            )
        try:
            decoded = response.json()
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            raise self._unreadable("a reply that is not a JSON object")
        return decoded

    def _unreadable(self, what: str) -> StorageUnavailableError:
        return StorageUnavailableError(f"pinning service {self._endpoint} sent {what}")


def _reason(response: httpx.Response) -> str:
    """The spec's ``error.reason`` and ``error.details``, or the start of the body."""
    try:
        error = response.json().get("error", {})
        text = f"{error.get('reason', '')} {error.get('details', '')}"
    except (ValueError, AttributeError):
        text = response.text[:200]
    return " ".join(text.split()) or "no reason given"

"""``MemoryStore``: the embedded default for ``flare simulate`` and for tests.

Nothing leaves the process, but CIDs are the same as Kubo's, so a simulated
run's report names blobs exactly as a deployed run would.
"""

from __future__ import annotations

from flare.storage.base import DEFAULT_MAX_BLOB_SIZE, StorageProvider
from flare.storage.errors import BlobNotFoundError


class MemoryStore(StorageProvider):
    """Blobs in a dict, keyed by canonical CID; pins in a set."""

    def __init__(self, *, max_blob_size: int = DEFAULT_MAX_BLOB_SIZE) -> None:
        super().__init__(max_blob_size=max_blob_size)
        self._blobs: dict[str, bytes] = {}
        self._pins: set[str] = set()

    def _store(self, cid: str, data: bytes) -> None:
        self._blobs[cid] = data

    def _load(self, cid: str, limit: int) -> bytes:
        try:
            blob = self._blobs[cid]
        except KeyError:
            raise BlobNotFoundError(f"no blob stored under {cid}") from None
        self._check_size(len(blob), f"get {cid}", limit)
        return blob

    def _contains(self, cid: str) -> bool:
        return cid in self._blobs

    def _pin(self, cid: str) -> None:
        if cid not in self._blobs:
            raise BlobNotFoundError(f"cannot pin {cid}: no blob stored under it")
        self._pins.add(cid)

    def _is_pinned(self, cid: str) -> bool:
        return cid in self._pins

"""``ForwardingStore``: a view of a shared store that verifies what it serves itself."""

import pytest

from flare.storage import ContentMismatchError, ForwardingStore, MemoryStore


class TamperingStore(MemoryStore):
    """A memory store that serves every blob with one byte appended."""

    def _load(self, cid: str, limit: int) -> bytes:
        return super()._load(cid, limit) + b"!"


def test_writes_reads_and_pins_reach_the_inner_store() -> None:
    inner = MemoryStore(max_blob_size=1000)
    view = ForwardingStore(inner)
    cid = view.put(b"an update")
    view.pin(cid)
    assert view.max_blob_size == 1000
    assert inner.get(cid) == b"an update" and inner.is_pinned(cid)
    assert view.has(cid) and view.is_pinned(cid) and view.get(cid) == b"an update"


def test_bytes_the_inner_store_tampers_with_are_refused() -> None:
    inner = TamperingStore()
    cid = ForwardingStore(inner).put(b"an update")
    with pytest.raises(ContentMismatchError):
        ForwardingStore(inner).get(cid)

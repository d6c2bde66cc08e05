"""``ForwardingStore``: a view of a shared store that verifies what it serves itself."""

from pathlib import Path

import pytest

from flare.errors import ConfigError
from flare.storage import (
    BlobTooLargeError,
    ContentMismatchError,
    DirectoryStore,
    ForwardingStore,
    InvalidCidError,
    MemoryStore,
    compute_cid,
)

CID = str(compute_cid(b"a blob"))


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


def test_a_subclass_sees_the_bytes_before_the_size_check_refuses_them() -> None:
    class Counting(ForwardingStore):
        def __init__(self, inner: MemoryStore) -> None:
            super().__init__(inner)
            self.served: list[int] = []

        def _load(self, cid: str, limit: int) -> bytes:
            blob = super()._load(cid, self.max_blob_size)[: limit + 1]
            self.served.append(len(blob))
            return blob

    inner = MemoryStore()
    cid = inner.put(b"x" * 100)
    view = Counting(inner)
    with pytest.raises(BlobTooLargeError):
        view.get(cid, max_bytes=10)
    assert view.served == [11]


@pytest.mark.parametrize(
    "cid",
    [
        "../../etc/passwd",
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        CID.upper(),
        CID[:-1] + "b",  # non-zero padding bits: decodes, but is not canonical
        CID + "a",
        None,
    ],
)
def test_the_transport_refuses_a_cid_that_is_not_canonical(tmp_path: Path, cid: object) -> None:
    transport = DirectoryStore(tmp_path).transport
    for operation in (
        lambda: transport.store(cid, b"data"),  # type: ignore[arg-type]
        lambda: transport.load(cid, 100),  # type: ignore[arg-type]
        lambda: transport.contains(cid),  # type: ignore[arg-type]
        lambda: transport.pin(cid),  # type: ignore[arg-type]
        lambda: transport.is_pinned(cid),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidCidError):
            operation()
    assert not any((tmp_path / "blobs").iterdir())


def test_the_transport_keeps_to_the_providers_size_limit() -> None:
    store = MemoryStore(max_blob_size=8)
    with pytest.raises(BlobTooLargeError):
        store.transport.store(CID, b"123456789")
    cid = store.put(b"12345678")
    assert store.transport.load(cid, 1000) == b"12345678"
    with pytest.raises(BlobTooLargeError):
        store.transport.load(cid, 4)
    with pytest.raises(ConfigError):
        store.transport.load(cid, -1)

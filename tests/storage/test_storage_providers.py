"""Every StorageProvider: the contract, verification, size limits per store and per get."""

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flare.errors import ConfigError, FlareError
from flare.storage import (
    CHUNK_SIZE,
    BlobNotFoundError,
    BlobTooLargeError,
    ContentMismatchError,
    DirectoryStore,
    InvalidCidError,
    KuboStore,
    MemoryStore,
    StorageError,
    StorageProvider,
    StorageUnavailableError,
    compute_cid,
)

HELLO_WORLD_RAW = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
ABSENT = str(compute_cid(b"never stored"))


StoreFactory = Callable[..., StorageProvider]


@pytest.fixture(params=["memory", "directory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Build a store of the parametrised kind; directory stores share one root."""
    if request.param == "memory":
        return MemoryStore
    return lambda **options: DirectoryStore(tmp_path / "store", **options)


@pytest.fixture
def store(make_store: StoreFactory) -> StorageProvider:
    return make_store()


def test_put_returns_kubo_cid_and_get_returns_bytes(store: StorageProvider) -> None:
    assert store.put(b"hello world") == HELLO_WORLD_RAW
    assert store.get(HELLO_WORLD_RAW) == b"hello world"
    assert store.has(HELLO_WORLD_RAW)


def test_multi_chunk_blob_roundtrips(store: StorageProvider) -> None:
    blob = bytes(range(256)) * (CHUNK_SIZE // 256 * 2 + 1)
    cid = store.put(blob)
    assert cid.startswith("bafybei")  # dag-pb root
    assert store.get(cid) == blob


def test_empty_blob_roundtrips(store: StorageProvider) -> None:
    cid = store.put(b"")
    assert cid == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert store.get(cid) == b""


def test_put_accepts_bytes_like(store: StorageProvider) -> None:
    assert store.put(bytearray(b"hello world")) == HELLO_WORLD_RAW
    assert store.put(memoryview(b"hello world")) == HELLO_WORLD_RAW


def test_put_is_idempotent(store: StorageProvider) -> None:
    assert store.put(b"same") == store.put(b"same")
    assert store.get(str(compute_cid(b"same"))) == b"same"


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blob=st.binary(max_size=2048))
def test_put_get_roundtrip(store: StorageProvider, blob: bytes) -> None:
    cid = store.put(blob)
    assert cid == str(compute_cid(blob))
    assert store.has(cid)
    assert store.get(cid) == blob


def test_unknown_cid_is_not_found(store: StorageProvider) -> None:
    assert not store.has(ABSENT)
    with pytest.raises(BlobNotFoundError):
        store.get(ABSENT)
    with pytest.raises(BlobNotFoundError):
        store.pin(ABSENT)


# Spellings one step from a canonical CID: each names the same bytes or none, and would
# give one blob two names (or a path-like one) if any operation let it through.
NEAR_CANONICAL = [
    ABSENT.upper(),
    ABSENT[:-1] + "b",  # non-zero padding bits: decodes to the same binary CID
    ABSENT + "a",
    ABSENT[:-1],
    "B" + ABSENT[1:],
    ABSENT.replace("bafkrei", "bafyrei", 1),  # an unsupported codec
    ABSENT + "\n",
]


@pytest.mark.parametrize(
    "bad",
    ["", "not-a-cid", "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n", *NEAR_CANONICAL],
)
def test_invalid_cid_is_rejected_by_every_operation(store: StorageProvider, bad: str) -> None:
    for operation in (store.get, store.has, store.pin, store.is_pinned):
        with pytest.raises(InvalidCidError):
            operation(bad)


def test_path_like_cid_never_reaches_the_backend(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    with pytest.raises(InvalidCidError):
        store.get("../../etc/passwd")


def test_pin_is_recorded_and_idempotent(store: StorageProvider) -> None:
    cid = store.put(b"keep me")
    assert not store.is_pinned(cid)
    store.pin(cid)
    store.pin(cid)
    assert store.is_pinned(cid)


def test_oversized_put_fails_cleanly(make_store: StoreFactory) -> None:
    small = make_store(max_blob_size=10)
    assert small.put(b"0123456789")
    with pytest.raises(BlobTooLargeError) as raised:
        small.put(b"0123456789A")
    message = str(raised.value)
    assert "\n" not in message and "11 bytes" in message and "10 bytes" in message
    assert not small.has(str(compute_cid(b"0123456789A")))


def test_oversized_get_fails_without_returning(tmp_path: Path) -> None:
    DirectoryStore(tmp_path, max_blob_size=100).put(b"x" * 50)
    cid = str(compute_cid(b"x" * 50))
    with pytest.raises(BlobTooLargeError):
        DirectoryStore(tmp_path, max_blob_size=49).get(cid)


def test_max_bytes_tightens_one_get_only(store: StorageProvider) -> None:
    cid = store.put(b"x" * 50)
    assert store.get(cid, max_bytes=50) == b"x" * 50
    with pytest.raises(BlobTooLargeError) as raised:
        store.get(cid, max_bytes=49)
    message = str(raised.value)
    assert "\n" not in message and cid in message and "limit of 49 bytes" in message
    assert store.get(cid) == b"x" * 50  # the store's own limit is unchanged


def test_max_bytes_cannot_raise_the_store_limit(tmp_path: Path) -> None:
    cid = DirectoryStore(tmp_path).put(b"x" * 50)
    with pytest.raises(BlobTooLargeError, match="limit of 10 bytes"):
        DirectoryStore(tmp_path, max_blob_size=10).get(cid, max_bytes=1000)


def test_negative_max_bytes_is_refused(store: StorageProvider) -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        store.get(store.put(b"x"), max_bytes=-1)


def test_directory_store_reads_nothing_of_a_blob_over_max_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryStore(tmp_path)
    cid = store.put(b"x" * 5000)
    reads: list[int] = []
    requested: list[int] = []
    real_open = open

    class CountingFile:
        def __init__(self, handle) -> None:
            self.handle = handle

        def __enter__(self) -> "CountingFile":
            return self

        def __exit__(self, *exc_info: object) -> None:
            self.handle.close()

        def fileno(self) -> int:
            return self.handle.fileno()

        def read(self, size: int = -1) -> bytes:
            requested.append(size)
            data = self.handle.read(size)
            reads.append(len(data))
            return data

    monkeypatch.setattr(
        "flare.storage.directory.open",
        lambda *args, **kwargs: CountingFile(real_open(*args, **kwargs)),
        raising=False,
    )
    with pytest.raises(BlobTooLargeError):
        store.get(cid, max_bytes=100)
    assert reads == []
    assert store.get(cid, max_bytes=5000) == b"x" * 5000
    assert reads == [5000]
    # Under the default 64 MiB limit, the read asks for the file's size and one byte more.
    assert store.get(cid) == b"x" * 5000
    assert requested[-1] == 5001


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_blob_size"):
        MemoryStore(max_blob_size=-1)


def test_default_limit_is_64_mib() -> None:
    assert MemoryStore().max_blob_size == 64 * 1024 * 1024


@pytest.mark.parametrize(
    "tamper",
    [
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # one bit flipped
        lambda data: data + b"!",  # appended
        lambda data: data[:-1],  # truncated
        lambda data: b"",  # emptied
    ],
)
@pytest.mark.parametrize("size", [11, 3 * CHUNK_SIZE + 5])
def test_tampered_file_on_disk_raises_and_returns_nothing(
    tmp_path: Path, tamper, size: int
) -> None:
    store = DirectoryStore(tmp_path)
    blob = (b"model update " * (size // 13 + 1))[:size]
    cid = store.put(blob)
    path = store.blob_path(cid)
    path.write_bytes(tamper(path.read_bytes()))
    result = None
    with pytest.raises(ContentMismatchError) as raised:
        result = store.get(cid)
    assert result is None
    assert cid in str(raised.value)


def test_a_blob_file_that_grows_while_it_is_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryStore(tmp_path)
    cid = store.put(b"model update")
    real_fstat = os.fstat

    def fstat_then_grow(descriptor: int) -> os.stat_result:
        stat = real_fstat(descriptor)
        with open(store.blob_path(cid), "ab") as blob_file:
            blob_file.write(b" and more")
        return stat

    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    with pytest.raises(ContentMismatchError):
        store.get(cid)


def test_put_repairs_a_damaged_blob(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    cid = store.put(b"model")
    store.blob_path(cid).write_bytes(b"evil!")
    assert store.put(b"model") == cid
    assert store.get(cid) == b"model"


class LyingStore(MemoryStore):
    """A backend that serves other bytes than it was given (a malicious gateway)."""

    def _load(self, cid: str, limit: int) -> bytes:
        return super()._load(cid, limit) + b"extra"


def test_verification_lives_in_the_base_class() -> None:
    store = LyingStore()
    cid = store.put(b"honest")
    with pytest.raises(ContentMismatchError):
        store.get(cid)


def test_directory_store_persists_across_instances(tmp_path: Path) -> None:
    first = DirectoryStore(tmp_path)
    kept = first.put(b"global model r1")
    other = first.put(b"update from client 7")
    first.pin(kept)
    del first

    second = DirectoryStore(tmp_path)
    assert second.get(kept) == b"global model r1"
    assert second.get(other) == b"update from client 7"
    assert second.is_pinned(kept)
    assert not second.is_pinned(other)


def test_directory_store_writes_one_file_per_blob_and_no_temp_files(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    cids = {store.put(bytes([i]) * i) for i in range(5)}
    assert {path.name for path in (tmp_path / "blobs").iterdir()} == cids


@pytest.mark.parametrize("durable", [True, False])
def test_only_a_durable_directory_store_fsyncs_each_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    synced: list[int] = []
    monkeypatch.setattr("flare.storage.directory.os.fsync", synced.append)
    store = DirectoryStore(tmp_path, durable=durable)
    cids = [store.put(b"update %d" % i) for i in range(3)]
    assert len(synced) == (3 if durable else 0)
    # Either way a blob is renamed into place whole, survives the instance and is
    # verified on every read.
    reopened = DirectoryStore(tmp_path)
    assert [reopened.get(cid) for cid in cids] == [b"update %d" % i for i in range(3)]
    assert {path.name for path in (tmp_path / "blobs").iterdir()} == set(cids)


def test_a_blob_the_machine_lost_is_refused_then_repaired(tmp_path: Path) -> None:
    """What a non-durable store risks from a machine crash: a named blob cut short, which
    no read accepts and a put of the same bytes repairs."""
    store = DirectoryStore(tmp_path, durable=False)
    cid = store.put(b"an update")
    store.blob_path(cid).write_bytes(b"")
    with pytest.raises(ContentMismatchError):
        store.get(cid)
    assert store.put(b"an update") == cid
    assert store.get(cid) == b"an update"


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DirectoryStore(tmp_path)

    def refuse(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("flare.storage.directory.os.replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"data")
    assert list((tmp_path / "blobs").iterdir()) == []


def test_a_short_write_is_continued_until_the_whole_blob_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = os.write
    monkeypatch.setattr(
        "flare.storage.directory.os.write", lambda fd, data: write(fd, bytes(data[:7]))
    )
    blob = bytes(range(256)) * 3
    cid = DirectoryStore(tmp_path).put(blob)
    assert DirectoryStore(tmp_path).get(cid) == blob


def test_every_storage_error_is_a_flare_error() -> None:
    for error in (
        BlobNotFoundError,
        BlobTooLargeError,
        ContentMismatchError,
        InvalidCidError,
        StorageUnavailableError,
    ):
        assert issubclass(error, StorageError)
        assert issubclass(error, FlareError)


class Hose:
    """A node's reply body that counts the bytes taken from it, 64 KiB at a time."""

    def __init__(self, total: int) -> None:
        self.total, self.sent = total, 0

    def __iter__(self):
        while self.sent < self.total:
            piece = min(65536, self.total - self.sent)
            self.sent += piece
            yield b"\0" * piece


def _fake_kubo(hose: Hose, headers: dict[str, str], seen: list[httpx.Request]) -> KuboStore:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers=headers, content=iter(hose))

    return KuboStore("http://kubo.invalid:5001", transport=httpx.MockTransport(handler))


def test_kubo_store_asks_for_at_most_max_bytes_and_refuses_from_the_header() -> None:
    hose, seen = Hose(64 * 1024 * 1024), []
    # Kubo shortens X-Content-Length to the length asked for
    store = _fake_kubo(hose, {"X-Content-Length": "14001"}, seen)
    with pytest.raises(BlobTooLargeError, match="limit of 14000 bytes"):
        store.get(ABSENT, max_bytes=14000)
    assert seen[0].url.params["length"] == "14001"
    assert hose.sent == 0


def test_kubo_store_cuts_off_a_node_that_streams_past_max_bytes() -> None:
    hose, seen = Hose(64 * 1024 * 1024), []
    store = _fake_kubo(hose, {}, seen)  # announces nothing, ignores ``length``
    with pytest.raises(BlobTooLargeError, match="limit of 14000 bytes"):
        store.get(ABSENT, max_bytes=14000)
    assert hose.sent <= 14000 + 65536

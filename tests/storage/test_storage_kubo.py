"""Everything measured against Kubo: CID vectors, live hashing, and ``KuboStore`` over RPC.

The vectors in ``tests/vectors/kubo_cids.json`` were produced by a real Kubo
(version and command recorded in the file) on deterministic content that
:func:`vector_content` regenerates. The live tests re-derive those vectors,
compare random blobs with the binary built by ``scripts/install_kubo.sh`` and
run ``KuboStore`` against an offline ``ipfs daemon``; they skip only when no
``ipfs`` binary can be found. ``KuboStore``'s handling of a misbehaving or
unreachable node is tested without a binary.

Regenerate the vectors (after building Kubo) with::

    .venv/bin/python tests/storage/test_storage_kubo.py
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.node.kubo import find_ipfs
from flare.node.process import NodeError
from flare.storage import (
    CHUNK_SIZE,
    MAX_LINKS,
    BlobNotFoundError,
    BlobTooLargeError,
    ContentMismatchError,
    KuboStore,
    StorageUnavailableError,
    compute_cid,
)

VECTORS_PATH = Path(__file__).parents[1] / "vectors" / "kubo_cids.json"
ADD_COMMAND = (
    "ipfs add --only-hash --cid-version=1 --raw-leaves -Q --chunker=size-{chunk_size} FILE"
    " (with `ipfs config --json Import.UnixFSFileMaxLinks {max_links}` in a fresh"
    " `ipfs init --profile test` repository)"
)
CONTENT_RULE = "shake_256(b'flare-kubo-vector/' + ASCII decimal size).digest(size)"

# (chunk_size, max_links, sizes). Kubo's defaults first: every boundary of a
# one- and two-level tree. Then small chunks and few links, which give trees of
# three to six levels from a few kilobytes.
VECTOR_PLAN: list[tuple[int, int, list[int]]] = [
    (
        CHUNK_SIZE,
        MAX_LINKS,
        [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            MAX_LINKS * CHUNK_SIZE,
            MAX_LINKS * CHUNK_SIZE + 1,
            (MAX_LINKS + 1) * CHUNK_SIZE + 7,
        ],
    ),
    (64, 3, [64, 65, 192, 193, 576, 577, 1728, 1729, 5000]),
    (1, 2, [2, 3, 5, 33]),
    (1000, 174, [174_000 * 3 + 1]),
]


def vector_content(size: int) -> bytes:
    """Deterministic, incompressible test content; see ``CONTENT_RULE``."""
    return hashlib.shake_256(b"flare-kubo-vector/%d" % size).digest(size)


def load_vectors() -> dict:
    return json.loads(VECTORS_PATH.read_text())


# Read at import for parametrisation; tolerate a missing file only so that
# running this module as a script can create it (the coverage test then fails).
RECORDED_VECTORS = load_vectors()["vectors"] if VECTORS_PATH.exists() else []


def test_vectors_file_covers_the_plan() -> None:
    recorded = {(v["chunk_size"], v["max_links"], v["size"]) for v in load_vectors()["vectors"]}
    planned = {(chunk, links, size) for chunk, links, sizes in VECTOR_PLAN for size in sizes}
    assert recorded == planned


@pytest.mark.parametrize(
    "vector", RECORDED_VECTORS, ids=lambda v: f"{v['chunk_size']}-{v['max_links']}-{v['size']}"
)
def test_compute_cid_matches_kubo_vector(vector: dict) -> None:
    data = vector_content(vector["size"])
    computed = compute_cid(data, chunk_size=vector["chunk_size"], max_links=vector["max_links"])
    assert str(computed) == vector["cid"]


# --- live Kubo ---------------------------------------------------------------


def find_ipfs_binary() -> Path | None:
    """The ``ipfs`` to compare with, found as ``flare node up`` finds it; None if absent.

    A ``$FLARE_IPFS_BIN`` that names no file is an error, not a reason to skip.
    """
    if os.environ.get("FLARE_IPFS_BIN"):
        return find_ipfs()
    try:
        return find_ipfs()
    except NodeError:
        return None


class KuboHasher:
    """Runs ``ipfs add --only-hash`` in a private, offline repository."""

    def __init__(self, binary: Path, repository: Path) -> None:
        self.binary = binary
        self.environment = {**os.environ, "IPFS_PATH": str(repository)}
        self.scratch = repository / "scratch"
        self._max_links: int | None = None
        self._run("init", "--profile", "test")
        self.scratch.mkdir()
        self.version = self._run("version", "--number")

    def _run(self, *arguments: str) -> str:
        completed = subprocess.run(
            [str(self.binary), *arguments],
            env=self.environment,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return completed.stdout.strip()

    def cid(self, data: bytes, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS) -> str:
        if max_links != self._max_links:
            self._run("config", "--json", "Import.UnixFSFileMaxLinks", str(max_links))
            self._max_links = max_links
        path = self.scratch / "blob"
        path.write_bytes(data)
        return self._run(
            "add", "--only-hash", "--cid-version=1", "--raw-leaves", "-Q",
            f"--chunker=size-{chunk_size}", str(path),
        )  # fmt: skip


@pytest.fixture(scope="module")
def kubo() -> Iterator[KuboHasher]:
    binary = find_ipfs_binary()
    if binary is None:
        pytest.skip("no ipfs binary (run scripts/install_kubo.sh or set FLARE_IPFS_BIN)")
    with tempfile.TemporaryDirectory(prefix="flare-kubo-") as repository:
        yield KuboHasher(binary, Path(repository))


@pytest.mark.kubo
def test_live_kubo_reproduces_recorded_vectors(kubo: KuboHasher) -> None:
    for vector in load_vectors()["vectors"]:
        data = vector_content(vector["size"])
        assert kubo.cid(data, vector["chunk_size"], vector["max_links"]) == vector["cid"], vector


@settings(max_examples=25, deadline=None)
@given(
    data=st.binary(max_size=3000),
    chunk_size=st.sampled_from([1, 7, 64, 256]),
    max_links=st.sampled_from([2, 3, 5, 174]),
)
@pytest.mark.kubo
def test_compute_cid_matches_live_kubo_on_random_blobs(
    kubo: KuboHasher, data: bytes, chunk_size: int, max_links: int
) -> None:
    expected = kubo.cid(data, chunk_size, max_links)
    assert str(compute_cid(data, chunk_size=chunk_size, max_links=max_links)) == expected


# --- KuboStore against a live daemon -------------------------------------------


@pytest.fixture(scope="module")
def kubo_api_url() -> Iterator[str]:
    """An ``ipfs daemon --offline`` on a fresh repository, with its API on a free port."""
    binary = find_ipfs_binary()
    if binary is None:
        pytest.skip("no ipfs binary (run scripts/install_kubo.sh or set FLARE_IPFS_BIN)")
    with tempfile.TemporaryDirectory(prefix="flare-kubo-daemon-") as repository:
        environment = {**os.environ, "IPFS_PATH": repository}
        run = [str(binary), "init", "--profile", "test"]
        subprocess.run(run, env=environment, capture_output=True, check=True, timeout=120)
        daemon = subprocess.Popen(
            [str(binary), "daemon", "--offline"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield _wait_for_api(Path(repository) / "api", daemon)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)


def _wait_for_api(api_file: Path, daemon: subprocess.Popen) -> str:
    """Kubo writes the API's real address (``/ip4/<host>/tcp/<port>``) once it serves."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and daemon.poll() is None:
        if api_file.is_file():
            _, _, host, _, port = api_file.read_text().strip().split("/")
            url = f"http://{host}:{port}"
            try:
                httpx.post(f"{url}/api/v0/version", timeout=5).raise_for_status()
                return url
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise RuntimeError("ipfs daemon did not start")


@pytest.fixture
def kubo_store(kubo_api_url: str) -> Iterator[KuboStore]:
    with KuboStore(kubo_api_url, fetch_timeout=2) as store:
        yield store


@pytest.mark.parametrize("size", [0, 11, CHUNK_SIZE, 3 * CHUNK_SIZE + 5])
@pytest.mark.kubo
def test_kubo_store_roundtrip_with_flare_cids(kubo_store: KuboStore, size: int) -> None:
    data = vector_content(size)
    cid = kubo_store.put(data)
    assert cid == str(compute_cid(data))
    assert kubo_store.has(cid)
    assert kubo_store.get(cid) == data


@pytest.mark.kubo
def test_kubo_store_pins(kubo_store: KuboStore) -> None:
    cid = kubo_store.put(b"global model, round 3")
    assert not kubo_store.is_pinned(cid)
    kubo_store.pin(cid)
    kubo_store.pin(cid)
    assert kubo_store.is_pinned(cid)


@pytest.mark.kubo
def test_kubo_store_missing_blob(kubo_store: KuboStore) -> None:
    absent = str(compute_cid(b"nobody stored this"))
    assert not kubo_store.has(absent)
    assert not kubo_store.is_pinned(absent)
    with pytest.raises(BlobNotFoundError):
        kubo_store.get(absent)
    with pytest.raises(BlobNotFoundError):
        kubo_store.pin(absent)


@pytest.mark.kubo
def test_kubo_store_refuses_oversized_blob_before_reading(kubo_api_url: str) -> None:
    with KuboStore(kubo_api_url) as roomy, KuboStore(kubo_api_url, max_blob_size=100) as strict:
        cid = roomy.put(bytes(1000))
        with pytest.raises(BlobTooLargeError):
            strict.get(cid)
        with pytest.raises(BlobTooLargeError):
            strict.put(bytes(101))


# --- KuboStore against a misbehaving or absent node (no binary needed) -----------

HELLO_CID = str(compute_cid(b"hello"))


def _fake_kubo(handler) -> KuboStore:
    return KuboStore("http://kubo.invalid:5001", transport=httpx.MockTransport(handler))


def test_kubo_store_refuses_bytes_that_do_not_match() -> None:
    store = _fake_kubo(lambda request: httpx.Response(200, content=b"jello"))
    with pytest.raises(ContentMismatchError):
        store.get(HELLO_CID)


def test_kubo_store_detects_a_truncated_stream() -> None:
    headers = {"X-Content-Length": "10"}
    store = _fake_kubo(lambda request: httpx.Response(200, headers=headers, content=b"hello"))
    with pytest.raises(StorageUnavailableError, match="5 of 10 bytes"):
        store.get(HELLO_CID)


def test_kubo_store_refuses_a_node_that_computes_other_cids() -> None:
    other = str(compute_cid(b"other"))
    store = _fake_kubo(lambda request: httpx.Response(200, json={"Hash": other, "Size": "5"}))
    with pytest.raises(ContentMismatchError, match="import settings"):
        store.put(b"hello")


def test_kubo_store_passes_every_layout_setting_to_add() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"Hash": HELLO_CID})

    assert _fake_kubo(handler).put(b"hello") == HELLO_CID
    assert seen[0].method == "POST" and seen[0].url.path == "/api/v0/add"
    assert dict(seen[0].url.params) == {
        "cid-version": "1",
        "hash": "sha2-256",
        "raw-leaves": "true",
        "chunker": "size-262144",
        "max-file-links": "174",
        "trickle": "false",
        "inline": "false",
        "pin": "false",
    }


def test_kubo_store_maps_kubo_errors() -> None:
    reply = {"Message": "pinning\nis broken", "Code": 0, "Type": "error"}
    store = _fake_kubo(lambda request: httpx.Response(500, json=reply))
    with pytest.raises(StorageUnavailableError, match="pinning is broken"):
        store.pin(HELLO_CID)
    with pytest.raises(StorageUnavailableError):
        store.put(b"hello")


def test_kubo_store_unreachable_node_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    store = _fake_kubo(refuse)
    for operation in (lambda: store.put(b"hello"), lambda: store.get(HELLO_CID)):
        with pytest.raises(StorageUnavailableError, match="unreachable"):
            operation()


def write_vectors() -> None:
    """Regenerate ``kubo_cids.json`` from a live Kubo (run this file as a script)."""
    binary = find_ipfs_binary()
    if binary is None:
        sys.exit("no ipfs binary: run scripts/install_kubo.sh or set FLARE_IPFS_BIN")
    with tempfile.TemporaryDirectory(prefix="flare-kubo-") as repository:
        hasher = KuboHasher(binary, Path(repository))
        vectors = [
            {
                "chunk_size": chunk_size,
                "max_links": max_links,
                "size": size,
                "cid": hasher.cid(vector_content(size), chunk_size, max_links),
            }
            for chunk_size, max_links, sizes in VECTOR_PLAN
            for size in sizes
        ]
        document = {
            "kubo_version": hasher.version,
            "command": ADD_COMMAND,
            "content": CONTENT_RULE,
            "vectors": vectors,
        }
    VECTORS_PATH.parent.mkdir(exist_ok=True)
    VECTORS_PATH.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {len(vectors)} vectors from Kubo {document['kubo_version']} to {VECTORS_PATH}")


if __name__ == "__main__":
    write_vectors()

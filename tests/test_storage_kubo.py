"""Flare's CIDs against Kubo's: recorded vectors always, a live ``ipfs`` binary when present.

The vectors in ``tests/vectors/kubo_cids.json`` were produced by a real Kubo
(version and command recorded in the file) on deterministic content that
:func:`vector_content` regenerates. The live tests re-derive those vectors and
compare random blobs with the binary built by ``scripts/install_kubo.sh``; they
skip only when no ``ipfs`` binary can be found.

Regenerate the vectors (after building Kubo) with::

    .venv/bin/python tests/test_storage_kubo.py
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.storage import CHUNK_SIZE, MAX_LINKS, compute_cid

KUBO_VERSION = "v0.43.1"
VECTORS_PATH = Path(__file__).parent / "vectors" / "kubo_cids.json"
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
    """The ``ipfs`` to compare with: $FLARE_IPFS_BIN, the install script's cache, or PATH."""
    explicit = os.environ.get("FLARE_IPFS_BIN")
    if explicit:
        return Path(explicit)
    cache_root = Path(os.environ.get("FLARE_CACHE", Path.home() / ".cache" / "flare"))
    cached = cache_root / "kubo" / KUBO_VERSION / "ipfs"
    if cached.is_file():
        return cached
    on_path = shutil.which("ipfs")
    return Path(on_path) if on_path else None


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
def test_compute_cid_matches_live_kubo_on_random_blobs(
    kubo: KuboHasher, data: bytes, chunk_size: int, max_links: int
) -> None:
    expected = kubo.cid(data, chunk_size, max_links)
    assert str(compute_cid(data, chunk_size=chunk_size, max_links=max_links)) == expected


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

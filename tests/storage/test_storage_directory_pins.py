"""DirectoryStore pins: a marker is a hard link to the blob's file, or an empty file where
the file system has no hard links; either way a pin needs the blob, and reads still check
every byte."""

import errno
import os
from pathlib import Path

import pytest

from flare.storage import BlobNotFoundError, ContentMismatchError, DirectoryStore, compute_cid


def test_a_pin_links_the_blob_file_and_allocates_no_file_of_its_own(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    cid = store.put(b"update of client 3")
    store.pin(cid)
    marker = tmp_path / "pins" / cid
    assert os.path.samefile(marker, store.blob_path(cid))
    assert store.blob_path(cid).stat().st_nlink == 2
    store.pin(cid)  # idempotent: the link stays, no error
    assert store.is_pinned(cid)


def test_a_pin_of_an_absent_blob_is_refused_and_leaves_no_marker(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    absent = str(compute_cid(b"never stored"))
    with pytest.raises(BlobNotFoundError, match="cannot pin"):
        store.pin(absent)
    assert not (tmp_path / "pins" / absent).exists()
    assert not store.is_pinned(absent)


def test_a_marker_that_outlived_its_blob_does_not_make_a_pin_succeed(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    cid = store.put(b"global model")
    store.pin(cid)
    store.blob_path(cid).unlink()  # a blob the machine lost, its marker kept
    with pytest.raises(BlobNotFoundError):
        store.pin(cid)


def test_bytes_tampered_with_through_the_marker_are_still_refused(tmp_path: Path) -> None:
    """The marker shares the blob's bytes: writing through it changes the blob, and a
    read checks the blob against its CID as before."""
    store = DirectoryStore(tmp_path)
    cid = store.put(b"honest update")
    store.pin(cid)
    (tmp_path / "pins" / cid).write_bytes(b"forged update")
    with pytest.raises(ContentMismatchError):
        store.get(cid)


def test_a_repaired_pinned_blob_stays_pinned_and_reads_its_bytes(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    cid = store.put(b"model")
    store.pin(cid)
    store.blob_path(cid).write_bytes(b"evil!")
    assert store.put(b"model") == cid
    assert store.get(cid) == b"model"
    assert store.is_pinned(cid)
    assert DirectoryStore(tmp_path).is_pinned(cid)


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP])
def test_without_hard_links_a_pin_is_an_empty_marker_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    store = DirectoryStore(tmp_path)
    cid = store.put(b"update")
    monkeypatch.setattr(os, "link", refuse)
    store.pin(cid)
    store.pin(cid)
    assert store.is_pinned(cid)
    assert (tmp_path / "pins" / cid).read_bytes() == b""
    with pytest.raises(BlobNotFoundError):
        store.pin(str(compute_cid(b"never stored")))


def test_another_link_failure_is_raised_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_space(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    store = DirectoryStore(tmp_path)
    cid = store.put(b"update")
    monkeypatch.setattr(os, "link", out_of_space)
    with pytest.raises(OSError, match="No space"):
        store.pin(cid)
    assert not store.is_pinned(cid)

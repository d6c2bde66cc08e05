"""``DirectoryStore``: a content-addressed store on the local file system.

Layout under the root directory::

    blobs/<cid>   the blob's bytes, one file per blob
    pins/<cid>    a marker per pinned blob: a hard link to its blob file

CIDs are validated before they reach this class, so they are always canonical
base32 (``[a-z2-7]``) and safe as file names. Blobs are written to a temporary
file in ``blobs/`` and renamed into place, so a reader (another process
included) sees either nothing or the whole blob. A durable store (the default) fsyncs
each blob before naming it: a crash, of the process or of the machine, leaves at most a
stray ``.tmp-*`` file that is never mistaken for a blob. ``durable=False`` skips the fsync,
for a process that a machine crash ends anyway (the protocol simulation, whose chain
journal is likewise durable across a process crash only): its blobs survive the process,
and one the machine lost is refused on ``get``, since its bytes no longer hash to its CID,
until a ``put`` of the same bytes repairs it. Pins are marker files
rather than one index file so that concurrent processes never overwrite each
other's pins. A marker is a hard link to the blob's file, not a new empty file: one
``link`` both finds the blob (a pin of an absent blob fails) and names the marker, and it
allocates no inode, which costs ten times a link here (0.3 against 0.02 ms on ext4) and is
most of what a pin cost. The link shares the blob's bytes, so it takes no space of its own
until a ``put`` repairs the blob (the marker then keeps the bytes it was linked to; a
marker is only ever tested for existence). On a file system without hard links (FAT) the
marker is an empty file. Everything survives a restart: a new instance over the same
directory sees the same blobs and pins.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
from pathlib import Path

from flare.storage.base import DEFAULT_MAX_BLOB_SIZE, StorageProvider
from flare.storage.errors import BlobNotFoundError

_TEMP_PREFIX = ".tmp-"
# Temporary names unique to this process (a random token, for processes on other machines
# sharing the directory; the pid, for a forked child) and to each write in it: no name is
# drawn and tried as mkstemp does.
_PROCESS_TOKEN = secrets.token_hex(8)
_WRITE_NUMBERS = itertools.count()
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}
)
"""What ``link`` raises where the file system cannot link this file (FAT says ``EPERM``)."""


class DirectoryStore(StorageProvider):
    """Blobs as files named by CID under ``root``; see the module docstring for the layout."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_blob_size: int = DEFAULT_MAX_BLOB_SIZE,
        durable: bool = True,
    ):
        super().__init__(max_blob_size=max_blob_size)
        self._root = Path(root)
        self._durable = durable
        self._blob_dir = self._root / "blobs"
        self._pin_dir = self._root / "pins"
        self._blob_dir.mkdir(parents=True, exist_ok=True)
        self._pin_dir.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        """The directory this store lives in."""
        return self._root

    def blob_path(self, cid: str) -> Path:
        """Where the blob for canonical ``cid`` lives (whether or not it exists)."""
        return self._blob_dir / cid

    def _store(self, cid: str, data: bytes) -> None:
        # Always rewrite, even when the file exists: content addressing makes
        # this harmless, and it repairs a blob that was damaged on disk.
        unique = f"{_PROCESS_TOKEN}-{os.getpid()}-{next(_WRITE_NUMBERS)}"
        temp_name = self._blob_dir / f"{_TEMP_PREFIX}{unique}"
        descriptor = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                _write_all(descriptor, data)
                if self._durable:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temp_name, self.blob_path(cid))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise

    def _load(self, cid: str, limit: int) -> bytes:
        try:
            with open(self.blob_path(cid), "rb") as blob_file:
                size = os.fstat(blob_file.fileno()).st_size
                self._check_size(size, f"get {cid}", limit)
                # One byte past the size, not past the limit: a read allocates what it asks
                # for (64 MiB by default), and a file that grows meanwhile still comes back
                # longer than it was, so its bytes no longer hash to the CID.
                return blob_file.read(size + 1)
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob stored under {cid} in {self._root}") from None

    def _contains(self, cid: str) -> bool:
        return self.blob_path(cid).is_file()

    def _pin(self, cid: str) -> None:
        marker = self._pin_dir / cid
        try:
            os.link(self.blob_path(cid), marker)
            return
        except FileExistsError:
            pass  # pinned before
        except OSError as exc:
            if not self._contains(cid):
                raise self._cannot_pin(cid) from None
            if exc.errno not in _NO_HARD_LINKS:
                raise
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o666))
            return
        if not self._contains(cid):  # its marker outlived it
            raise self._cannot_pin(cid)

    def _cannot_pin(self, cid: str) -> BlobNotFoundError:
        return BlobNotFoundError(f"cannot pin {cid}: no blob stored under it in {self._root}")

    def _is_pinned(self, cid: str) -> bool:
        return (self._pin_dir / cid).is_file()


def _write_all(descriptor: int, data: bytes) -> None:
    """Write every byte of ``data``: ``os.write`` may write fewer than it was given."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]

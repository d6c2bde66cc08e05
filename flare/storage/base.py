"""``StorageProvider``: the one interface the rest of Flare uses for blobs.

A provider maps bytes to a CID and back. The base class owns everything that
must not differ between providers, so no backend can get it wrong:

* the CID of a blob is computed here (:func:`~flare.storage.unixfs.compute_cid`),
  identical to Kubo's, so the embedded store and a Kubo node agree;
* every ``get`` re-hashes what the backend returned and raises
  :class:`ContentMismatchError` instead of returning bytes that are not the
  blob asked for: a blob comes from a stranger, and a tampering store, disk or
  gateway must not be able to feed us anything else;
* CID strings are validated up front (:class:`InvalidCidError`), so backends
  only ever see canonical CIDs (safe as file names and URL parameters);
* size limits are checked on both sides (:class:`BlobTooLargeError`), and a
  caller that knows how large a valid blob can be tightens the limit of one ``get``
  (``max_bytes``), which the backend enforces before reading past it.

Backends implement the small ``_store`` / ``_load`` / ``_contains`` / ``_pin`` /
``_is_pinned`` hooks. A network backend such as Kubo's RPC API fits the same
hooks: ``_store`` posts the bytes (and may check the CID the node reports),
``_load`` streams them with the call's size limit, and connection failures become
:class:`StorageUnavailableError`. A provider that forwards to another reaches that
one's hooks through its :attr:`~StorageProvider.transport`, never directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from flare.errors import ConfigError
from flare.storage.cid import CANONICAL_CID_TEXT, Cid
from flare.storage.errors import BlobTooLargeError, ContentMismatchError, InvalidCidError
from flare.storage.unixfs import compute_cid

DEFAULT_MAX_BLOB_SIZE = 64 * 1024 * 1024
"""64 MiB: far above a compressed model update, far below what would hurt an IoT node."""


class StorageProvider(ABC):
    """Content-addressed blob store whose CIDs equal Kubo's and whose reads are verified."""

    def __init__(self, *, max_blob_size: int = DEFAULT_MAX_BLOB_SIZE) -> None:
        if max_blob_size < 0:
            raise ConfigError(f"max_blob_size must be non-negative, got {max_blob_size}")
        self._max_blob_size = max_blob_size

    @property
    def max_blob_size(self) -> int:
        """Largest blob, in bytes, this provider accepts on ``put`` and serves on ``get``."""
        return self._max_blob_size

    def put(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` and return its CID string (the same CID Kubo would give)."""
        blob = bytes(data)
        self._check_size(len(blob), "put")
        cid = str(compute_cid(blob))
        self._store(cid, blob)
        return cid

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        """Return the blob named ``cid``, verified against it.

        ``max_bytes`` lowers this call's size limit below :attr:`max_blob_size`: a
        caller that knows the largest valid blob (a model update of a given model)
        spends no more than that on a stranger's CID. Raises :class:`BlobNotFoundError`
        when absent, :class:`BlobTooLargeError` when over the limit (without reading
        more than one byte past it) and :class:`ContentMismatchError` when the backend
        returns bytes that do not hash to ``cid`` (they are then discarded); a negative
        ``max_bytes`` is a :class:`~flare.errors.ConfigError` (also a ``ValueError``).
        """
        canonical = _canonical(cid)
        limit = self._read_limit(max_bytes)
        blob = self._load(canonical, limit)
        self._check_size(len(blob), f"get {canonical}", limit)
        actual = compute_cid(blob)
        if str(actual) != canonical:
            raise ContentMismatchError(
                f"content served for {canonical} hashes to {actual}; refusing it"
            )
        return blob

    @property
    def transport(self) -> BlobTransport:
        """This store's hooks, unverified, for a provider that forwards to it."""
        return BlobTransport(self)

    def has(self, cid: str) -> bool:
        """Whether the store holds a blob under ``cid`` (not verified: use ``get`` for that)."""
        return self._contains(_canonical(cid))

    def pin(self, cid: str) -> None:
        """Keep ``cid`` for good (idempotent); :class:`BlobNotFoundError` if it is absent."""
        self._pin(_canonical(cid))

    def is_pinned(self, cid: str) -> bool:
        """Whether ``cid`` has been pinned in this store."""
        return self._is_pinned(_canonical(cid))

    def _read_limit(self, max_bytes: int | None) -> int:
        """The size limit of one ``get`` given ``max_bytes``; :class:`ConfigError` if negative."""
        if max_bytes is None:
            return self._max_blob_size
        if max_bytes < 0:
            raise ConfigError(f"max_bytes must be non-negative, got {max_bytes}")
        return min(self._max_blob_size, max_bytes)

    def _check_size(self, size: int, operation: str, limit: int | None = None) -> None:
        """Raise :class:`BlobTooLargeError` when ``size`` exceeds ``limit`` (or the store's)."""
        limit = self._max_blob_size if limit is None else limit
        if size > limit:
            raise BlobTooLargeError(
                f"{operation}: blob of {size} bytes exceeds the limit of {limit} bytes"
            )

    @abstractmethod
    def _store(self, cid: str, data: bytes) -> None:
        """Persist ``data`` under its canonical ``cid`` (already computed, size checked)."""

    @abstractmethod
    def _load(self, cid: str, limit: int) -> bytes:
        """Return the stored bytes for canonical ``cid``, unverified, at most ``limit + 1``.

        Raise :class:`BlobNotFoundError` when absent. ``limit`` is this call's size
        limit: call :meth:`_check_size` with it before reading a blob whose size is
        known up front, and never read more than one byte past it otherwise, so an
        oversized blob costs no more than ``limit + 1`` bytes.
        """

    @abstractmethod
    def _contains(self, cid: str) -> bool:
        """Whether a blob is stored under canonical ``cid``."""

    @abstractmethod
    def _pin(self, cid: str) -> None:
        """Record a pin on canonical ``cid``; raise :class:`BlobNotFoundError` if absent."""

    @abstractmethod
    def _is_pinned(self, cid: str) -> bool:
        """Whether canonical ``cid`` is pinned."""


class BlobTransport:
    """What a provider moves, unverified: its hooks, for a provider that forwards to it.

    Nothing here hashes: ``load`` returns the bytes as the backend served them and
    ``store`` trusts that ``cid`` names ``data``, because the forwarding provider computes
    and checks CIDs itself (:class:`~flare.storage.forwarding.ForwardingStore`). What a
    backend relies on is still enforced: CIDs must be canonical (a backend uses them as
    file names and URL parameters), and sizes stay within the provider's limit.
    """

    def __init__(self, provider: StorageProvider) -> None:
        self._provider = provider

    def store(self, cid: str, data: bytes) -> None:
        """Persist ``data`` under ``cid``; :class:`BlobTooLargeError` over the limit."""
        self._provider._check_size(len(data), f"put {cid}")
        self._provider._store(_canonical(cid), data)

    def load(self, cid: str, limit: int) -> bytes:
        """The bytes stored under ``cid``, unverified, at most ``limit + 1`` of them
        (``limit`` capped at the provider's own)."""
        return self._provider._load(_canonical(cid), self._provider._read_limit(limit))

    def contains(self, cid: str) -> bool:
        """Whether a blob is stored under ``cid``."""
        return self._provider._contains(_canonical(cid))

    def pin(self, cid: str) -> None:
        """Pin ``cid``; :class:`BlobNotFoundError` if it is absent."""
        self._provider._pin(_canonical(cid))

    def is_pinned(self, cid: str) -> bool:
        """Whether ``cid`` is pinned."""
        return self._provider._is_pinned(_canonical(cid))


def _canonical(cid: str) -> str:
    """``cid`` if it is a canonical CID string; :class:`InvalidCidError` saying why not
    otherwise. The pattern passes exactly the strings :meth:`Cid.parse` accepts (tested), in
    a fraction of what parsing costs; a string it refuses is parsed for the reason."""
    if isinstance(cid, str) and CANONICAL_CID_TEXT.fullmatch(cid) is not None:
        return cid
    Cid.parse(cid)  # raises, saying why
    raise InvalidCidError(f"{cid!r} is not a canonical CID string")

"""Content-addressed blob storage with CIDs identical to Kubo's.

See ``docs/storage.md`` for the CID layout, the on-chain form and the errors.
"""

from flare.storage.base import DEFAULT_MAX_BLOB_SIZE, BlobTransport, StorageProvider
from flare.storage.cid import (
    CODEC_DAG_PB,
    CODEC_RAW,
    Cid,
    cid_from_onchain,
    cid_to_onchain,
    parse_cid,
)
from flare.storage.directory import DirectoryStore
from flare.storage.errors import (
    BlobNotFoundError,
    BlobTooLargeError,
    ContentMismatchError,
    InvalidCidError,
    StorageAccessDeniedError,
    StorageError,
    StorageUnavailableError,
)
from flare.storage.forwarding import ForwardingStore
from flare.storage.kubo import KuboStore
from flare.storage.memory import MemoryStore
from flare.storage.pinning import PinningService
from flare.storage.unixfs import CHUNK_SIZE, MAX_LINKS, compute_cid

__all__ = [
    "CHUNK_SIZE",
    "CODEC_DAG_PB",
    "CODEC_RAW",
    "DEFAULT_MAX_BLOB_SIZE",
    "MAX_LINKS",
    "BlobNotFoundError",
    "BlobTooLargeError",
    "BlobTransport",
    "Cid",
    "ContentMismatchError",
    "DirectoryStore",
    "ForwardingStore",
    "InvalidCidError",
    "KuboStore",
    "MemoryStore",
    "PinningService",
    "StorageAccessDeniedError",
    "StorageError",
    "StorageProvider",
    "StorageUnavailableError",
    "cid_from_onchain",
    "cid_to_onchain",
    "compute_cid",
    "parse_cid",
]

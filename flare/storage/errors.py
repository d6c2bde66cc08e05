"""Typed errors of the storage layer.

Callers (the federation layer, the CLI) need to tell apart "this blob does not
exist", "this blob is a lie" and "the store is down": the first may be retried
elsewhere, the second marks the sender as malicious, the third is transient.
Every message is one line so the CLI can print it as is.
"""

from flare.errors import FlareError


class StorageError(FlareError):
    """Base class of every storage error."""


class InvalidCidError(StorageError, ValueError):
    """A CID string or on-chain pair is malformed or uses a form Flare does not accept."""


class BlobNotFoundError(StorageError):
    """The store holds no blob under the requested CID."""


class BlobTooLargeError(StorageError):
    """A blob exceeds the store's configured size limit."""


class ContentMismatchError(StorageError):
    """Bytes served for a CID do not hash to that CID; they are never returned."""


class StorageUnavailableError(StorageError):
    """The backing store (for example a Kubo daemon) cannot be reached or failed."""


class StorageAccessDeniedError(StorageError):
    """A remote endpoint refused this process's credentials (HTTP 401 or 403).

    Not transient like :class:`StorageUnavailableError`: retrying with the same token
    cannot help, so a process fails on it at start-up instead of waiting it out.
    """

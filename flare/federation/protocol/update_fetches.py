"""Fetching one attempt's update blobs: once each, in parallel, bounded in size and time.

What the fetches obtained, and why each missing blob is missing, feed the round's
aggregate (:mod:`flare.federation.protocol.aggregate`); nothing here judges an update.
"""

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, wait
from functools import partial

from flare.compression import blob_limit
from flare.federation.protocol.fetch_threads import shared_fetch_threads
from flare.storage import StorageProvider
from flare.storage.errors import BlobTooLargeError, StorageError
from flare.tensors import ModelSpec


class UpdateFetches:
    """The update blobs of one attempt, each fetched once, in parallel, and bounded.

    No fetch reads more than the largest valid update of the task's model
    (:func:`~flare.compression.blob_limit`), however large the blob a CID names.

    :meth:`collect` starts a fetch for every CID not yet settled or under way and waits
    a bounded time; a fetch still running carries on into the next call instead of being
    started again, so a CID nobody serves costs one fetch timeout per attempt, not one per
    poll. A blob that was served is settled for good, and so is one refused for its size
    (every member refuses it alike); a blob that is absent, a store that is down, or bytes
    that are not what the CID names may change, so those are asked again on the next call:
    a transient failure delays a member, it never decides what counts. Fetches run on
    ``executor``, by default the process's ``FETCH_WORKERS`` shared fetch threads.
    """

    def __init__(
        self, store: StorageProvider, spec: ModelSpec, executor: Executor | None = None
    ) -> None:
        self._store, self._executor = store, executor or shared_fetch_threads()
        self.max_bytes = blob_limit(spec)
        self._blobs: dict[str, bytes] = {}
        self._refused: dict[str, str] = {}
        self._too_large: set[str] = set()
        self._last_failure: dict[str, str] = {}
        self._running: dict[str, Future[bytes]] = {}

    def collect(self, cids: Sequence[str], timeout: float | None) -> list[str]:
        """Fetch what is missing, waiting up to ``timeout`` s; the CIDs still unsettled."""
        for cid in dict.fromkeys(cids):
            if cid not in self._blobs and cid not in self._refused and cid not in self._running:
                self._start(cid)
        if self._running:
            wait(list(self._running.values()), timeout=timeout)
        for cid, future in list(self._running.items()):
            if future.done():
                del self._running[cid]
                self._settle(cid, future.result)
        return [cid for cid in cids if cid not in self._blobs and cid not in self._refused]

    def _start(self, cid: str) -> None:
        self._running[cid] = self._executor.submit(self._store.get, cid, max_bytes=self.max_bytes)

    def outcome(self, cid: str) -> bytes | str:
        """The blob, or why there is none (in one line)."""
        if cid in self._blobs:
            return self._blobs[cid]
        if cid in self._refused:
            return self._refused[cid]
        if cid in self._running:
            return f"update blob {cid} was still being fetched when the wait for it ended"
        return self._last_failure.get(cid, f"update blob {cid} was never fetched")

    def store_errors(self) -> dict[str, str]:
        """Every CID the store could not serve as named (absent, down, corrupt), and why.

        A blob larger than any valid update is not among them: that is its sender's doing.
        """
        return {
            cid: str(self.outcome(cid))
            for cid in (*self._refused, *self._last_failure, *self._running)
            if cid not in self._blobs and cid not in self._too_large
        }

    def obtained(self, cid: str) -> bool:
        """Whether ``cid``'s blob counts as available: served, or refused by its size
        alone, which every member judges alike."""
        return cid in self._blobs or cid in self._too_large

    def obtained_cids(self) -> frozenset[str]:
        """Every CID :meth:`obtained` holds true of."""
        return frozenset(self._blobs.keys() | self._too_large)

    def _settle(self, cid: str, fetch: Callable[[], bytes]) -> None:
        try:
            self._blobs[cid] = fetch()
        except BlobTooLargeError as exc:
            self._refused[cid] = str(exc)
            self._too_large.add(cid)
        except StorageError as exc:
            # Absent, down, or bytes that are not what the CID names: another try, or
            # another node, may serve it, so it is asked for again and never judged here.
            self._last_failure[cid] = str(exc)
        except Exception as exc:  # a backend failing in a way it should not: ask again
            self._last_failure[cid] = f"fetching {cid} failed: {one_line(exc)}"


class InlineUpdateFetches(UpdateFetches):
    """:class:`UpdateFetches` reading each blob in the calling thread, for a store that
    answers at once from this process (the protocol simulation's shared reads).

    A thread per read would only add a hand-over per blob to every member's step; the
    outcomes are those of fetches that all finished within the wait.
    """

    def _start(self, cid: str) -> None:
        self._settle(cid, partial(self._store.get, cid, max_bytes=self.max_bytes))


UpdateFetchesFactory = Callable[[StorageProvider, ModelSpec], UpdateFetches]
"""How a member makes the fetches of an attempt from its store and the task's model."""


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, the same on every machine for the same input."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__

"""The threads that fetch update blobs for every aggregate of the process."""

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

FETCH_WORKERS = 8
"""Update blobs fetched at once: enough that a few unserved CIDs do not hold up the rest."""


class DaemonThreads(Executor):
    """``workers`` daemon threads taking calls from one queue.

    Unlike a ``ThreadPoolExecutor``'s, these threads never hold up the exit of the
    process: a participant told to stop does not first wait out a fetch nobody answers.
    """

    def __init__(self, workers: int) -> None:
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple, dict]]
        self._calls = queue.SimpleQueue()
        for number in range(workers):
            threading.Thread(target=self._work, name=f"flare-fetch-{number}", daemon=True).start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._calls.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            future, fn, args, kwargs = self._calls.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # raised again to whoever reads the future
                future.set_exception(exc)
            else:
                future.set_result(result)


_fetch_threads: DaemonThreads | None = None
_fetch_threads_lock = threading.Lock()


def shared_fetch_threads() -> Executor:
    """The process's fetch threads, started on first use and shared by every aggregate."""
    global _fetch_threads
    with _fetch_threads_lock:
        if _fetch_threads is None:
            _fetch_threads = DaemonThreads(FETCH_WORKERS)
        return _fetch_threads

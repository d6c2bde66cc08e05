"""The dashboard's HTTP server (aiohttp): the page at ``/``, the snapshot at ``/api/state``.

Snapshots are taken in a worker thread, at most one at a time and at most once per poll
interval however many pages are open, so watching never loads the chain node more than one
page would.
"""

import asyncio
import time
from typing import Any

from aiohttp import web

from flare.dashboard.page import render_page
from flare.dashboard.watch import TaskWatcher
from flare.errors import FlareError


class SnapshotCache:
    """The latest snapshot, retaken when older than ``max_age`` seconds."""

    def __init__(self, watcher: TaskWatcher, max_age: float) -> None:
        self._watcher = watcher
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._taken_at = float("-inf")
        self._latest: dict[str, Any] | None = None

    async def latest(self) -> dict[str, Any]:
        async with self._lock:
            if time.monotonic() - self._taken_at >= self._max_age:
                loop = asyncio.get_running_loop()
                self._latest = await loop.run_in_executor(None, self._watcher.snapshot)
                self._taken_at = time.monotonic()
            assert self._latest is not None
            return self._latest


SNAPSHOTS = web.AppKey("snapshots", SnapshotCache)
PAGE = web.AppKey("page", str)


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=request.app[PAGE], content_type="text/html")


async def _state(request: web.Request) -> web.Response:
    try:
        snapshot = await request.app[SNAPSHOTS].latest()
    except (FlareError, OSError) as exc:
        # The page keeps showing what it had and says why it is not updating.
        return web.json_response({"error": str(exc)}, status=503)
    return web.json_response(snapshot, headers={"Cache-Control": "no-store"})


def build_app(watcher: TaskWatcher, poll_seconds: float) -> web.Application:
    """The dashboard application; its page polls every ``poll_seconds``."""
    app = web.Application()
    app[SNAPSHOTS] = SnapshotCache(watcher, max_age=poll_seconds)
    app[PAGE] = render_page(poll_seconds)
    app.router.add_get("/", _page)
    app.router.add_get("/api/state", _state)
    return app


def serve(watcher: TaskWatcher, host: str, port: int, poll_seconds: float) -> None:
    """Serve the dashboard until interrupted."""
    web.run_app(
        build_app(watcher, poll_seconds),
        host=host,
        port=port,
        print=lambda _: print(f"dashboard on http://{host}:{port}/ (Ctrl-C stops)", flush=True),
        handle_signals=True,
    )

"""`flare dashboard` in a real browser: Debian's headless Chromium loads the page while a
task runs and sees rounds appear.

Set ``FLARE_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to keep a screenshot of the last load.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest

from flare.federation.agents import split_data

CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium (scripts/install_chromium.sh)"),
]

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # as root, as in CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1400,1600",
    # lets the page's fetch and render finish before the DOM is dumped
    "--virtual-time-budget=8000",
]


class RoundRows(HTMLParser):
    """The round rows the page's script rendered into the DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.rounds: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr" and values.get("class") == "round-row":
            self.rounds.append(int(values["data-round"] or 0))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _state(url: str) -> dict:
    try:
        with urllib.request.urlopen(url + "api/state", timeout=30) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
        return {}


def _wait_for_rounds(url: str, more_than: int, deadline: float) -> int:
    while time.monotonic() < deadline:
        rounds = len(_state(url).get("rounds", []))
        if rounds > more_than:
            return rounds
        time.sleep(0.5)
    raise AssertionError(f"no more than {more_than} rounds appeared in time")


def _load(url: str, screenshot: Path | None = None) -> RoundRows:
    assert CHROMIUM is not None
    dom = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    if screenshot is not None:
        subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--screenshot={screenshot.resolve()}", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
    rows = RoundRows()
    rows.feed(dom)
    return rows


def test_the_dashboard_shows_rounds_appear_while_a_task_runs(tmp_path: Path) -> None:
    test_file = split_data("digits", 2, tmp_path / "data", seed=0)[-1]
    state, store = tmp_path / "chain.db", tmp_path / "blobs"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    flare = [sys.executable, "-m", "flare"]
    simulate = [
        *flare,
        "simulate",
        "--quiet",
        "--model",
        "logreg",
        "--clients",
        "6",
        "--malicious",
        "1",
        "--rounds",
        "20000",  # far more than the test waits for: the task is still running at both loads
        "--state",
        str(state),
        "--store",
        str(store),
    ]
    dashboard = [
        *flare,
        "dashboard",
        "--state",
        str(state),
        "--store",
        str(store),
        "--test",
        str(test_file),
        "--port",
        str(port),
        "--poll",
        "0.5",
    ]
    kept = os.environ.get("FLARE_DASHBOARD_SCREENSHOT")
    deadline = time.monotonic() + 300
    with (
        _process(simulate, tmp_path / "simulate.log") as run,
        _process(dashboard, tmp_path / "dashboard.log"),
    ):
        seen = _wait_for_rounds(url, 0, deadline)
        first = _load(url)
        assert len(first.rounds) >= seen >= 1
        assert first.rounds == list(range(1, len(first.rounds) + 1))
        _wait_for_rounds(url, len(first.rounds), deadline)
        second = _load(url, Path(kept) if kept else None)
        assert len(second.rounds) > len(first.rounds)
        assert second.rounds == list(range(1, len(second.rounds) + 1))
        assert _state(url)["status"] == "running" and run.poll() is None

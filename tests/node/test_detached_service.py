"""``DetachedService``: the life cycle every local node shares, on a stand-in daemon.

The stand-in is a Python process whose "endpoint" is a file it writes once ready, so these
tests need neither Anvil nor Kubo and run in the quick loop; ``test_web3_node.py`` and
``test_node_kubo.py`` check the same rules on the real daemons.
"""

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flare.node import DetachedService, NodeError
from flare.node.process import PidRecord, find_binary, process_runs

READY = textwrap.dedent(
    """
    import pathlib, signal, sys, time
    if sys.argv[2] == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pathlib.Path(sys.argv[1]).write_text("stand-in v1")
    time.sleep(600)
    """
)
CRASH = "import sys; print('stand-in: state file is corrupt'); sys.exit(3)"
SILENT = "import time; time.sleep(600)"


class StandIn(DetachedService):
    """A daemon that answers by writing ``ready`` (its endpoint) with its version."""

    name = "stand-in"
    start_timeout = 10.0

    def __init__(self, directory: Path, script: str = READY, mode: str = "") -> None:
        super().__init__(directory, str(directory / "ready"), Path(sys.executable))
        self.script = script
        self.mode = mode

    def _find_binary(self) -> Path:
        raise AssertionError("the binary is given")

    def _command(self, binary: Path) -> list[str]:
        return [str(binary), "-c", self.script, self._endpoint, self.mode]

    def _recorded_settings(self) -> dict[str, Any]:
        return {"mode": self.mode}

    def _describe(self, endpoint: str) -> str | None:
        try:
            return Path(endpoint).read_text() or None
        except FileNotFoundError:
            return None


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "service"
    yield directory
    StandIn(directory).kill()


def test_start_status_stop(directory: Path) -> None:
    service = StandIn(directory)
    record = service.start()
    assert PidRecord.read(service.pid_file) == record
    assert (record.service, record.binary, record.settings) == (
        "stand-in",
        sys.executable,
        {"mode": ""},
    )
    status = service.status()
    assert status is not None
    assert (status.pid, status.endpoint, status.answer) == (
        record.pid,
        str(directory / "ready"),
        "stand-in v1",
    )

    assert StandIn(directory).stop()  # as `flare node down` would, from another object
    assert not process_runs(record.pid, Path(sys.executable).name)
    assert not service.pid_file.exists()
    assert service.status() is None
    assert not service.stop()


def test_a_second_daemon_and_an_answering_endpoint_are_refused(directory: Path) -> None:
    StandIn(directory).start()
    with pytest.raises(NodeError, match="stand-in already runs for"):
        StandIn(directory).start()
    other = directory.parent / "other"
    other.mkdir()
    (other / "ready").write_text("someone else")
    with pytest.raises(NodeError, match="another node already answers on"):
        StandIn(other).start()
    assert not (other / "stand-in.pid").exists()


def test_a_crash_at_start_quotes_the_log_and_leaves_no_pid_file(directory: Path) -> None:
    with pytest.raises(NodeError) as raised:
        StandIn(directory, CRASH).start()
    message = str(raised.value)
    assert message.startswith("stand-in exited at start:\n")
    assert message.endswith("stand-in: state file is corrupt")
    assert not (directory / "stand-in.pid").exists()


def test_a_daemon_that_never_answers_is_killed_after_the_timeout(directory: Path) -> None:
    service = StandIn(directory, SILENT)
    with pytest.raises(NodeError, match=r"stand-in did not answer on .* within 0.5 s"):
        service.start(timeout=0.5)
    assert not service.pid_file.exists()
    assert service.status() is None


def test_a_stale_pid_file_is_ignored(directory: Path) -> None:
    directory.mkdir()
    dead = PidRecord("stand-in", 2**22 + 12345, sys.executable, "nowhere", {})
    dead.write(directory / "stand-in.pid")
    service = StandIn(directory)
    assert service.status() is None
    assert service.start().pid != dead.pid


def test_a_recycled_pid_running_another_program_is_never_signalled(directory: Path) -> None:
    """This test's own pid, recorded as if it were Anvil's: not ours to stop or kill."""
    directory.mkdir()
    PidRecord("stand-in", os.getpid(), "/opt/bin/anvil", "nowhere", {}).write(
        directory / "stand-in.pid"
    )
    service = StandIn(directory)
    assert service.status() is None
    assert not service.stop()
    assert not service.pid_file.exists()


def test_a_daemon_that_ignores_sigterm_is_killed_after_the_grace(directory: Path) -> None:
    service = StandIn(directory, mode="ignore-term")
    record = service.start()
    assert service.stop(grace=0.3)
    assert not process_runs(record.pid, Path(sys.executable).name)


def test_kill_leaves_nothing_running(directory: Path) -> None:
    service = StandIn(directory)
    record = service.start()
    service.kill()
    assert not process_runs(record.pid, Path(sys.executable).name)
    assert not service.pid_file.exists()


def test_find_binary_prefers_the_override_then_the_candidates_then_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, cached, chosen = tmp_path / "bin", tmp_path / "cache" / "tool", tmp_path / "tool"
    for binary in (bin_dir / "tool", cached, chosen):
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("FLARE_TOOL", raising=False)
    missing = tmp_path / "missing"

    assert find_binary("tool", "FLARE_TOOL", [missing, cached], "install it") == cached
    assert find_binary("tool", "FLARE_TOOL", [missing], "install it") == bin_dir / "tool"
    monkeypatch.setenv("FLARE_TOOL", str(chosen))
    assert find_binary("tool", "FLARE_TOOL", [cached], "install it") == chosen
    monkeypatch.setenv("FLARE_TOOL", str(missing))
    with pytest.raises(NodeError, match=f"FLARE_TOOL names {missing}, which is not a file"):
        find_binary("tool", "FLARE_TOOL", [cached], "install it")

    monkeypatch.delenv("FLARE_TOOL")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(NodeError) as raised:
        find_binary("tool", "FLARE_TOOL", [missing], "run scripts/install_tool.sh")
    assert str(raised.value) == (
        "no tool binary: run scripts/install_tool.sh, put tool on PATH, or set FLARE_TOOL"
    )

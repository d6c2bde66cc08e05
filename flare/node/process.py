"""Background services that outlive the command that started them, tracked by pid files.

``flare node up`` starts a daemon and returns; ``flare node down`` runs in another process
and has only the pid file to go by. A pid file therefore records everything ``down`` and
``status`` need (pid, endpoint, the binary), and a pid is trusted only while the process
behind it still runs the recorded binary, so a recycled pid is never signalled.
"""

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flare.errors import FlareError


class NodeError(FlareError):
    """A local node could not be found, started, reached or stopped."""


@dataclass(frozen=True)
class PidRecord:
    """What a running service left behind for later commands."""

    service: str
    pid: int
    binary: str
    endpoint: str
    settings: dict[str, Any]

    def write(self, path: Path) -> None:
        """Write atomically, so ``status`` never reads half a record."""
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: Path) -> "PidRecord | None":
        """The record at ``path``; ``None`` if absent, :class:`NodeError` if corrupt."""
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise NodeError(f"unreadable pid file {path}: {exc}; delete it if stale") from exc

    def alive(self) -> bool:
        """True while the pid runs the recorded binary (not a process that reused the pid)."""
        return process_runs(self.pid, Path(self.binary).name)


def process_runs(pid: int, program: str) -> bool:
    """Whether ``pid`` exists, is not a zombie, and its command line names ``program``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not ours to manage
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs (macOS): the signal probe is all we have
        return True
    try:
        status = (proc / "stat").read_text()
        command = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if status.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return any(Path(os.fsdecode(part)).name == program for part in command if part)


def terminate(pid: int, program: str, grace: float) -> bool:
    """SIGTERM ``pid``, wait up to ``grace`` seconds, then SIGKILL; True if it was forced.

    SIGTERM first because Anvil writes its state file on a clean exit.
    """
    if not process_runs(pid, program):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not process_runs(pid, program):
            return False
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


class DetachedService:
    """Stopping and killing a daemon that a pid file tracks: what every local node shares.

    A subclass sets :attr:`service` (its name in logs) and :attr:`pid_file`, and keeps the
    ``Popen`` of a daemon it started itself in :attr:`_process`, so that it is reaped.
    """

    service: str
    pid_file: Path
    _process: "subprocess.Popen[bytes] | None" = None

    def stop(self, grace: float = 15.0) -> bool:
        """SIGTERM (the daemon flushes its state), SIGKILL after ``grace`` s; False if idle."""
        record = PidRecord.read(self.pid_file)
        if record is None or not record.alive():
            self._forget()
            return False
        if terminate(record.pid, Path(record.binary).name, grace):
            logging.getLogger(type(self).__module__).warning(
                "%s (pid %d) ignored SIGTERM for %g s: killed", self.service, record.pid, grace
            )
        self._forget()
        return True

    def kill(self) -> None:
        """SIGKILL, as a crash or power loss would: whatever was not written is lost."""
        record = PidRecord.read(self.pid_file)
        if record is not None and record.alive():
            os.kill(record.pid, signal.SIGKILL)
        self._forget()

    def _forget(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process = None
        self.pid_file.unlink(missing_ok=True)

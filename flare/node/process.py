"""Background services that outlive the command that started them, tracked by pid files.

``flare node up`` starts a daemon and returns; ``flare node down`` runs in another process
and has only the pid file to go by. A pid file therefore records everything ``down`` and
``status`` need (pid, endpoint, the binary), and a pid is trusted only while the process
behind it still runs the recorded binary, so a recycled pid is never signalled.
"""

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from flare.errors import FlareError


class NodeError(FlareError):
    """A local node could not be found, started, reached or stopped."""


@dataclass(frozen=True)
class ServiceStatus:
    """A running service, as ``flare node status`` reports it."""

    pid: int
    endpoint: str
    answer: str | None
    """What the endpoint says about itself (Anvil: ``chain 31337, block 5``; Kubo: its agent
    version); ``None`` if it does not answer."""


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
        write_atomically(path, (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode())

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


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename: a reader, or a crash, sees old or new."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def find_binary(
    program: str, override_variable: str, candidates: Iterable[Path], install_hint: str
) -> Path:
    """``$override_variable`` if set, else the first candidate that exists, else ``PATH``.

    An override that names no file is an error rather than a fallback: the user asked for
    that binary. ``install_hint`` completes the message when nothing is found.
    """
    override = os.environ.get(override_variable)
    if override:
        if not Path(override).is_file():
            raise NodeError(f"{override_variable} names {override}, which is not a file")
        return Path(override)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    on_path = shutil.which(program)
    if on_path:
        return Path(on_path)
    raise NodeError(
        f"no {program} binary: {install_hint}, put {program} on PATH, or set {override_variable}"
    )


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


class DetachedService(ABC):
    """A daemon started detached, tracked by a pid file, stopped from another process.

    The life cycle is the same for every local node and lives here once: refuse a second
    daemon, start this one with its output in a log file, wait until it answers (quoting the
    log's last lines when it dies at start), report, stop, kill. A subclass supplies only
    what differs: where its binary is, its command line, any preparation before the first
    start, and how its endpoint answers.

    A daemon started here is also reaped here (its ``Popen`` is kept), so none is left a
    zombie; ``start`` and ``stop`` may as well run in different processes.
    """

    name: ClassVar[str]
    """The service's name: in messages, and the stem of its pid and log files."""
    start_timeout: ClassVar[float]
    """Seconds ``start`` waits by default for the endpoint to answer."""

    def __init__(self, directory: Path, endpoint: str, binary: Path | None) -> None:
        self._directory = directory
        self._endpoint = endpoint
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self._directory / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self._directory / f"{self.name}.log"

    @property
    def binary(self) -> Path:
        """The binary given, else the one found (looked up on first use only)."""
        if self._binary is None:
            self._binary = self._find_binary()
        return self._binary

    def environment(self) -> dict[str, str]:
        """The environment the daemon (and any preparation step) runs in."""
        return dict(os.environ)

    @abstractmethod
    def _find_binary(self) -> Path:
        """The binary to run when none was given."""

    @abstractmethod
    def _command(self, binary: Path) -> list[str]:
        """The daemon's command line."""

    @abstractmethod
    def _recorded_settings(self) -> dict[str, Any]:
        """What the pid record keeps besides pid, binary and endpoint."""

    @abstractmethod
    def _describe(self, endpoint: str) -> str | None:
        """What ``endpoint`` says about itself; ``None`` when nothing answers as this service."""

    def _prepare(self) -> None:
        """Make the daemon's state ready to start on: its directory, and what a subclass adds."""
        self._directory.mkdir(parents=True, exist_ok=True)

    def _ready(self) -> bool:
        """Whether the daemon just started answers; a subclass may also check who answers."""
        return self._describe(self._endpoint) is not None

    def start(self, timeout: float | None = None) -> PidRecord:
        """Start the daemon detached and wait until it answers; refuse a second one."""
        running = PidRecord.read(self.pid_file)
        if running is not None and running.alive():
            raise NodeError(
                f"{self.name} already runs for {self._directory} (pid {running.pid}, "
                f"{running.endpoint}); `flare node down` first"
            )
        if self._describe(self._endpoint) is not None:
            raise NodeError(f"another node already answers on {self._endpoint}")
        binary = self.binary
        self._prepare()
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                self._command(binary),
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the terminal of `flare node up`
            )
        self._process = process
        record = PidRecord(
            self.name, process.pid, str(binary), self._endpoint, self._recorded_settings()
        )
        record.write(self.pid_file)
        try:
            self._wait_ready(process, self.start_timeout if timeout is None else timeout)
        except BaseException:
            self.kill()
            raise
        return record

    def _wait_ready(self, process: "subprocess.Popen[bytes]", timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise NodeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.05)
        raise NodeError(f"{self.name} did not answer on {self._endpoint} within {timeout:g} s")

    def status(self) -> ServiceStatus | None:
        """The recorded daemon and what its endpoint says; ``None`` when it does not run."""
        record = PidRecord.read(self.pid_file)
        if record is None or not record.alive():
            return None
        return ServiceStatus(record.pid, record.endpoint, self._describe(record.endpoint))

    def stop(self, grace: float = 15.0) -> bool:
        """SIGTERM (the daemon flushes its state), SIGKILL after ``grace`` s; False if idle."""
        record = PidRecord.read(self.pid_file)
        if record is None or not record.alive():
            self._forget()
            return False
        if terminate(record.pid, Path(record.binary).name, grace):
            logging.getLogger(type(self).__module__).warning(
                "%s (pid %d) ignored SIGTERM for %g s: killed", self.name, record.pid, grace
            )
        self._forget()
        return True

    def kill(self) -> None:
        """SIGKILL, as a crash or power loss would: whatever was not written is lost."""
        record = PidRecord.read(self.pid_file)
        if record is not None and record.alive():
            os.kill(record.pid, signal.SIGKILL)
        self._forget()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the daemon's log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _forget(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process = None
        self.pid_file.unlink(missing_ok=True)

"""A local Kubo (IPFS) daemon: its own repository, loopback only, started detached.

Layout of a Kubo directory (``anvil/state/kubo/`` under ``flare node up``)::

    repo/       the IPFS repository (``IPFS_PATH``): config, keys, blocks, pins
    kubo.pid    JSON pid record: pid, API URL, the binary, the repository
    kubo.log    the daemon's output

The repository is made with ``ipfs init --profile test`` and then pinned down
explicitly, so that a node meant for one machine never talks to the public
network: API and swarm on 127.0.0.1 only, no gateway, no bootstrap peers, no
routing, no mDNS, nothing announced. The daemon runs with ``--offline`` by
default: a single local node has nobody to reach, and offline it cannot try.
Blocks and pins live in the repository, so a restarted daemon serves what was
pinned before.
"""

import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from flare.node.process import DetachedService, NodeError, PidRecord

KUBO_VERSION = "v0.43.1"
"""The version ``scripts/install_kubo.sh`` builds and caches."""
DEFAULT_API_PORT = 5001
_SERVICE = "kubo"
_ANNOUNCE_NOTHING = ["/ip4/0.0.0.0/ipcidr/0", "/ip6/::/ipcidr/0"]
_log = logging.getLogger(__name__)


def find_ipfs() -> Path:
    """The ``ipfs`` binary: ``$FLARE_IPFS_BIN``, the install script's cache, then ``PATH``.

    The cache is looked up, never filled: building Kubo takes minutes, so that is left
    to ``scripts/install_kubo.sh``.
    """
    override = os.environ.get("FLARE_IPFS_BIN")
    if override:
        if not Path(override).is_file():
            raise NodeError(f"FLARE_IPFS_BIN names {override}, which is not a file")
        return Path(override)
    cache_root = Path(os.environ.get("FLARE_CACHE", Path.home() / ".cache" / "flare"))
    cached = cache_root / "kubo" / KUBO_VERSION / "ipfs"
    if cached.is_file():
        return cached
    on_path = shutil.which("ipfs")
    if on_path:
        return Path(on_path)
    raise NodeError(
        "no ipfs binary: run scripts/install_kubo.sh, put ipfs on PATH, or set FLARE_IPFS_BIN"
    )


@dataclass(frozen=True)
class KuboConfig:
    """How to run one Kubo daemon.

    ``gateway_port`` is ``None`` for no HTTP gateway (Flare uses only the RPC API);
    ``swarm_port`` 0 lets the daemon pick one, on loopback either way.
    """

    directory: Path
    api_port: int = DEFAULT_API_PORT
    gateway_port: int | None = None
    swarm_port: int = 0
    offline: bool = True

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def repo_dir(self) -> Path:
        return self.directory / "repo"

    @property
    def pid_file(self) -> Path:
        return self.directory / "kubo.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "kubo.log"

    def settings(self) -> dict[str, object]:
        """Config keys (dotted, Kubo 0.43 names) written over the ``test`` profile."""
        gateway = [] if self.gateway_port is None else [f"/ip4/127.0.0.1/tcp/{self.gateway_port}"]
        return {
            "Addresses.API": f"/ip4/127.0.0.1/tcp/{self.api_port}",
            "Addresses.Gateway": gateway,
            "Addresses.Swarm": [f"/ip4/127.0.0.1/tcp/{self.swarm_port}"],
            "Addresses.Announce": [],
            "Addresses.AppendAnnounce": [],
            "Addresses.NoAnnounce": _ANNOUNCE_NOTHING,
            "Bootstrap": [],
            "Routing.Type": "none",
            "Discovery.MDNS.Enabled": False,
            "Swarm.DisableNatPortMap": True,
        }


@dataclass(frozen=True)
class KuboStatus:
    """What ``flare node status`` reports for Kubo."""

    running: bool
    pid: int | None
    api_url: str | None
    peer_id: str | None
    version: str | None


class KuboNode(DetachedService):
    """One Kubo daemon per directory, managed through its pid file like :class:`AnvilNode`."""

    service = "kubo"

    def __init__(self, config: KuboConfig, binary: Path | None = None) -> None:
        self.config = config
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.config.pid_file

    @property
    def api_url(self) -> str:
        return self.config.api_url

    @property
    def binary(self) -> Path:
        if self._binary is None:
            self._binary = find_ipfs()
        return self._binary

    def environment(self) -> dict[str, str]:
        """The environment for ``ipfs`` commands on this node's repository."""
        return {**os.environ, "IPFS_PATH": str(self.config.repo_dir)}

    def start(self, timeout: float = 60.0) -> PidRecord:
        """Initialise the repository if new, apply the config, start, wait for the API."""
        config = self.config
        running = PidRecord.read(config.pid_file)
        if running is not None and running.alive():
            raise NodeError(
                f"kubo already runs for {config.directory} (pid {running.pid}, "
                f"{running.endpoint}); `flare node down` first"
            )
        if _identify(config.api_url) is not None:
            raise NodeError(f"another node already answers on {config.api_url}")
        config.directory.mkdir(parents=True, exist_ok=True)
        if not (config.repo_dir / "config").is_file():
            self._ipfs("init", "--profile", "test", "--empty-repo")
        self._apply_settings()
        command = [str(self.binary), "daemon"]
        if config.offline:
            command.append("--offline")
        with config.log_file.open("ab") as log:
            process = subprocess.Popen(
                command,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the terminal of `flare node up`
            )
        self._process = process
        record = PidRecord(
            _SERVICE,
            process.pid,
            str(self.binary),
            config.api_url,
            {"repo": str(config.repo_dir), "offline": config.offline},
        )
        record.write(config.pid_file)
        try:
            self._wait_ready(process, timeout)
        except BaseException:
            self.kill()
            raise
        return record

    def _ipfs(self, *arguments: str) -> str:
        result = subprocess.run(
            [str(self.binary), *arguments],
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise NodeError(f"ipfs {' '.join(arguments)} failed: {result.stderr.strip()}")
        return result.stdout

    def _apply_settings(self) -> None:
        """Write the settings into the repository's config file (daemon not running)."""
        config_file = self.config.repo_dir / "config"
        document = json.loads(config_file.read_text())
        for dotted, value in self.config.settings().items():
            *parents, leaf = dotted.split(".")
            section = document
            for key in parents:
                section = section.setdefault(key, {})
            section[leaf] = value
        temporary = config_file.with_name("config.tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(temporary, config_file)

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise NodeError(f"ipfs daemon exited at start:\n{self.log_tail()}")
            if _identify(self.api_url) is not None:
                return
            time.sleep(0.1)
        raise NodeError(f"ipfs daemon did not answer on {self.api_url} within {timeout:g} s")

    def status(self) -> KuboStatus:
        """Whether the recorded daemon runs, and what its API says about itself."""
        record = PidRecord.read(self.config.pid_file)
        if record is None or not record.alive():
            return KuboStatus(False, None, None, None, None)
        identity = _identify(record.endpoint) or {}
        return KuboStatus(
            True,
            record.pid,
            record.endpoint,
            identity.get("ID"),
            identity.get("AgentVersion"),
        )

    def log_tail(self, lines: int = 20) -> str:
        """The end of ``kubo.log``, for error messages."""
        try:
            text = self.config.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _identify(api_url: str) -> dict[str, str] | None:
    """``/api/v0/id`` (POST, as Kubo requires); ``None`` when nothing answers as Kubo."""
    try:
        response = httpx.post(f"{api_url}/api/v0/id", timeout=5)
        reply = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if response.status_code != 200 or not isinstance(reply, dict) or "ID" not in reply:
        return None
    return reply

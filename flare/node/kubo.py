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
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flare.node.process import DetachedService, NodeError, find_binary, write_atomically

KUBO_VERSION = "v0.43.1"
"""The version ``scripts/install_kubo.sh`` builds and caches."""
DEFAULT_API_PORT = 5001
_ANNOUNCE_NOTHING = ["/ip4/0.0.0.0/ipcidr/0", "/ip6/::/ipcidr/0"]


def find_ipfs() -> Path:
    """The ``ipfs`` binary: ``$FLARE_IPFS_BIN``, the install script's cache, then ``PATH``.

    The cache is looked up, never filled: building Kubo takes minutes, so that is left
    to ``scripts/install_kubo.sh``.
    """
    cache_root = Path(os.environ.get("FLARE_CACHE", Path.home() / ".cache" / "flare"))
    cached = cache_root / "kubo" / KUBO_VERSION / "ipfs"
    return find_binary("ipfs", "FLARE_IPFS_BIN", [cached], "run scripts/install_kubo.sh")


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

    def repo_overrides(self) -> dict[str, object]:
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


class KuboNode(DetachedService):
    """One Kubo daemon per directory, managed through its pid file like :class:`AnvilNode`."""

    name = "kubo"
    start_timeout = 60.0

    def __init__(self, config: KuboConfig, binary: Path | None = None) -> None:
        super().__init__(config.directory, config.api_url, binary)
        self.config = config

    @property
    def api_url(self) -> str:
        return self._endpoint

    def environment(self) -> dict[str, str]:
        """The environment for ``ipfs`` commands on this node's repository."""
        return {**os.environ, "IPFS_PATH": str(self.config.repo_dir)}

    def _find_binary(self) -> Path:
        return find_ipfs()

    def _command(self, binary: Path) -> list[str]:
        return [str(binary), "daemon", *(["--offline"] if self.config.offline else [])]

    def _recorded_settings(self) -> dict[str, Any]:
        return {"repo": str(self.config.repo_dir), "offline": self.config.offline}

    def _describe(self, endpoint: str) -> str | None:
        identity = _identify(endpoint)
        if identity is None:
            return None
        return identity.get("AgentVersion") or f"peer {identity['ID']}"

    def _prepare(self) -> None:
        """Initialise the repository if new, then write the overrides over its config."""
        super()._prepare()
        if not (self.config.repo_dir / "config").is_file():
            self._ipfs("init", "--profile", "test", "--empty-repo")
        self._apply_repo_overrides()

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

    def _apply_repo_overrides(self) -> None:
        """Write the overrides into the repository's config file (daemon not running)."""
        config_file = self.config.repo_dir / "config"
        document = json.loads(config_file.read_text())
        for dotted, value in self.config.repo_overrides().items():
            *parents, leaf = dotted.split(".")
            section = document
            for key in parents:
                section = section.setdefault(key, {})
            section[leaf] = value
        write_atomically(config_file, (json.dumps(document, indent=2) + "\n").encode())


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

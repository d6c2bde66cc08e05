"""A local Anvil node: found in ``node_modules``, started detached, stopped cleanly.

Layout of a state directory (``anvil/state/`` by default)::

    state.json   chain state: loaded at start, written by Anvil on a clean stop, and by
                 :meth:`AnvilNode.checkpoint` (or every ``state_interval`` seconds)
    anvil.pid    JSON pid record: pid, RPC URL, chain id, the binary
    anvil.log    Anvil's output

Anvil writes ``state.json`` only when it stops on a signal it handles, on its periodic
dump, or when asked; a ``kill -9`` loses whatever was mined after the last write. The
node is bound to 127.0.0.1 unless told otherwise: its dev accounts are unlocked, and an
open port would let anyone on the network spend them.
"""

import gzip
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from flare.node.process import DetachedService, NodeError, PidRecord

DEFAULT_STATE_DIR = Path("anvil") / "state"
HARDFORK = "prague"
"""EIP-2537's BLS12-381 precompiles, which every VRF and possession proof needs."""
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_SERVICE = "anvil"
_log = logging.getLogger(__name__)


def find_anvil() -> Path:
    """The Anvil binary: ``$FLARE_ANVIL``, then ``node_modules``, then ``PATH``.

    The platform binary inside ``@foundry-rs/anvil-<os>-<arch>`` is preferred to the
    ``node_modules/.bin/anvil`` wrapper: the wrapper is a Node process that spawns the real
    one, so its pid is not Anvil's.
    """
    override = os.environ.get("FLARE_ANVIL")
    if override:
        if not Path(override).is_file():
            raise NodeError(f"FLARE_ANVIL names {override}, which is not a file")
        return Path(override)
    system = "win32" if sys.platform == "win32" else platform.system().lower()
    arch = _ARCHITECTURES.get(platform.machine().lower(), platform.machine().lower())
    name = "anvil.exe" if system == "win32" else "anvil"
    for root in _search_roots():
        modules = root / "node_modules"
        for candidate in (
            modules / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / name,
            modules / ".bin" / name,
        ):
            if candidate.is_file():
                return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise NodeError(
        "no anvil binary: run scripts/install_tools.sh (npm @foundry-rs/anvil), put anvil on "
        "PATH, or set FLARE_ANVIL"
    )


def _search_roots() -> list[Path]:
    """The working directory, its parents, and the checkout this package lives in."""
    cwd = Path.cwd().resolve()
    checkout = Path(__file__).resolve().parents[2]
    return list(dict.fromkeys([cwd, *cwd.parents, checkout]))


@dataclass(frozen=True)
class AnvilConfig:
    """How to run one Anvil node."""

    state_dir: Path = DEFAULT_STATE_DIR
    port: int = 8545
    chain_id: int = 31337
    block_time: float | None = None
    host: str = "127.0.0.1"
    state_interval: int | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "anvil.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "anvil.log"

    def command(self, binary: Path) -> list[str]:
        """The Anvil command line for this configuration."""
        command = [
            str(binary),
            "--host", self.host,
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--hardfork", HARDFORK,
            "--state", str(self.state_file),
        ]  # fmt: skip
        if self.block_time is not None:
            command += ["--block-time", f"{self.block_time:g}"]
        if self.state_interval is not None:
            command += ["--state-interval", str(self.state_interval)]
        return command


@dataclass(frozen=True)
class NodeStatus:
    """What ``flare node status`` reports."""

    running: bool
    pid: int | None
    rpc_url: str | None
    chain_id: int | None
    block_number: int | None


class AnvilNode(DetachedService):
    """One Anvil process per state directory, managed through its pid file.

    ``start`` and ``stop`` may run in different processes (``flare node up`` / ``down``);
    a node started here is also reaped here, so no zombie is left behind.
    """

    service = "anvil"

    def __init__(self, config: AnvilConfig, binary: Path | None = None) -> None:
        self.config = config
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.config.pid_file

    @property
    def rpc_url(self) -> str:
        return self.config.rpc_url

    def start(self, timeout: float = 30.0) -> PidRecord:
        """Start Anvil detached and wait until it answers with the configured chain id."""
        config = self.config
        running = PidRecord.read(config.pid_file)
        if running is not None and running.alive():
            raise NodeError(
                f"anvil already runs for {config.state_dir} (pid {running.pid}, "
                f"{running.endpoint}); `flare node down` first"
            )
        if _chain_id(config.rpc_url) is not None:
            raise NodeError(f"another node already answers on {config.rpc_url}")
        binary = self._binary or find_anvil()
        config.state_dir.mkdir(parents=True, exist_ok=True)
        with config.log_file.open("ab") as log:
            process = subprocess.Popen(
                config.command(binary),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the terminal of `flare node up`
            )
        self._process = process
        record = PidRecord(
            _SERVICE,
            process.pid,
            str(binary),
            config.rpc_url,
            {"chain_id": config.chain_id, "state_file": str(config.state_file)},
        )
        record.write(config.pid_file)
        try:
            self._wait_ready(process, timeout)
        except BaseException:
            self.kill()
            raise
        return record

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise NodeError(f"anvil exited at start:\n{self.log_tail()}")
            chain_id = _chain_id(self.rpc_url)
            if chain_id is not None:
                if chain_id != self.config.chain_id:
                    raise NodeError(f"{self.rpc_url} is another node (chain id {chain_id})")
                return
            time.sleep(0.05)
        raise NodeError(f"anvil did not answer on {self.rpc_url} within {timeout:g} s")

    def status(self) -> NodeStatus:
        """Whether the recorded process runs, and what its RPC endpoint says."""
        record = PidRecord.read(self.config.pid_file)
        if record is None or not record.alive():
            return NodeStatus(False, None, None, None, None)
        return NodeStatus(
            True,
            record.pid,
            record.endpoint,
            _chain_id(record.endpoint),
            _rpc_int(record.endpoint, "eth_blockNumber"),
        )

    def checkpoint(self) -> Path:
        """Write the current chain state to ``state.json`` now, atomically.

        After this returns, a crash of the node loses nothing mined so far.
        """
        dumped = _rpc(self.rpc_url, "anvil_dumpState")
        if not isinstance(dumped, str):
            raise NodeError(f"{self.rpc_url} did not dump its state")
        state = gzip.decompress(bytes.fromhex(dumped.removeprefix("0x")))
        temporary = self.config.state_file.with_name("state.json.tmp")
        temporary.write_bytes(state)
        os.replace(temporary, self.config.state_file)
        return self.config.state_file

    def log_tail(self, lines: int = 20) -> str:
        """The end of ``anvil.log``, for error messages."""
        try:
            text = self.config.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _rpc(url: str, method: str) -> object:
    """One JSON-RPC request with no retries; ``None`` when the node is unreachable."""
    try:
        response = requests.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=5
        )
        return response.json().get("result")
    except (requests.RequestException, ValueError):
        return None


def _rpc_int(url: str, method: str) -> int | None:
    result = _rpc(url, method)
    return int(result, 16) if isinstance(result, str) else None


def _chain_id(url: str) -> int | None:
    return _rpc_int(url, "eth_chainId")

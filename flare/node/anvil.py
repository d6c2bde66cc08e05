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
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flare.node.process import DetachedService, NodeError, find_binary, write_atomically

DEFAULT_STATE_DIR = Path("anvil") / "state"
HARDFORK = "prague"
"""EIP-2537's BLS12-381 precompiles, which every VRF and possession proof needs."""
PUBLIC_CHAIN_BLOCK_TIME = 12.0
"""Seconds per slot on Ethereum and its testnets."""
PUBLIC_CHAIN_GAS_LIMIT = 8_000_000
"""A block gas limit the deployment (4.4M gas, 6.7M with the sender's margin) still fits
under, and that a busy round can half fill, which is when EIP-1559 raises the base fee."""
_NPM_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
"""``platform.machine()`` names as ``@foundry-rs/anvil-<os>-<arch>`` packages spell them."""


def find_anvil() -> Path:
    """The Anvil binary: ``$FLARE_ANVIL``, then ``node_modules``, then ``PATH``.

    The platform binary inside ``@foundry-rs/anvil-<os>-<arch>`` is preferred to the
    ``node_modules/.bin/anvil`` wrapper: the wrapper is a Node process that spawns the real
    one, so its pid is not Anvil's.
    """
    system = "win32" if sys.platform == "win32" else platform.system().lower()
    arch = _NPM_ARCHITECTURES.get(platform.machine().lower(), platform.machine().lower())
    name = "anvil.exe" if system == "win32" else "anvil"
    candidates = (
        candidate
        for root in _search_roots()
        for candidate in (
            root / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / name,
            root / "node_modules" / ".bin" / name,
        )
    )
    return find_binary(
        "anvil", "FLARE_ANVIL", candidates, "run scripts/install_tools.sh (npm @foundry-rs/anvil)"
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
    gas_limit: int | None = None

    @classmethod
    def public_chain(cls, block_time: float | None = None, **settings: Any) -> "AnvilConfig":
        """A node that mines like a public chain: blocks on a timer (never one per
        transaction), so every transaction waits in the pool, and a block gas limit low
        enough that a busy round raises the base fee (docs/anvil.md §7). ``block_time``
        defaults to Ethereum's twelve seconds."""
        seconds = PUBLIC_CHAIN_BLOCK_TIME if block_time is None else block_time
        return cls(block_time=seconds, gas_limit=PUBLIC_CHAIN_GAS_LIMIT, **settings)

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"


class AnvilNode(DetachedService):
    """One Anvil process per state directory, managed through its pid file."""

    name = "anvil"
    start_timeout = 30.0

    def __init__(self, config: AnvilConfig, binary: Path | None = None) -> None:
        super().__init__(config.state_dir, config.rpc_url, binary)
        self.config = config

    @property
    def rpc_url(self) -> str:
        return self._endpoint

    def _find_binary(self) -> Path:
        return find_anvil()

    def _command(self, binary: Path) -> list[str]:
        config = self.config
        command = [
            str(binary),
            "--host", config.host,
            "--port", str(config.port),
            "--chain-id", str(config.chain_id),
            "--hardfork", HARDFORK,
            "--state", str(config.state_file),
        ]  # fmt: skip
        if config.block_time is not None:
            command += ["--block-time", f"{config.block_time:g}"]
        if config.state_interval is not None:
            command += ["--state-interval", str(config.state_interval)]
        if config.gas_limit is not None:
            command += ["--gas-limit", str(config.gas_limit)]
        return command

    def _recorded_settings(self) -> dict[str, Any]:
        return {"chain_id": self.config.chain_id, "state_file": str(self.config.state_file)}

    def _describe(self, endpoint: str) -> str | None:
        chain_id = _chain_id(endpoint)
        if chain_id is None:
            return None
        return f"chain {chain_id}, block {_rpc_int(endpoint, 'eth_blockNumber')}"

    def _ready(self) -> bool:
        """Anvil answers, and with the configured chain id (not some other node's)."""
        chain_id = _chain_id(self.rpc_url)
        if chain_id is not None and chain_id != self.config.chain_id:
            raise NodeError(f"{self.rpc_url} is another node (chain id {chain_id})")
        return chain_id is not None

    def checkpoint(self) -> Path:
        """Write the current chain state to ``state.json`` now, atomically.

        After this returns, a crash of the node loses nothing mined so far.
        """
        dumped = _rpc(self.rpc_url, "anvil_dumpState")
        if not isinstance(dumped, str):
            raise NodeError(f"{self.rpc_url} did not dump its state")
        write_atomically(
            self.config.state_file, gzip.decompress(bytes.fromhex(dumped.removeprefix("0x")))
        )
        return self.config.state_file


def _rpc(url: str, method: str) -> object:
    """One JSON-RPC request with no retries; ``None`` when the node is unreachable."""
    try:
        response = httpx.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=5
        )
        reply = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return reply.get("result") if isinstance(reply, dict) else None


def _rpc_int(url: str, method: str) -> int | None:
    result = _rpc(url, method)
    return int(result, 16) if isinstance(result, str) else None


def _chain_id(url: str) -> int | None:
    return _rpc_int(url, "eth_chainId")

"""Network configuration: everything a Flare process changes to move from Anvil to a testnet.

A participant or task process knows only a chain (RPC URL, chain id, the contract's
deployment), an IPFS node (its RPC API URL) and its own keys. All of it lives in one
small file, TOML or JSON with the same flat keys, so that leaving the local Anvil node
for a public network is an edit of that file and nothing else (docs/testnet.md)::

    chain_id = 11155111
    rpc_url = "https://rpc.example.org"
    deployment = "deployments/11155111.json"   # from `flare deploy`, relative to this file
    confirmations = 2
    max_fee_gwei = 50.0
    priority_fee_gwei = 2.0
    poll_interval = 12.0
    ipfs_api_url = "http://127.0.0.1:5001"
    keystore = "keys/device-7"
    password_file = "keys/device-7.password"

The defaults are a local Anvil node and Kubo daemon. A device without a daemon of its own
names a gateway's Kubo RPC endpoint instead, with the file holding its credentials, and
may have a pinning service keep what it publishes (docs/storage.md, "Remote endpoints")::

    ipfs_api_url = "https://ipfs-rpc.example.org"
    ipfs_auth_header_file = "keys/gateway.header"    # Authorization: Bearer …
    pinning_service_url = "https://pin.example.org/psa"
    pinning_token_file = "keys/pinning.token"

A ``state`` path instead selects the embedded :class:`~flare.chain.InMemoryChain`
journaled to SQLite, and ``store`` a local :class:`~flare.storage.DirectoryStore` (the
IPFS settings are then unused); the journal has one writer, so that mode serves one
process at a time (commands run one after another), never concurrent participants.
"""

import json
import os
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flare.chain import ANVIL_CHAIN_ID, ChainConnector, InMemoryChain, SenderAccount
from flare.errors import ConfigError
from flare.storage import DirectoryStore, KuboStore, PinningService, StorageProvider
from flare.storage.remote import check_credential_transport, read_header_file, read_token_file

if TYPE_CHECKING:
    from flare.chain.rpc.chain import RpcChain, RpcSettings

DEV_FUNDING_WEI = 10**21
"""1,000 ether per simulated participant on a development node: far more than any task's gas."""
_PATH_FIELDS = (
    "deployment",
    "keystore",
    "password_file",
    "state",
    "store",
    "ipfs_auth_header_file",
    "pinning_token_file",
)


@dataclass(frozen=True)
class NetworkConfig:
    """Where the chain, the contract, the IPFS node and this process's keys are.

    ``confirmations`` is how many blocks, the including one first, a transaction waits
    for before it counts (1 on Anvil, which never reorganises); the fee caps bound what
    an unattended device may pay per gas; ``poll_interval`` is how often a process looks
    at the chain (about a block time: polling faster only loads the RPC node). Without a
    ``deployment`` the file ``flare deploy`` writes by default is used,
    ``deployments/<chain_id>.json`` under the working directory.
    """

    chain_id: int = ANVIL_CHAIN_ID
    rpc_url: str | None = "http://127.0.0.1:8545"
    deployment: Path | None = None
    confirmations: int = 1
    max_fee_gwei: float = 500.0
    priority_fee_gwei: float = 5.0
    poll_interval: float = 1.0
    ipfs_api_url: str = "http://127.0.0.1:5001"
    ipfs_timeout: float = 120.0
    ipfs_fetch_timeout: float = 30.0
    ipfs_auth_header_file: Path | None = None
    pinning_service_url: str | None = None
    pinning_token_file: Path | None = None
    keystore: Path | None = None
    password_file: Path | None = None
    password_env: str = "FLARE_KEYSTORE_PASSWORD"
    state: Path | None = None
    store: Path | None = None

    def __post_init__(self) -> None:
        if self.chain_id < 1:
            raise ConfigError("chain_id must be positive")
        if self.confirmations < 1:
            raise ConfigError("confirmations must be at least 1 (the block that mines it)")
        if not 0 < self.priority_fee_gwei <= self.max_fee_gwei:
            raise ConfigError("fee caps need 0 < priority_fee_gwei <= max_fee_gwei")
        if not self.poll_interval > 0 or not self.ipfs_timeout > 0:
            raise ConfigError("poll_interval and ipfs_timeout must be positive")
        if not self.ipfs_fetch_timeout > 0:
            raise ConfigError("ipfs_fetch_timeout must be positive")
        if (self.pinning_service_url is None) != (self.pinning_token_file is None):
            raise ConfigError("pinning_service_url and pinning_token_file go together")

    @property
    def local(self) -> bool:
        """Whether the chain is the embedded journaled one rather than a JSON-RPC node."""
        return self.state is not None

    def with_overrides(self, **values: Any) -> "NetworkConfig":
        """This configuration with every non-``None`` value of ``values`` replacing its own.

        Choosing a local ``state`` drops the RPC URL, since the two name different chains.
        """
        chosen = {name: value for name, value in values.items() if value is not None}
        if chosen.get("state") is not None:
            chosen.setdefault("rpc_url", None)
        return replace(self, **chosen)


def load_network_config(path: str | os.PathLike[str] | None) -> NetworkConfig:
    """Read a ``.toml`` or ``.json`` network file; ``None`` gives the local Anvil defaults.

    Relative paths inside the file are relative to the file, so a directory holding the
    file, the deployment and the keys can be copied to a device as a unit.
    """
    if path is None:
        return NetworkConfig()
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read network config {source}: {exc}") from exc
    try:
        values = json.loads(text) if source.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source} is not valid {source.suffix[1:] or 'TOML'}: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{source} must hold one table of settings")
    known = {f.name for f in fields(NetworkConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown settings {unknown}; known: {sorted(known)}")
    for name in _PATH_FIELDS:
        if values.get(name) is not None:
            values[name] = source.parent / Path(values[name]).expanduser()
    try:
        return NetworkConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def read_password(config: NetworkConfig) -> str:
    """The keystore password: the password file if one is set, else the environment.

    Never from a command-line argument: those are visible to every user in ``ps``.
    Only the final line break of a password file is dropped.
    """
    if config.password_file is not None:
        try:
            text = config.password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read password file {config.password_file}: {exc}") from exc
        return text.removesuffix("\n").removesuffix("\r")
    password = os.environ.get(config.password_env)
    if password is None:
        raise ConfigError(f"no keystore password: set a password file or ${config.password_env}")
    return password


def open_store(config: NetworkConfig) -> StorageProvider:
    """The blob store: a local directory when ``store`` is set, otherwise the Kubo RPC
    endpoint, local or remote, with its credentials and pinning service if configured.

    Credentials are read here, once, and refused for an endpoint that would expose them.
    """
    if config.store is not None:
        return DirectoryStore(config.store)
    headers: dict[str, str] = {}
    if config.ipfs_auth_header_file is not None:
        check_credential_transport(config.ipfs_api_url, "IPFS endpoint")
        headers = read_header_file(config.ipfs_auth_header_file)
    pinning = None
    if config.pinning_service_url is not None and config.pinning_token_file is not None:
        check_credential_transport(config.pinning_service_url, "pinning service")
        token = read_token_file(config.pinning_token_file)
        pinning = PinningService(config.pinning_service_url, token, timeout=config.ipfs_timeout)
    return KuboStore(
        config.ipfs_api_url,
        timeout=config.ipfs_timeout,
        fetch_timeout=config.ipfs_fetch_timeout,
        headers=headers,
        pinning=pinning,
    )


@contextmanager
def open_chain(
    config: NetworkConfig | None,
    account: SenderAccount | None = None,
    *,
    read_only: bool = False,
    dev_accounts: Sequence[str] | None = None,
    durable: bool = True,
) -> Iterator[ChainConnector]:
    """The coordination contract, sending as ``account`` (read-only without one); every
    command and the simulation open their chain here, and it is closed on exit.

    ``None`` is a fresh embedded chain in memory, gone on exit. A ``state`` path is the
    embedded chain journaled to that SQLite file; ``read_only`` opens an existing journal
    without writing to it, as an auditor must, and ``durable=False`` journals for this
    process only (:mod:`flare.chain.memory.journal`). Anything else is the deployment
    file's coordinator through the JSON-RPC node at ``rpc_url``: a deployment of another
    artifact is refused, and logs are read from the deployment's block on.

    ``dev_accounts`` asks for a development node (Anvil), whose chain is whatever it serves:
    each account is funded with ``anvil_setBalance``, and without a deployment file a fresh
    coordinator is deployed from Anvil's first dev account.
    """
    if config is None:
        with InMemoryChain() as chain:
            yield chain if account is None else chain.as_sender(account)
        return
    if config.state is not None:
        if read_only and not config.state.is_file():
            raise ConfigError(f"no chain state at {config.state}")
        if not config.state.parent.is_dir():
            raise ConfigError(f"no directory for the chain state {config.state}")
        with InMemoryChain(config.state, read_only=read_only, durable=durable) as chain:
            yield chain if account is None else chain.as_sender(account)
        return
    if config.rpc_url is None:
        raise ConfigError("no chain: set rpc_url, or state for the embedded chain")
    chain = _connect_rpc(config, config.rpc_url, dev_accounts)
    yield chain if account is None else chain.as_sender(account)


def _connect_rpc(
    config: NetworkConfig, rpc_url: str, dev_accounts: Sequence[str] | None
) -> "RpcChain":
    """The deployment of ``config`` through the JSON-RPC connector, with its caps and waits.

    Imported here so that the embedded mode never loads the RPC client. A development node
    gets the connector's dev-node timings (it mines at once); any other chain the testnet ones.
    """
    from flare.chain.rpc.chain import RpcSettings
    from flare.chain.rpc.deployment import Deployment
    from flare.chain.rpc.fees import GWEI, FeePolicy

    dev_node = dev_accounts is not None or config.chain_id == ANVIL_CHAIN_ID
    base = RpcSettings.dev_node() if dev_node else RpcSettings()
    settings = replace(
        base,
        fees=FeePolicy(
            max_fee_cap=round(config.max_fee_gwei * GWEI),
            priority_fee_cap=round(config.priority_fee_gwei * GWEI),
        ),
        transactions=replace(base.transactions, confirmations=config.confirmations),
    )
    if dev_accounts is None:
        deployment = Deployment.load(config.deployment, chain_id=config.chain_id)
        return deployment.connect(rpc_url, settings=settings)
    chain = _dev_deployment(config, rpc_url, settings)
    _fund_dev_accounts(chain, rpc_url, dev_accounts)
    return chain


def _dev_deployment(config: NetworkConfig, rpc_url: str, settings: "RpcSettings") -> "RpcChain":
    """The coordinator the deployment file names on a development node, or a fresh one."""
    from flare.chain.rpc.accounts import dev_account
    from flare.chain.rpc.deployment import Deployment, deploy

    if config.deployment is not None:
        deployment = Deployment.load(config.deployment)
    else:
        deployment = deploy(rpc_url, dev_account(), settings=settings)
    return deployment.connect(rpc_url, settings=settings)


def _fund_dev_accounts(chain: "RpcChain", rpc_url: str, accounts: Sequence[str]) -> None:
    """Give simulated participants, who have deterministic keys and no ether, their gas."""
    try:
        for address in accounts:
            chain.rpc.request("anvil_setBalance", address, hex(DEV_FUNDING_WEI))
    except Exception as exc:  # the node's own error says which method it lacks
        raise ConfigError(
            f"{rpc_url} is not a development node that can fund simulated participants "
            f"({exc}); `flare simulate --chain` runs only against Anvil"
        ) from exc

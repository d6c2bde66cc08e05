"""Deploying ``FlareCoordinator`` and the deployment file every other command reads.

A deployment file is the one thing a participant needs besides an RPC URL and a key: which
chain, which address, from which block to read logs, and which artifact was deployed (so a
Flare release whose ABI differs refuses to talk to it rather than misreading it). It is
plain JSON, written atomically, by default at ``deployments/<chain-id>.json``.
"""

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from flare.chain.api.errors import ChainError, decode_revert
from flare.chain.rpc.chain import RpcChain, RpcSettings
from flare.chain.rpc.contract import CONTRACT_NAME, Artifact, ContractArtifactError, load_artifact
from flare.chain.rpc.transactions import CallReverted, SigningAccount
from flare.chain.rpc.transport import Provider, WrongChainError
from flare.errors import ConfigError

DEPLOYMENTS_DIR = Path("deployments")
FORMAT_VERSION = 1
_FIELDS = {
    "format": int,
    "contract": str,
    "chain_id": int,
    "address": str,
    "deploy_block": int,
    "transaction_hash": str,
    "deployer": str,
    "artifact_sha256": str,
}


@dataclass(frozen=True)
class Deployment:
    """Where one ``FlareCoordinator`` lives, and what was deployed there."""

    chain_id: int
    address: str
    deploy_block: int
    transaction_hash: str
    deployer: str
    artifact_sha256: str
    contract: str = CONTRACT_NAME
    format: int = FORMAT_VERSION

    @staticmethod
    def default_path(chain_id: int) -> Path:
        """``deployments/<chain-id>.json`` under the working directory."""
        return DEPLOYMENTS_DIR / f"{chain_id}.json"

    def save(self, path: Path | None = None) -> Path:
        """Write the file atomically (a reader never sees half of it); return its path."""
        path = path or self.default_path(self.chain_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: Path | None = None, *, chain_id: int | None = None) -> "Deployment":
        """Read ``path``, or ``deployments/<chain_id>.json``; check every field."""
        if path is None:
            if chain_id is None:
                raise ConfigError("name a deployment file or a chain id")
            path = cls.default_path(chain_id)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"no deployment file at {path}; run `flare deploy` first") from exc
        except (OSError, ValueError) as exc:
            raise ConfigError(f"unreadable deployment file {path}: {exc}") from exc
        deployment = cls(**_checked_fields(document, path))
        if chain_id is not None and deployment.chain_id != chain_id:
            raise ConfigError(f"{path} is for chain {deployment.chain_id}, not {chain_id}")
        return deployment

    def connect(
        self,
        rpc: str | Provider,
        *,
        account: SigningAccount | None = None,
        settings: RpcSettings | None = None,
    ) -> RpcChain:
        """A connector to this deployment; refuses if the shipped artifact differs."""
        shipped = load_artifact().sha256
        if shipped != self.artifact_sha256:
            raise ContractArtifactError(
                f"the contract at {self.address} was deployed from artifact "
                f"{self.artifact_sha256[:12]}…, this Flare ships {shipped[:12]}…; "
                "use the matching Flare version or deploy again"
            )
        return RpcChain(
            rpc,
            self.address,
            chain_id=self.chain_id,
            account=account,
            settings=settings,
            first_block=self.deploy_block,
        )


def _checked_fields(document: Any, path: Path) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ConfigError(f"{path} is not a deployment file")
    for name, kind in _FIELDS.items():
        if not isinstance(document.get(name), kind) or isinstance(document.get(name), bool):
            raise ConfigError(f"{path}: field {name!r} is missing or not a {kind.__name__}")
    if document["format"] != FORMAT_VERSION or document["contract"] != CONTRACT_NAME:
        raise ConfigError(f"{path}: not a version-{FORMAT_VERSION} {CONTRACT_NAME} deployment")
    fields = {name: document[name] for name in _FIELDS}
    for name in ("address", "deployer"):
        try:
            fields[name] = to_checksum_address(fields[name])
        except ValueError as exc:
            raise ConfigError(f"{path}: {name} {fields[name]!r} is not an address") from exc
    return fields


def deploy(
    rpc: str | Provider,
    account: SigningAccount,
    *,
    chain_id: int | None = None,
    settings: RpcSettings | None = None,
    artifact: Artifact | None = None,
) -> Deployment:
    """Deploy ``FlareCoordinator`` from ``account``; the caller saves the result.

    With ``chain_id`` the node must serve that chain (:class:`WrongChainError`); without
    it the node's own chain id is used and recorded.
    """
    settings = settings or RpcSettings()
    artifact = artifact or load_artifact()
    client = settings.client(rpc)
    actual = client.chain_id()
    if chain_id is not None and actual != chain_id:
        raise WrongChainError(chain_id, actual)
    sender = settings.sender(client, actual)
    try:
        mined = sender.send(account, None, artifact.bytecode)
    except CallReverted as reverted:
        raise ChainError(f"deployment reverted: {decode_revert(reverted.data)}") from reverted
    if mined.contract_address is None:
        raise ChainError(f"transaction 0x{mined.transaction_hash.hex()} created no contract")
    return Deployment(
        chain_id=actual,
        address=to_checksum_address(mined.contract_address),
        deploy_block=mined.block_number,
        transaction_hash="0x" + mined.transaction_hash.hex(),
        deployer=to_checksum_address(account.address),
        artifact_sha256=artifact.sha256,
    )

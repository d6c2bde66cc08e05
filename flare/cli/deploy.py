"""``flare deploy``: put the shipped ``FlareCoordinator`` on a chain, write its deployment file."""

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from flare.cli import check_output_file, integer_at_least, positive_finite_float
from flare.errors import ConfigError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

PASSWORD_VARIABLE = "FLARE_KEYSTORE_PASSWORD"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "deploy",
        help="deploy the coordination contract and write its deployment file",
        description="Deploy FlareCoordinator from the artifact shipped with Flare (no compiler "
        "needed), signing locally, and write deployments/<chain-id>.json for the other "
        "commands.",
    )
    p.add_argument("--rpc", default="http://127.0.0.1:8545", help="JSON-RPC URL of the node")
    p.add_argument(
        "--chain-id",
        type=integer_at_least(1, 2**64 - 1),
        help="refuse a node that serves another chain",
    )
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key-file", type=Path, help="file holding one hex private key")
    keys.add_argument("--keystore", type=Path, help="Web3 Secret Storage (v3) keyfile")
    keys.add_argument(
        "--dev-account",
        action="store_true",
        help="Anvil's first dev account: a public key, for local chains only",
    )
    p.add_argument(
        "--password-file",
        type=Path,
        help=f"keystore password (default ${PASSWORD_VARIABLE}, else a prompt)",
    )
    p.add_argument("--out", type=Path, help="deployment file (default deployments/<chain-id>.json)")
    p.add_argument("--force", action="store_true", help="overwrite an existing deployment file")
    p.add_argument(
        "--max-fee-gwei", type=positive_finite_float, default=500.0, help="refuse fees above this"
    )
    p.add_argument(
        "--confirmations", type=integer_at_least(1), default=1, help="blocks to wait for"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from flare.chain.rpc.chain import RpcSettings
    from flare.chain.rpc.deployment import Deployment, deploy
    from flare.chain.rpc.fees import GWEI, FeePolicy
    from flare.chain.rpc.transactions import TransactionSettings
    from flare.chain.rpc.transport import HttpProvider, RpcClient

    if args.out is not None:
        _check_out(args.out, args.force)
    account = _account(args)
    max_fee = int(args.max_fee_gwei * GWEI)
    settings = RpcSettings(
        fees=FeePolicy(max_fee_cap=max_fee, priority_fee_cap=min(max_fee, 5 * GWEI)),
        transactions=TransactionSettings(confirmations=args.confirmations),
    )
    chain_id = args.chain_id
    if chain_id is None:  # the file name needs it before anything is spent
        chain_id = RpcClient(HttpProvider(args.rpc, settings.request_timeout)).chain_id()
    out = args.out or Deployment.default_path(chain_id)
    _check_out(out, args.force)
    deployment = deploy(args.rpc, account, chain_id=chain_id, settings=settings)
    deployment.save(out)
    print(
        f"FlareCoordinator at {deployment.address} on chain {deployment.chain_id} "
        f"(block {deployment.deploy_block}, tx {deployment.transaction_hash}); wrote {out}"
    )
    return 0


def _check_out(out: Path, force: bool) -> None:
    """Refuse a deployment file that cannot be written, or would be overwritten unasked."""
    check_output_file(out, "--out")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to replace it, or --out another file")


def _account(args: argparse.Namespace) -> "LocalAccount":
    from flare.chain.rpc.accounts import account_from_key_file, account_from_keystore, dev_account

    if args.dev_account:
        return dev_account()
    if args.key_file is not None:
        return account_from_key_file(args.key_file)
    return account_from_keystore(args.keystore, _password(args.password_file))


def _password(path: Path | None) -> str:
    if path is not None:
        try:
            return path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from exc
    if PASSWORD_VARIABLE in os.environ:
        return os.environ[PASSWORD_VARIABLE]
    if not sys.stdin.isatty():
        raise ConfigError(f"no keystore password: use --password-file or ${PASSWORD_VARIABLE}")
    return getpass.getpass("keystore password: ")

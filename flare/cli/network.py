"""Where the chain, the contract, the IPFS node and this process's keys are, as every command
that reaches a network takes them: a network file (:mod:`flare.config`) with the command
line on top.
"""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from flare.cli import check_output_directory, integer_at_least
from flare.errors import ConfigError

if TYPE_CHECKING:
    from flare.config import NetworkConfig
    from flare.crypto.identity import ParticipantKeys

CHAIN_ID_MAX = 2**64 - 1
"""Nodes take 64-bit chain ids."""


def add_network_options(parser: argparse.ArgumentParser, *, keys: bool) -> None:
    """The options that say where chain, contract, IPFS node (and keys) are."""
    group = parser.add_argument_group(
        "network", "where the chain and the blobs are (default: local Anvil and Kubo)"
    )
    group.add_argument("--config", type=Path, help="network file, TOML or JSON")
    group.add_argument("--rpc", help="JSON-RPC URL of the chain node")
    group.add_argument(
        "--chain-id", type=integer_at_least(1, CHAIN_ID_MAX), help="chain id the node must serve"
    )
    group.add_argument("--deployment", type=Path, help="file written by `flare deploy`")
    group.add_argument("--ipfs", help="Kubo RPC API URL")
    group.add_argument(
        "--state",
        type=Path,
        help="embedded chain journaled to this SQLite file instead of a node "
        "(one process at a time)",
    )
    group.add_argument("--store", type=Path, help="blob directory instead of Kubo")
    if keys:
        group.add_argument(
            "--keystore", type=Path, help="keys directory (`flare participant keys new`)"
        )
        group.add_argument(
            "--password-file", type=Path, help="keystore password (else $FLARE_KEYSTORE_PASSWORD)"
        )


def network_config(args: argparse.Namespace) -> "NetworkConfig":
    """The configuration file (or the local defaults) with the command line on top."""
    from flare.config import load_network_config

    config = load_network_config(args.config).with_overrides(
        rpc_url=args.rpc,
        chain_id=args.chain_id,
        deployment=args.deployment,
        ipfs_api_url=args.ipfs,
        state=args.state,
        store=args.store,
        keystore=getattr(args, "keystore", None),
        password_file=getattr(args, "password_file", None),
    )
    if config.store is not None:
        check_output_directory(config.store, "--store")
    return config


def keystore_dir(config: "NetworkConfig") -> Path:
    """The configured keys directory, which every sending command needs."""
    if config.keystore is None:
        raise ConfigError("no keys: give --keystore (made by `flare participant keys new`)")
    return config.keystore


def load_keys(config: "NetworkConfig") -> "ParticipantKeys":
    """The participant keys the configuration names, decrypted."""
    from flare.config import read_password
    from flare.crypto.identity import ParticipantKeys

    return ParticipantKeys.load(keystore_dir(config), read_password(config))

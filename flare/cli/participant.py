"""``flare participant keys new|run|withdraw``: one device of the federation, as its own
process.

``run`` is long-lived: it registers, then follows the task on chain and acts once per
round attempt until the task completes or it receives SIGTERM / SIGINT (it finishes the
action under way and exits 0). Killed outright, it resumes from chain state on restart.
``withdraw`` takes the device's stake back from a staked task.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from flare.cli import add_threads_option, apply_threads, integer_at_least
from flare.cli.network import add_network_options, keystore_dir, load_keys, network_config
from flare.cli.options import add_client_dp_options, format_wei, read_admission_list, wei_amount
from flare.errors import ConfigError

if TYPE_CHECKING:
    from flare.privacy import DPParams


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "participant",
        help="make participant keys; run a participant process",
        description="A participant trains on its own data, submits updates, and serves on "
        "the committee when its VRF draws a seat.",
    )
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))

    keys = actions.add_parser("keys", help="participant keystores")
    key_actions = keys.add_subparsers(dest="key_action", required=True, parser_class=type(p))
    new = key_actions.add_parser("new", help="create an Ethereum account and a BLS key")
    new.add_argument("--keystore", type=Path, required=True, help="directory to create")
    new.add_argument(
        "--password-file", type=Path, help="keystore password (else $FLARE_KEYSTORE_PASSWORD)"
    )
    new.add_argument(
        "--allow-weak-password",
        action="store_true",
        help="accept a password under 8 characters, all white space, or with control characters",
    )
    new.set_defaults(handler=run_keys_new)

    run = actions.add_parser("run", help="follow a task and take part until it completes")
    run.add_argument("--task", type=int, required=True)
    run.add_argument("--data", type=Path, required=True, help="this client's .npz (X, y)")
    run.add_argument(
        "--state-dir", type=Path, help="encoder state (default: under the keystore directory)"
    )
    run.add_argument("--name", help="name in the log (default: the address)")
    run.add_argument(
        "--admit",
        type=Path,
        metavar="FILE",
        help="a permissioned task's admission list (one address a line), to prove this "
        "device's admission from",
    )
    run.add_argument(
        "--stake",
        type=wei_amount,
        metavar="AMOUNT",
        help="in a staked task, bond AMOUNT (wei, or e.g. 0.5ether) when registering; more "
        "stake, more seats (default: the task's minimum)",
    )
    run.add_argument("--codec", default="none", help="none, gzip or powersgd")
    run.add_argument("--rank", type=int, default=4, help="PowerSGD rank")
    run.add_argument("--epochs", type=int, default=2, help="local epochs per round")
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--learning-rate", type=float, default=0.05)
    run.add_argument("--attack", help="experiments: send a corrupted update (e.g. sign-flip)")
    run.add_argument("--attack-strength", type=float, help="the attack's main parameter")
    run.add_argument(
        "--dishonest-member",
        action="store_true",
        help="experiments: as a committee member, back plain FedAvg of every update",
    )
    add_client_dp_options(
        run,
        "each update is clipped and noised before encoding, the noise from the operating "
        "system (docs/privacy.md); off unless --dp-clip is given",
        calibration=False,
    )
    add_network_options(run, keys=True)
    _add_remote_store_options(run)
    add_threads_option(run)
    run.set_defaults(handler=run_participant)

    withdraw = actions.add_parser(
        "withdraw",
        help="take this participant's stake back from a staked task (once it ended, or after "
        "the lock)",
    )
    withdraw.add_argument("--task", type=integer_at_least(1), required=True)
    add_network_options(withdraw, keys=True)
    withdraw.set_defaults(handler=run_withdraw)


def _add_remote_store_options(parser: argparse.ArgumentParser) -> None:
    """A device without its own Kubo: a gateway's RPC endpoint (``--ipfs URL``) with its
    credentials, and a pinning service; secrets only ever in files (docs/storage.md)."""
    group = parser.add_argument_group(
        "remote IPFS", "publish and fetch through a gateway instead of a local Kubo"
    )
    group.add_argument(
        "--ipfs-auth-header-file",
        type=Path,
        metavar="FILE",
        help="headers for the --ipfs endpoint, one 'Name: value' a line "
        "(e.g. 'Authorization: Bearer …')",
    )
    group.add_argument(
        "--pinning-service",
        metavar="URL",
        help="IPFS Pinning Service API endpoint asked to keep every blob this device pins",
    )
    group.add_argument(
        "--pinning-token-file", type=Path, metavar="FILE", help="the pinning service's token"
    )


def run_keys_new(args: argparse.Namespace) -> int:
    from flare.config import NetworkConfig, read_password
    from flare.crypto.identity import ParticipantKeys

    password = read_password(NetworkConfig(password_file=args.password_file))
    keys = ParticipantKeys.generate()
    keys.save(args.keystore, password, allow_weak_password=args.allow_weak_password)
    print(f"{keys.account.address} keys in {args.keystore}")
    return 0


def run_participant(args: argparse.Namespace) -> int:
    from flare.federation.agents import AgentOptions, ParticipantAgent, stop_event_on_signals

    # First thing: a SIGTERM during start-up (loading data, connecting) stops cleanly too.
    stop = stop_event_on_signals()
    apply_threads(args.threads)
    from flare.config import open_chain, open_store
    from flare.models import TrainingConfig

    config = network_config(args).with_overrides(
        ipfs_auth_header_file=args.ipfs_auth_header_file,
        pinning_service_url=args.pinning_service,
        pinning_token_file=args.pinning_token_file,
    )
    if config.local:
        raise ConfigError(
            "participant run needs a chain node (--rpc or a config file): the embedded "
            "chain's journal has one writer and its blocks advance only when one process "
            "sends, so separate participant processes cannot share it"
        )
    try:
        training = TrainingConfig(
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    options = AgentOptions(
        codec=args.codec,
        rank=args.rank,
        training=training,
        attack=args.attack,
        attack_strength=args.attack_strength,
        honest_member=not args.dishonest_member,
        dp=_dp_params(args.dp_clip, args.dp_noise_multiplier),
        admitted=() if args.admit is None else read_admission_list(args.admit),
        stake=args.stake or 0,
    )
    keys = load_keys(config)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per IPFS request
    store = open_store(config)
    with open_chain(config) as chain:
        state_dir = args.state_dir or (
            keystore_dir(config)
            / "state"
            / f"{chain.chain_id}-{chain.contract_address}-{args.task}"
        )
        agent = ParticipantAgent(
            chain, store, keys, args.task, args.data, state_dir, options, name=args.name
        )
        agent.run(stop, config.poll_interval)
    return 0


def run_withdraw(args: argparse.Namespace) -> int:
    from flare.chain.api.events import StakeWithdrawn
    from flare.config import open_chain

    config = network_config(args)
    keys = load_keys(config)
    with open_chain(config, keys.account) as chain:
        receipt = chain.withdraw_stake(args.task)
    paid = receipt.one(StakeWithdrawn).amount
    print(
        f"task {args.task}: {format_wei(paid)} withdrawn to {keys.account.address} "
        f"in block {receipt.block_number}"
    )
    return 0


def _dp_params(clip: float | None, noise_multiplier: float | None) -> "DPParams | None":
    """The device's DP settings: both options or neither."""
    from flare.privacy import DPParams

    if clip is None and noise_multiplier is None:
        return None
    if clip is None or noise_multiplier is None:
        raise ConfigError("--dp-clip and --dp-noise-multiplier go together")
    return DPParams(clip, noise_multiplier)

"""``flare node up|down|status``: the local chain and blob store, as background services.

Kubo's repository, pid file and log live in ``<state-dir>/kubo/``, beside Anvil's, so one
directory holds everything a local federation needs. In a checkout, ``up`` first installs
what it lacks with the checkout's scripts (Anvil through npm, Kubo built from source, each
once, in one line); Kubo stays optional: when it can be neither found nor built, ``up``
starts Anvil alone and says why.
"""

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from flare.cli import check_output_directory, integer_at_least, positive_finite_float
from flare.cli.help_values import NODE_STATE_DIR

if TYPE_CHECKING:
    from flare.node import DetachedService, KuboConfig

CHECKOUT_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
"""The scripts of the checkout Flare runs from; an installed package has none."""


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "node",
        help="start, stop or inspect the local Anvil node and Kubo daemon",
        description="Run a local Anvil (Prague, bound to 127.0.0.1) and a Kubo daemon "
        "(offline, API on 127.0.0.1, no gateway) in the background, with their state, pid "
        "files and logs under one directory. `down` stops both cleanly, which writes the "
        "chain state that the next `up` loads; Kubo keeps its blocks and pins.",
    )
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    up = actions.add_parser("up", help="start the node and wait until it answers")
    port = integer_at_least(1, 65535)
    up.add_argument("--port", type=port, default=8545)
    up.add_argument("--chain-id", type=integer_at_least(1, 2**64 - 1), default=31337)
    up.add_argument(
        "--block-time",
        type=positive_finite_float,
        help="seconds per block (default: mine each transaction)",
    )
    up.add_argument(
        "--state-interval",
        type=integer_at_least(1),
        help="also write the state every N seconds (limits what a crash loses)",
    )
    up.add_argument(
        "--public-chain",
        action="store_true",
        help="mine like a public chain: a block every 12 s (or --block-time), never one per "
        "transaction, and an 8M block gas limit under which load raises the base fee",
    )
    up.add_argument("--ipfs-port", type=port, default=5001, help="Kubo RPC API port (default 5001)")
    up.add_argument("--no-kubo", action="store_true", help="start Anvil only")
    down = actions.add_parser("down", help="stop the node, writing its state")
    status = actions.add_parser("status", help="say whether the node runs (exit 1 if not)")
    for action in (up, down, status):
        action.add_argument(
            "--state-dir",
            type=Path,
            default=NODE_STATE_DIR,
            help=f"chain state, pid file and log (default {NODE_STATE_DIR})",
        )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from flare.node import AnvilConfig, AnvilNode, KuboConfig, KuboNode, find_anvil

    kubo = KuboNode(KuboConfig(directory=args.state_dir / "kubo"))
    if args.action == "up":
        check_output_directory(args.state_dir, "--state-dir")
        settings = {
            "state_dir": args.state_dir,
            "port": args.port,
            "chain_id": args.chain_id,
            "state_interval": args.state_interval,
        }
        if args.public_chain:
            config = AnvilConfig.public_chain(args.block_time, **settings)
        else:
            config = AnvilConfig(block_time=args.block_time, **settings)
        anvil_binary = installed_binary(find_anvil, "FLARE_ANVIL", "install_tools.sh", "anvil")
        anvil = AnvilNode(config, anvil_binary)
        record = anvil.start()
        print(
            f"anvil up: {config.rpc_url} (chain {config.chain_id}, pid {record.pid}); "
            f"state {config.state_file}, log {anvil.log_file}"
        )
        if not args.no_kubo:
            try:
                _start_kubo(KuboConfig(args.state_dir / "kubo", api_port=args.ipfs_port))
            except BaseException:
                anvil.stop()  # all or nothing: no half-started setup to clean up
                raise
        return 0
    anvil = AnvilNode(AnvilConfig(state_dir=args.state_dir))
    if args.action == "down":
        stopped = anvil.stop()
        print(f"anvil stopped; state in {anvil.config.state_file}" if stopped else "not running")
        if kubo.stop():
            print(f"kubo stopped; repository {kubo.config.repo_dir}")
        return 0
    if not _report_status(kubo):
        print("kubo not running")
    if not _report_status(anvil):
        print(f"anvil not running (state dir {args.state_dir})")
        return 1
    return 0


def _report_status(node: "DetachedService") -> bool:
    """Print one line on a running ``node``; False, printing nothing, when it does not run."""
    status = node.status()
    if status is None:
        return False
    print(
        f"{node.name} running: pid {status.pid}, {status.endpoint}, "
        f"{status.answer or 'not answering'}"
    )
    return True


def _start_kubo(config: "KuboConfig") -> None:
    """Start Kubo beside Anvil, building it first if need be, or say why not.

    A binary that can be neither found nor built is a note, not a failure: Anvil alone
    serves everything that keeps its blobs in a directory.
    """
    from flare.node import KuboNode, NodeError, find_ipfs
    from flare.node.kubo import KUBO_VERSION

    try:
        binary = installed_binary(
            find_ipfs, "FLARE_IPFS_BIN", "install_kubo.sh", "ipfs", {"KUBO_VERSION": KUBO_VERSION}
        )
    except NodeError as exc:
        print(f"kubo skipped: {exc}")
        return
    kubo = KuboNode(config, binary)
    record = kubo.start()
    print(
        f"kubo up: {config.api_url} (offline, pid {record.pid}); repository "
        f"{config.repo_dir}, log {kubo.log_file}"
    )


def installed_binary(
    find: Callable[[], Path],
    override_variable: str,
    installer: str,
    name: str,
    installer_env: Mapping[str, str] | None = None,
) -> Path:
    """What ``find`` finds; when it finds nothing, what the checkout's ``installer`` installs.

    The installer says in one line what it does (building Kubo takes minutes, once) and
    shows its tools' output only when they fail. Nothing is installed when
    ``$override_variable`` names the binary (a wrong name is the user's to fix) or when
    Flare runs from an installed package, which has no scripts: then ``find``'s error,
    which says what to do, stands.
    """
    import os
    import subprocess

    from flare.node import NodeError

    try:
        return find()
    except NodeError:
        script = CHECKOUT_SCRIPTS / installer
        if os.environ.get(override_variable) or not script.is_file():
            raise
    try:
        finished = subprocess.run(
            [str(script)],
            stdout=subprocess.DEVNULL,  # its one line is on stderr; stdout is for scripts
            env={**os.environ, **(installer_env or {})},
            check=False,
        )
    except OSError as exc:
        raise NodeError(f"no {name} binary, and scripts/{installer} did not run: {exc}") from None
    if finished.returncode != 0:
        raise NodeError(f"no {name} binary, and scripts/{installer} failed (see above)")
    return find()

"""``flare node up|down|status``: the local development chain, as a background service."""

import argparse
from pathlib import Path

from flare.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    from flare.node import DEFAULT_STATE_DIR

    p = commands.add_parser(
        "node",
        help="start, stop or inspect the local Anvil node",
        description="Run a local Anvil (Prague, bound to 127.0.0.1) in the background, with "
        "its chain state, pid file and log under one directory. `down` stops it cleanly, "
        "which writes the state that the next `up` loads.",
    )
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    up = actions.add_parser("up", help="start the node and wait until it answers")
    up.add_argument("--port", type=int, default=8545)
    up.add_argument("--chain-id", type=int, default=31337)
    up.add_argument(
        "--block-time", type=float, help="seconds per block (default: mine each transaction)"
    )
    up.add_argument(
        "--state-interval",
        type=int,
        help="also write the state every N seconds (limits what a crash loses)",
    )
    down = actions.add_parser("down", help="stop the node, writing its state")
    status = actions.add_parser("status", help="say whether the node runs (exit 1 if not)")
    for action in (up, down, status):
        action.add_argument(
            "--state-dir",
            type=Path,
            default=DEFAULT_STATE_DIR,
            help=f"chain state, pid file and log (default {DEFAULT_STATE_DIR})",
        )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from flare.node import AnvilConfig, AnvilNode

    if args.action == "up":
        if not 0 < args.port < 65536:
            raise ConfigError("--port must be between 1 and 65535")
        if args.block_time is not None and args.block_time <= 0:
            raise ConfigError("--block-time must be positive")
        config = AnvilConfig(
            state_dir=args.state_dir,
            port=args.port,
            chain_id=args.chain_id,
            block_time=args.block_time,
            state_interval=args.state_interval,
        )
        record = AnvilNode(config).start()
        print(
            f"anvil up: {config.rpc_url} (chain {config.chain_id}, pid {record.pid}); "
            f"state {config.state_file}, log {config.log_file}"
        )
        return 0
    node = AnvilNode(AnvilConfig(state_dir=args.state_dir))
    if args.action == "down":
        stopped = node.stop()
        print(f"anvil stopped; state in {node.config.state_file}" if stopped else "not running")
        return 0
    status = node.status()
    if not status.running:
        print(f"anvil not running (state dir {args.state_dir})")
        return 1
    reachable = (
        f"chain {status.chain_id}, block {status.block_number}"
        if status.chain_id is not None
        else "not answering"
    )
    print(f"anvil running: pid {status.pid}, {status.rpc_url}, {reachable}")
    return 0

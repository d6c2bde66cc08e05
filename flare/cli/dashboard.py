"""``flare dashboard``: serve a web page that follows a task as it runs (docs/dashboard.md).

The page reads the chain read-only, through the same network options as ``flare task
status``: a node's RPC URL and deployment, or the embedded chain's state file, and the blob
store (Kubo or a directory). It needs the optional extra: ``pip install 'flare[dashboard]'``.
"""

import argparse
from pathlib import Path

from flare.cli import (
    add_threads_option,
    apply_threads,
    check_input_file,
    integer_at_least,
    positive_finite_float,
)
from flare.cli.network import add_network_options, network_config
from flare.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "dashboard",
        help="serve a live web page of a task: rounds, committee, votes, flags, bytes, gas",
        description="Follow a task in a browser as it runs. Each finalized round is "
        "re-derived (as `flare verify` does) and its flagged clients shown with their reasons.",
    )
    p.add_argument(
        "--task", type=integer_at_least(1), help="task id (default: the chain's latest task)"
    )
    p.add_argument("--test", type=Path, help="an .npz (X, y) to score each global model on")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=integer_at_least(1, 65535), default=8050, help="port")
    p.add_argument(
        "--poll",
        type=positive_finite_float,
        default=2.0,
        metavar="SECONDS",
        help="how often the page reads the chain",
    )
    add_network_options(p, keys=False)
    add_threads_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        from flare.dashboard.server import serve
    except ImportError as exc:
        raise ConfigError(
            f"the dashboard needs its web server ({exc.name}): pip install 'flare[dashboard]'"
        ) from None
    from flare.config import open_chain, open_store
    from flare.dashboard.watch import TaskWatcher

    if args.test is not None:
        check_input_file(args.test, "--test")
        apply_threads(args.threads)
    config = network_config(args)
    watcher = TaskWatcher(
        lambda: open_chain(config, read_only=True),
        open_store(config),
        task_id=args.task,
        test=args.test,
    )
    serve(watcher, args.host, args.port, args.poll)
    return 0

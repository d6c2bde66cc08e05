"""The ``flare`` command line: one sub-command per module in this package."""

import argparse
import sys
from collections.abc import Sequence

from flare.errors import FlareError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other Flare error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``: torch's intra-op threads. One is fastest for the small models of FL
    clients (thread start-up dominates) and keeps inference order-stable across machines."""
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def apply_threads(count: int) -> None:
    import torch

    from flare.errors import ConfigError

    if count < 1:
        raise ConfigError("--threads must be at least 1")
    torch.set_num_threads(count)


def build_parser() -> argparse.ArgumentParser:
    from flare.cli import deploy, inspect, node, participant, simulate, task, verify

    parser = _Parser(prog="flare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    simulate.register(commands)
    verify.register(commands)
    inspect.register(commands)
    node.register(commands)
    deploy.register(commands)
    task.register(commands)
    participant.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flare`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except FlareError as exc:
        print(f"flare {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"flare {args.command}: interrupted", file=sys.stderr)
        return 130

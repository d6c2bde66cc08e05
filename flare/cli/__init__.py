"""The ``flare`` command line: one sub-command per module in this package."""

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flare.errors import ConfigError, FlareError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other Flare error, and which
    may take some defaults only once it is used (:func:`defer_defaults`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: list[Callable[[], None]] = []

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._complete()
        return super().format_help()

    def defer(self, completion: Callable[[], None]) -> None:
        self._deferred.append(completion)

    def _complete(self) -> None:
        while self._deferred:
            self._deferred.pop(0)()

    def option_names(self) -> set[str]:
        """The destinations of this parser's options."""
        return {action.dest for action in self._actions}


def _flare_parser(parser: argparse.ArgumentParser) -> _Parser:
    if not isinstance(parser, _Parser):
        raise TypeError(f"deferring needs a parser made by build_parser, not {parser!r}")
    return parser


# Deferral exists for defaults that are computed, not written down: a command computes them
# only when it parses its own arguments or prints its own help, so building the whole
# `flare` parser (as every command and `flare --help` do) computes none.


def defer_defaults(
    parser: argparse.ArgumentParser, source: Callable[[], Mapping[str, Any]]
) -> None:
    """Give ``parser``'s options the defaults ``source`` returns, by destination (names that
    are no option of ``parser`` are left out), when ``parser`` is first used."""
    flare_parser = _flare_parser(parser)

    def load() -> None:
        options = flare_parser.option_names()
        defaults = {name: value for name, value in source().items() if name in options}
        flare_parser.set_defaults(**defaults)

    flare_parser.defer(load)


def integer_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for an integer option with bounds, refused while parsing."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


def positive_finite_float(text: str) -> float:
    """An argparse ``type`` for a positive real: ``nan`` and ``inf`` parse as floats but
    would only fail (or never end) deep inside the command."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``: torch's intra-op threads. One is fastest for the small models of FL
    clients (thread start-up dominates) and keeps inference order-stable across machines."""
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def apply_threads(count: int) -> None:
    if count < 1:
        raise ConfigError("--threads must be at least 1")
    import torch

    torch.set_num_threads(count)


def check_output_file(path: Path, option: str) -> None:
    """Refuse now a file that the command could only fail to write at its end."""
    try:
        if path.is_dir():
            raise ConfigError(f"{option} {path} is a directory; name a file")
        if path.exists() and not os.access(path, os.W_OK):
            raise ConfigError(f"{option} {path} is not writable")
        _check_creatable(path.parent, option, path)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror or exc}") from None


def check_output_directory(path: Path, option: str) -> None:
    """Refuse now a directory that the command could not create or write into."""
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{option} {path} is not a directory")
        _check_creatable(path, option, path)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror or exc}") from None


def check_input_file(path: Path, option: str) -> None:
    """Refuse now a file the command must read but cannot."""
    try:
        if not path.is_file():
            raise ConfigError(f"{option} {path} is not a file")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{option} {path} is not readable")
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror or exc}") from None


def _check_creatable(directory: Path, option: str, named: Path) -> None:
    """``directory`` exists or ``mkdir -p`` can make it: its nearest existing ancestor is a
    directory we may write in."""
    ancestor = directory
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{option} {named}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {named}: cannot write in {ancestor}")


def build_parser() -> argparse.ArgumentParser:
    from flare.cli import (
        dashboard,
        deploy,
        inspect,
        model,
        node,
        participant,
        simulate,
        task,
        verify,
    )

    parser = _Parser(prog="flare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    simulate.register(commands)
    verify.register(commands)
    inspect.register(commands)
    node.register(commands)
    deploy.register(commands)
    task.register(commands)
    participant.register(commands)
    dashboard.register(commands)
    model.register(commands)
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

"""``flare verify``: re-derive every finalized round of a task from chain and store alone."""

import argparse
from typing import TYPE_CHECKING

from flare.cli import add_threads_option, apply_threads
from flare.cli.network import add_network_options, network_config
from flare.errors import ConfigError

if TYPE_CHECKING:
    from flare.federation.protocol.verify import RoundVerdict


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "verify",
        help="recompute every finalized round from chain state and blobs",
        description="Replay a finished task from its chain state and blob store, and check "
        "that every round's aggregate re-derives to the CID the chain recorded.",
    )
    p.add_argument("--task", type=int, help="task id (default: every task on the chain)")
    add_threads_option(p)
    add_network_options(p, keys=False)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    apply_threads(args.threads)
    from rich.console import Console

    from flare.config import open_chain, open_store
    from flare.federation.protocol.verify import RoundStatus, verify_task

    if args.task is not None and args.task < 1:
        raise ConfigError("--task must be at least 1")
    config = network_config(args)
    if config.store is not None and not (config.store / "blobs").is_dir():
        raise ConfigError(f"no blob store at {config.store} (it has no blobs/ directory)")
    console = Console(highlight=False, soft_wrap=True)
    store = open_store(config)
    all_ok = True
    with open_chain(config, read_only=True) as chain:
        task_count = chain.task_count()
        if task_count == 0:
            raise ConfigError("the chain holds no task to verify")
        if args.task is not None and args.task > task_count:
            raise ConfigError(f"no task {args.task}: the chain holds tasks 1 to {task_count}")
        for task_id in [args.task] if args.task is not None else range(1, task_count + 1):
            verdict = verify_task(chain, store, task_id)
            for r in verdict.rounds:
                console.print(
                    f"task {task_id} round {r.round:>3} attempt {r.attempt}  {_describe(r)}"
                )
            damaged = [r.round for r in verdict.rounds if r.status is RoundStatus.STORE_DAMAGED]
            history = "[green]matches[/]" if verdict.history_matches else "[red]DIFFERS[/]"
            console.print(
                f"task {task_id}: {sum(r.ok for r in verdict.rounds)}/{len(verdict.rounds)} "
                f"rounds re-derived; history hash {history}"
                + (
                    f"; [red]the blob store is damaged[/] (round {', '.join(map(str, damaged))})"
                    if damaged
                    else ""
                )
            )
            all_ok &= verdict.ok
    return 0 if all_ok else 1


def _describe(verdict: "RoundVerdict") -> str:
    """One round's outcome on one line: the store is never blamed on the chain."""
    from rich.markup import escape

    from flare.federation.protocol.verify import RoundStatus

    status = verdict.status
    if status is RoundStatus.REDERIVED:
        notes = "".join(
            f"  (note: {escape(str(blob))}; the chain rejected it too)"
            for blob in verdict.absent_rejected
        )
        return f"[green]ok[/]  {verdict.onchain_model}{notes}"
    if status is RoundStatus.STORE_DAMAGED:
        blobs = "; ".join(str(blob) for blob in verdict.damaged)
        return f"[red]STORE DAMAGED[/]  {escape(blobs)}"
    if status is RoundStatus.ERROR:
        return f"[red]ERROR[/]  cannot recompute: {escape(str(verdict.error))}"
    differs = "" if verdict.bitmap_matches else ", accepted set differs"
    return (
        f"[red]MISMATCH[/]  chain {verdict.onchain_model} "
        f"!= recomputed {verdict.recomputed_model}{differs}"
    )

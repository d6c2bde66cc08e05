"""Robustness benchmark: final accuracy and backdoor success of every rule under every attack.

Run from the repository root (the full grid; every axis can be narrowed):

    .venv/bin/python benchmarks/bench_robustness.py [--datasets digits tabular]
        [--clients 10 50] [--partitions iid dirichlet] [--attacks ...] [--aggregators ...]
        [--seeds 0 1 2] [--rounds 10] [--workers 2]
        [--variant 'mi+clip=mi:clip_to_median_norm=true' --aggregators mi mi+clip ...]

Each run is one offline simulation: 30 % of the clients attack (none in the ``none``
column), on IID and on Dirichlet(0.5) data, on digits and on a tabular ``.npz`` (a fixed
synthetic 4-class problem written for the run, read the way a user's file is). Runs are
independent and go to a pool of single-threaded worker processes behind a progress bar.
A ``--variant`` is a rule with settings other than its defaults, run as a row of its own
under its label; the JSON and the report's header say which settings each label stands for.

Writes docs/bench/robustness.md (tables and verdicts), docs/bench/robustness.json (every
run) and docs/bench/robustness.png (heatmaps). Accuracies are deterministic per seed.
"""

import argparse
import json
import shlex
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import OUTPUT_DIR, environment, run_in_workers, write_results
from robustness_rows import Setting, check_same_variants, parse_variant, rows_of, variants_of
from robustness_tables import heatmaps, markdown, summarise

from flare.aggregation import AGGREGATORS
from flare.errors import ConfigError
from flare.federation.config import SimulationConfig
from flare.federation.simulation import Simulation

NAME = "robustness"
NO_ATTACK = "none"
COUNT_INFLATION = "counts x100"
ATTACK_SETTINGS: dict[str, tuple[str, float | None, float]] = {
    NO_ATTACK: ("noise", None, 1.0),
    **{
        name: (name, None, 1.0)
        for name in (
            "noise",
            "random",
            "sign-flip",
            "scaling",
            "label-flip",
            "alie",
            "ipm",
            "min-max",
            "min-sum",
            "adaptive-mi",
            "backdoor",
        )
    },
    COUNT_INFLATION: ("sign-flip", 1.0, 100.0),
}
"""Column label → (attack, strength, count factor). ``counts x100``: reversed updates
(sign-flip ×1) that claim 100 times their sample count."""
MALICIOUS_SHARE = 0.3
DIRICHLET_ALPHA = 0.5
TABULAR = "tabular"


@dataclass(frozen=True)
class RunSpec:
    """One simulation of the grid; ``aggregator`` is the row's label."""

    dataset: str
    source: str
    clients: int
    partition: str
    attack: str
    aggregator: str
    rule: str
    rule_settings: tuple[tuple[str, Setting], ...]
    seed: int
    rounds: int

    def config(self) -> SimulationConfig:
        name, strength, count_factor = ATTACK_SETTINGS[self.attack]
        attacked = self.attack != NO_ATTACK
        return SimulationConfig(
            dataset=self.source,
            clients=self.clients,
            rounds=self.rounds,
            partition=self.partition,
            alpha=DIRICHLET_ALPHA,
            malicious=round(MALICIOUS_SHARE * self.clients) if attacked else 0,
            attack=name,
            attack_strength=strength,
            attack_count_factor=count_factor,
            aggregator=self.rule,
            aggregator_params=dict(self.rule_settings),
            seed=self.seed,
        )


def simulate(spec: RunSpec) -> dict[str, Any]:
    """Run one simulation; a crash becomes a recorded failure so the grid still completes."""
    started = time.perf_counter()
    outcome: dict[str, Any] = {**asdict(spec), "rule_settings": dict(spec.rule_settings)}
    try:
        report = Simulation(spec.config()).run()
    except Exception:
        outcome["error"] = traceback.format_exc()
    else:
        final = report.final
        outcome.update(
            accuracy=final["accuracy"],
            attack_success=final["attack_success"],
            malicious_flagged=final["detection"]["malicious_flagged"],
            honest_flagged=final["detection"]["honest_flagged"],
            accuracy_per_round=[record.accuracy for record in report.rounds],
            attack_success_per_round=[record.attack_success for record in report.rounds],
        )
    outcome["seconds"] = round(time.perf_counter() - started, 3)
    return outcome


def write_tabular_npz(directory: Path) -> Path:
    """A fixed 4-class tabular problem (3000 rows, 20 features), as a user would supply it."""
    from sklearn.datasets import make_classification

    features, labels = make_classification(
        n_samples=3000,
        n_features=20,
        n_informative=10,
        n_redundant=4,
        n_classes=4,
        n_clusters_per_class=2,
        class_sep=1.0,
        random_state=0,
    )
    path = directory / "tabular.npz"
    np.savez(path, X=features.astype(np.float32), y=labels.astype(np.int64))
    return path


def grid(arguments: argparse.Namespace, sources: dict[str, str]) -> list[RunSpec]:
    """The slowest runs first (``mi`` rehearsed by ``adaptive-mi``, 50 clients), so that
    the workers do not end on them one at a time."""
    specs = [
        RunSpec(
            dataset,
            sources[dataset],
            clients,
            partition,
            attack,
            row.label,
            row.rule,
            row.settings,
            seed,
            arguments.rounds,
        )
        for dataset in arguments.datasets
        for clients in arguments.clients
        for partition in arguments.partitions
        for attack in arguments.attacks
        for row in arguments.rows
        for seed in arguments.seeds
    ]
    return sorted(specs, key=lambda s: (s.attack != "adaptive-mi", -s.clients))


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The command line, with ``rows``: the table rows ``--aggregators`` names."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", choices=("digits", TABULAR), default=["digits", TABULAR]
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    parser.add_argument(
        "--partitions", nargs="+", choices=("iid", "dirichlet"), default=["iid", "dirichlet"]
    )
    parser.add_argument(
        "--attacks", nargs="+", choices=tuple(ATTACK_SETTINGS), default=list(ATTACK_SETTINGS)
    )
    parser.add_argument(
        "--aggregators",
        nargs="+",
        default=list(AGGREGATORS),
        metavar="RULE_OR_VARIANT",
        help=f"rows: rules ({', '.join(AGGREGATORS)}) and labels declared by --variant",
    )
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        metavar="LABEL=RULE:NAME=VALUE[,NAME=VALUE...]",
        help="a rule with settings other than its defaults, run as the row LABEL, e.g. "
        "'mi+clip=mi:clip_to_median_norm=true'; name LABEL in --aggregators too",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR, help="where the outputs go")
    parser.add_argument(
        "--merge",
        type=Path,
        metavar="JSON",
        help="replace the same runs (cell and seed) of a previous run's JSON by these, keep "
        "the rest, and publish the merged grid",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="run nothing: redraw the tables and heatmap of a previous run's JSON",
    )
    arguments = parser.parse_args(argv)
    try:
        arguments.rows = rows_of(arguments.aggregators, arguments.variant)
    except ConfigError as error:
        parser.error(str(error))
    return arguments


def run_key(run: dict[str, Any]) -> tuple:
    """What makes a run one cell's seed: two runs with this key replace each other."""
    return tuple(
        run[field] for field in ("dataset", "clients", "partition", "attack", "aggregator", "seed")
    )


def merge(
    previous: dict[str, Any],
    outcomes: list[dict[str, Any]],
    variants: dict[str, dict[str, Any]],
    command: str,
    env: dict[str, Any],
) -> dict[str, Any]:
    """``previous`` with each of its runs that ``outcomes`` ran again replaced, and the rerun
    recorded (command, environment, runs) so the report says which cells are newer.

    Raises :class:`ConfigError` if a variant's label stood for other settings in
    ``previous`` (see :func:`check_same_variants`).
    """
    known = previous.get("variants", {})
    check_same_variants(known, variants)
    rerun_of = {run_key(run): run for run in outcomes}
    # in place, so the tables keep the previous run's order of rules and attacks
    runs = [rerun_of.pop(run_key(run), run) for run in previous["runs"]]
    rerun = {"command": command, "environment": env, "runs": len(outcomes)}
    return {
        **previous,
        "variants": {**known, **variants},
        "runs": runs + list(rerun_of.values()),
        "reruns": [*previous.get("reruns", []), rerun],
    }


def publish(results: dict[str, Any], output_dir: Path) -> None:
    """Write the markdown, the JSON with its summary, and the heatmap."""
    summary = summarise(results["runs"])
    text = markdown(results, summary)
    results["summary"] = [{"cell": list(key), **value} for key, value in summary.items()]
    write_results(NAME, text, results, output_dir)
    heatmaps(results, summary, output_dir / f"{NAME}.png")
    sys.stdout.write(text)


def main() -> None:
    argv = sys.argv[1:]
    arguments = parse_arguments(argv)
    if arguments.render is not None:
        publish(json.loads(arguments.render.read_text()), arguments.output_dir)
        return
    variants = variants_of(arguments.rows)
    previous = None if arguments.merge is None else json.loads(arguments.merge.read_text())
    if previous is not None:
        check_same_variants(previous.get("variants", {}), variants)  # before any run
    env = environment()
    with tempfile.TemporaryDirectory() as scratch:
        sources = {"digits": "digits", TABULAR: str(write_tabular_npz(Path(scratch)))}
        specs = grid(arguments, sources)
        started = time.perf_counter()
        outcomes = run_in_workers(simulate, specs, arguments.workers, "robustness runs")
    command = shlex.join([".venv/bin/python", "benchmarks/bench_robustness.py", *argv])
    if previous is not None:
        publish(merge(previous, outcomes, variants, command, env), arguments.output_dir)
        return
    results = {
        "command": command,
        "environment": env,
        "settings": {
            "datasets": arguments.datasets,
            "clients": arguments.clients,
            "partitions": arguments.partitions,
            "attacks": {label: ATTACK_SETTINGS[label] for label in arguments.attacks},
            "aggregators": arguments.aggregators,
            "seeds": arguments.seeds,
            "rounds": arguments.rounds,
            "workers": arguments.workers,
            "malicious_share": MALICIOUS_SHARE,
            "dirichlet_alpha": DIRICHLET_ALPHA,
        },
        "variants": variants,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "runs": outcomes,
    }
    publish(results, arguments.output_dir)


if __name__ == "__main__":
    main()

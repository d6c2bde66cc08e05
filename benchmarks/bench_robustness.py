"""Robustness benchmark: final accuracy of every aggregator under every attack, and MI detection.

Run from the repository root:

    .venv/bin/python benchmarks/bench_robustness.py [--seeds 0 1 2] [--rounds 10] [--workers 2]

Each run is one offline simulation (digits, 10 clients, 3 of them malicious, or none
for the "none" column) on IID and on Dirichlet(0.5) data. Runs are independent, so
they go to a pool of single-threaded worker processes: on a small shared machine one
thread per process keeps ``--workers`` the true parallelism instead of oversubscribing
the cores with torch's and BLAS's own threads.

Writes docs/bench/robustness.md (tables and a reading) and docs/bench/robustness.json
(every run's raw result). Accuracies are deterministic per seed; wall times are not.
"""

import argparse
import shlex
import statistics
import sys
import time
import traceback
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import (
    OUTPUT_DIR,
    environment,
    environment_line,
    run_in_workers,
    write_results,
)

from flare.aggregation import AGGREGATORS
from flare.federation.clients import ATTACKS, make_attack
from flare.federation.config import SimulationConfig
from flare.federation.simulation import Simulation

NO_ATTACK = "none"
ATTACK_SETTINGS = (NO_ATTACK, *ATTACKS)
DIRICHLET_ALPHA = 0.5
PARTITIONS = {"iid": "IID", "dirichlet": f"Dirichlet α={DIRICHLET_ALPHA:g}"}
CLIENTS = 10
MALICIOUS = 3
MI_FILTER = "mi"
ROBUST_BASELINES = ("krum", "multi-krum", "median", "trimmed-mean")
"""The defences ``mi`` is judged against; FedAvg is shown only as the undefended reference."""
MATCH_TOLERANCE_POINTS = 1.0
"""``mi`` "matches" the best baseline when its mean is within this many accuracy points."""
NAME = "robustness"


@dataclass(frozen=True)
class RunSpec:
    """One simulation of the grid."""

    aggregator: str
    attack: str
    partition: str
    seed: int
    rounds: int

    def config(self) -> SimulationConfig:
        attacked = self.attack != NO_ATTACK
        return SimulationConfig(
            dataset="digits",
            clients=CLIENTS,
            rounds=self.rounds,
            partition=self.partition,
            alpha=DIRICHLET_ALPHA,
            malicious=MALICIOUS if attacked else 0,
            # With no malicious client the attack is never mounted; any valid name will do.
            attack=self.attack if attacked else next(iter(ATTACKS)),
            aggregator=self.aggregator,
            seed=self.seed,
        )


def simulate(spec: RunSpec) -> dict[str, Any]:
    """Run one simulation; a crash becomes a recorded failure so the grid still completes."""
    started = time.perf_counter()
    outcome: dict[str, Any] = asdict(spec)
    try:
        report = Simulation(spec.config()).run()
    except Exception:
        outcome["error"] = traceback.format_exc()
    else:
        final = report.final
        outcome.update(
            accuracy=final["accuracy"],
            loss=final["loss"],
            malicious_flagged=final["detection"]["malicious_flagged"],
            honest_flagged=final["detection"]["honest_flagged"],
            accuracy_per_round=[record.accuracy for record in report.rounds],
        )
    outcome["seconds"] = round(time.perf_counter() - started, 3)
    return outcome


def grid(seeds: list[int], rounds: int) -> list[RunSpec]:
    """The MI filter first: its runs are the longest, so they should not be left to the end."""
    aggregators = sorted(AGGREGATORS, key=lambda name: name != MI_FILTER)
    return [
        RunSpec(aggregator, attack, partition, seed, rounds)
        for aggregator in aggregators
        for partition in PARTITIONS
        for attack in ATTACK_SETTINGS
        for seed in seeds
    ]


def summarise(outcomes: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per (partition, aggregator, attack): mean and sample std of accuracy and detection.

    Crashed runs are counted, not averaged: a crash has no accuracy to report.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for outcome in outcomes:
        groups[(outcome["partition"], outcome["aggregator"], outcome["attack"])].append(outcome)
    summary = {}
    for key, runs in groups.items():
        finished = [run for run in runs if "error" not in run]
        summary[key] = {
            "runs": len(runs),
            "crashed": len(runs) - len(finished),
            "accuracy": mean_std([run["accuracy"] for run in finished]),
            "malicious_flagged": mean_std([run["malicious_flagged"] for run in finished]),
            "honest_flagged": mean_std([run["honest_flagged"] for run in finished]),
        }
    return summary


def mean_std(values: list[float | None]) -> tuple[float, float] | None:
    """Mean and sample standard deviation (0 for a single seed); ``None`` if undefined."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    spread = statistics.stdev(present) if len(present) > 1 else 0.0
    return statistics.fmean(present), spread


def percent(statistic: tuple[float, float] | None) -> str:
    if statistic is None:
        return "—"
    mean, spread = statistic
    return f"{100 * mean:.1f} ± {100 * spread:.1f}"


def accuracy_table(summary: dict, partition: str) -> list[str]:
    """Aggregators down, attacks across; the best mean of each column in bold (ties too)."""
    lines = [
        "| aggregator | " + " | ".join(ATTACK_SETTINGS) + " |",
        "|---|" + "---:|" * len(ATTACK_SETTINGS),
    ]
    best = {}
    for attack in ATTACK_SETTINGS:
        means = [
            round(100 * cell["accuracy"][0], 1)
            for name in AGGREGATORS
            if (cell := summary.get((partition, name, attack))) and cell["accuracy"]
        ]
        best[attack] = max(means, default=None)
    for name in AGGREGATORS:
        cells = []
        for attack in ATTACK_SETTINGS:
            cell = summary.get((partition, name, attack))
            statistic = cell["accuracy"] if cell else None
            text = percent(statistic)
            if statistic and round(100 * statistic[0], 1) == best[attack]:
                text = f"**{text}**"
            if cell and cell["crashed"]:
                crashes = f"{cell['crashed']} of {cell['runs']} crashed"
                text = f"{text} ({crashes})" if statistic else crashes
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def detection_table(summary: dict) -> list[str]:
    """The MI filter's flag rates: of malicious submissions (want 100) and of honest (want 0)."""
    header = ["attack"]
    for label in PARTITIONS.values():
        header += [f"{label}: malicious flagged", f"{label}: honest flagged"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for attack in ATTACK_SETTINGS:
        row = [attack]
        for partition in PARTITIONS:
            cell = summary.get((partition, MI_FILTER, attack))
            row += [
                percent(cell["malicious_flagged"] if cell else None),
                percent(cell["honest_flagged"] if cell else None),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def compare_with_baselines(summary: dict) -> list[dict[str, Any]]:
    """For each partition and attack: ``mi`` against the best robust baseline's mean."""
    comparisons = []
    for partition in PARTITIONS:
        for attack in ATTACK_SETTINGS:
            mi_cell = summary.get((partition, MI_FILTER, attack))
            baselines = {
                name: cell["accuracy"][0]
                for name in ROBUST_BASELINES
                if (cell := summary.get((partition, name, attack))) and cell["accuracy"]
            }
            if not mi_cell or not mi_cell["accuracy"] or not baselines:
                continue
            best_name = max(baselines, key=baselines.__getitem__)
            gap = 100 * (mi_cell["accuracy"][0] - baselines[best_name])
            if gap > MATCH_TOLERANCE_POINTS:
                verdict = "beats"
            elif gap >= -MATCH_TOLERANCE_POINTS:
                verdict = "matches"
            else:
                verdict = "behind"
            comparisons.append(
                {
                    "partition": partition,
                    "attack": attack,
                    "mi": mi_cell["accuracy"][0],
                    "best_baseline": best_name,
                    "best_baseline_accuracy": baselines[best_name],
                    "gap_points": gap,
                    "verdict": verdict,
                }
            )
    return comparisons


def comparison_table(comparisons: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| partition | attack | mi | best baseline | its accuracy | mi − best (points) | verdict |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for row in comparisons:
        lines.append(
            f"| {PARTITIONS[row['partition']]} | {row['attack']} | {100 * row['mi']:.1f} "
            f"| {row['best_baseline']} | {100 * row['best_baseline_accuracy']:.1f} "
            f"| {row['gap_points']:+.1f} | {row['verdict']} |"
        )
    return lines


def reading(comparisons: list[dict[str, Any]], summary: dict) -> list[str]:
    """Plain sentences drawn from the numbers, so that a rerun cannot leave stale prose."""
    lines = []
    for partition, label in PARTITIONS.items():
        rows = [row for row in comparisons if row["partition"] == partition]
        by_verdict = {
            verdict: [row["attack"] for row in rows if row["verdict"] == verdict]
            for verdict in ("beats", "matches", "behind")
        }
        behind = [
            f"{row['attack']}: {100 * row['mi']:.1f} vs {row['best_baseline']} "
            f"{100 * row['best_baseline_accuracy']:.1f}"
            for row in rows
            if row["verdict"] == "behind"
        ]
        lines.append(
            f"- **{label}**: `mi` beats the best of {', '.join(ROBUST_BASELINES)} in "
            f"{len(by_verdict['beats'])} of {len(rows)} settings{listed(by_verdict['beats'])}, "
            f"matches it within {MATCH_TOLERANCE_POINTS:g} point in "
            f"{len(by_verdict['matches'])}{listed(by_verdict['matches'])} and is behind in "
            f"{len(by_verdict['behind'])}{listed(behind)}."
        )
        clean = summary.get((partition, MI_FILTER, NO_ATTACK))
        if clean and clean["honest_flagged"]:
            lines.append(
                f"  With no attacker it flags {percent(clean['honest_flagged'])} % of honest "
                "submissions: the price of the filter on clean rounds."
            )
        missed = [
            f"{attack} ({percent(cell['malicious_flagged'])} % caught)"
            for attack in ATTACKS
            if (cell := summary.get((partition, MI_FILTER, attack)))
            and cell["malicious_flagged"]
            and cell["malicious_flagged"][0] < 1.0
        ]
        if missed:
            lines.append(f"  Attackers it lets through in some rounds: {', '.join(missed)}.")
        same_selection = [
            attack
            for attack in ATTACKS
            if all(
                (cell := summary.get((partition, name, attack)))
                and cell["malicious_flagged"] == (1.0, 0.0)
                and cell["honest_flagged"] == (0.0, 0.0)
                for name in (MI_FILTER, "multi-krum")
            )
        ]
        if same_selection:
            lines.append(
                f"  Under {', '.join(same_selection)}: both `mi` and `multi-krum` drop exactly the "
                "attackers in every round and seed, so both average the same honest updates "
                "and their accuracies coincide; the comparison is decided elsewhere."
            )
    lines.append(worst_cases(summary))
    return lines


def worst_cases(summary: dict) -> str:
    """Each defence's lowest mean over the grid: an attacker picks the weakest setting."""
    worst = []
    for name in (MI_FILTER, *ROBUST_BASELINES):
        cells = [
            (cell["accuracy"][0], PARTITIONS[partition], attack)
            for partition in PARTITIONS
            for attack in ATTACK_SETTINGS
            if (cell := summary.get((partition, name, attack))) and cell["accuracy"]
        ]
        if cells:
            accuracy, partition_label, attack = min(cells)
            worst.append(f"`{name}` {100 * accuracy:.1f} ({partition_label}, {attack})")
    return "- Worst setting per defence, lowest mean over the whole grid: " + "; ".join(worst) + "."


def listed(items: list[str]) -> str:
    """`` (a, b)`` after a count, or nothing when the count is zero."""
    return f" ({', '.join(items)})" if items else ""


def markdown(results: dict[str, Any], summary: dict, comparisons: list[dict[str, Any]]) -> str:
    settings = results["settings"]
    seeds = settings["seeds"]
    failures = [outcome for outcome in results["runs"] if "error" in outcome]
    strengths = "; ".join(
        f"{name} {vars(make_attack(name)) or '(no parameter)'}" for name in ATTACKS
    )
    lines = [
        "# Robustness benchmark: aggregators under attack",
        "",
        f"Produced by `{results['command']}`. {environment_line(results['environment'])} "
        f"{len(results['runs'])} runs took {results['wall_seconds'] / 60:.1f} min of wall time "
        f"on {settings['workers']} single-threaded worker processes.",
        "",
        f"Setup: digits, the default MLP, {CLIENTS} clients, {settings['rounds']} rounds, "
        f"{MALICIOUS} malicious clients ({MALICIOUS / CLIENTS:.0%}) under each attack, none in "
        f"the `{NO_ATTACK}` column; seeds {', '.join(map(str, seeds))} (each seed changes the "
        "data split, the attackers and the initial model). Attacks and aggregators at their "
        f"library defaults ({strengths}; Krum's f is 30 % of the round, trimmed mean cuts "
        "30 % per side). FedAvg is the undefended reference.",
        "",
        f"Cells: final test accuracy in % after round {settings['rounds']}, mean ± sample "
        f"standard deviation over {len(seeds)} seed(s). Bold: best mean of the column.",
        "",
    ]
    for partition, label in PARTITIONS.items():
        lines += [f"## {label}", "", *accuracy_table(summary, partition), ""]
    lines += [
        "## MI filter detection",
        "",
        "Share of submissions the MI filter flagged over all rounds, in %: of malicious ones "
        "(higher is better) and of honest ones (lower is better).",
        "",
        *detection_table(summary),
        "",
        "## Where `mi` stands against the robust baselines",
        "",
        f"Best baseline: the highest mean of {', '.join(ROBUST_BASELINES)} for that setting. "
        f"Verdict: `matches` within ±{MATCH_TOLERANCE_POINTS:g} accuracy point; compare the "
        "gaps with the seed spreads above before reading much into a small one.",
        "",
        *comparison_table(comparisons),
        "",
        *reading(comparisons, summary),
        "",
    ]
    if failures:
        lines += [f"## Failed runs ({len(failures)})", ""]
        for outcome in failures:
            last_line = outcome["error"].strip().splitlines()[-1]
            lines.append(
                f"- {outcome['aggregator']} / {outcome['attack']} / {outcome['partition']} / "
                f"seed {outcome['seed']}: `{last_line}` (traceback in the JSON)"
            )
        lines.append("")
    return "\n".join(lines)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--output-dir", type=Path, default=OUTPUT_DIR, help="where the .md and .json go"
    )
    return parser.parse_args()


def main() -> None:
    argv = sys.argv[1:]
    arguments = parse_arguments()
    env = environment()
    specs = grid(arguments.seeds, arguments.rounds)
    started = time.perf_counter()
    outcomes = run_in_workers(simulate, specs, arguments.workers, "robustness runs")
    results = {
        "command": shlex.join([".venv/bin/python", "benchmarks/bench_robustness.py", *argv]),
        "environment": env,
        "settings": {
            "seeds": arguments.seeds,
            "rounds": arguments.rounds,
            "workers": arguments.workers,
            "clients": CLIENTS,
            "malicious": MALICIOUS,
            "dirichlet_alpha": DIRICHLET_ALPHA,
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
        "runs": outcomes,
    }
    summary = summarise(outcomes)
    comparisons = compare_with_baselines(summary)
    results["comparisons"] = comparisons
    text = markdown(results, summary, comparisons)
    write_results(NAME, text, results, arguments.output_dir)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

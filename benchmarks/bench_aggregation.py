"""Robust aggregation, Flare against Flower, on identical inputs, side by side.

Run from the repository root:

    .venv/bin/python benchmarks/bench_aggregation.py

Flower is not a dependency of Flare: the first run creates ``benchmarks/.flower-venv``
with ``flwr`` pinned (later runs reuse it). Each case's updates are written once to
``.npy`` files; a Flare process and a Flower process (``aggregation_sides.py``), started
one after the other with the same environment (one BLAS/OpenMP thread each, so the two
are compared core for core), load them, time their rule, and write back what they
computed. This script then checks that both computed the same thing and writes
``docs/bench/aggregation.md`` and ``docs/bench/aggregation.json``
(``aggregation_report.py``).

Flare's time is the whole ``Aggregator.aggregate`` call: input checks, the rule, the
average, and the per-client scores Flare reports (Flower reports none).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

import numpy as np
from aggregation_report import render
from aggregation_sides import layer_shapes, write_inputs
from common import (
    OUTPUT_DIR,
    REPOSITORY,
    SINGLE_THREAD_ENVIRONMENT,
    environment,
    write_results,
)

NAME = "aggregation"
COMMAND = ".venv/bin/python benchmarks/bench_aggregation.py"
SIDE_SCRIPT = Path(__file__).resolve().with_name("aggregation_sides.py")
FLOWER_REQUIREMENT = "flwr==1.42.0"
FLOWER_VENV_PACKAGES = (FLOWER_REQUIREMENT, "threadpoolctl")
FLOWER_VENV = REPOSITORY / "benchmarks" / ".flower-venv"
RULES = ("krum", "multi-krum", "median", "trimmed-mean")
SIZES = ((100, 100_000), (300, 20_000))
TARGETS = {"krum": 5.0, "multi-krum": 5.0, "median": 2.0, "trimmed-mean": 2.0}
FLOOR_KEYS = ("bookkeeping_wall_min", "selection_floor_wall_min", "filling_floor_wall_min")
"""The times Flare's side measures beside its rule, for the coordinate-wise rules' floor."""
TOLERANCE = 1e-6
"""Largest relative difference (‖flare − flower‖ / ‖flower‖) that counts as identical:
Flower averages in float32, Flare in float64 rounded once."""


def flower_python() -> Path:
    """The Flower venv's interpreter, creating the venv with ``flwr`` the first time."""
    python = FLOWER_VENV / "bin" / "python"
    version = FLOWER_REQUIREMENT.split("==")[1]
    probe = f"import flwr, sys, threadpoolctl; sys.exit(flwr.__version__ != {version!r})"
    check = [str(python), "-c", probe]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {FLOWER_VENV.relative_to(REPOSITORY)} with {FLOWER_REQUIREMENT} …")
    shutil.rmtree(FLOWER_VENV, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(FLOWER_VENV)
    install = [str(python), "-m", "pip", "install", "--quiet", *FLOWER_VENV_PACKAGES]
    subprocess.run(install, check=True)
    return python


def run_side(python: Path, side: str, directory: Path, case: tuple, repeats: int) -> dict:
    """One turn of ``side`` in a process of its own: its times and its result's layers."""
    rule, _, coordinates = case
    command = [
        str(python),
        str(SIDE_SCRIPT),
        side,
        str(directory),
        "--rule",
        rule,
        "--coordinates",
        str(coordinates),
        "--repeats",
        str(repeats),
    ]
    subprocess.run(command, check=True, env=dict(os.environ, **SINGLE_THREAD_ENVIRONMENT))
    timed = json.loads((directory / f"{side}.json").read_text())
    layers = len(layer_shapes(coordinates))
    timed["layers"] = [np.load(directory / f"{side}-layer{i}.npy") for i in range(layers)]
    return timed


def fastest_of(turns: list[dict]) -> dict:
    """The last turn's outputs with the minimum times over all turns."""
    merged = dict(turns[-1])
    for key in ("wall_min", "cpu_min", *FLOOR_KEYS):
        if key in merged:
            merged[key] = min(turn[key] for turn in turns)
    merged["wall_median"] = statistics.median(turn["wall_median"] for turn in turns)
    return merged


def compare(flare: dict, flower: dict) -> dict[str, Any]:
    difference = np.sqrt(
        sum(
            np.sum((a.astype(np.float64) - b.astype(np.float64)) ** 2)
            for a, b in zip(flare["layers"], flower["layers"], strict=True)
        )
    )
    scale = np.sqrt(sum(np.sum(b.astype(np.float64) ** 2) for b in flower["layers"]))
    relative = float(difference / scale)
    same_selection = flare["selected"] == flower["selected"]
    return {
        "relative_difference": relative,
        "same_selection": same_selection,
        "identical": relative < TOLERANCE and same_selection,
    }


def run_case(case: tuple, flower: Path, repeats: int, turns: int, seed: int) -> dict[str, Any]:
    """Flare's and Flower's processes take ``turns`` turns each, alternating, so that a
    change in the machine's load falls on both; the fastest call of all turns counts."""
    rule, clients, coordinates = case
    runs: dict[str, list[dict]] = {"flare": [], "flower": []}
    with tempfile.TemporaryDirectory(prefix="flare-bench-aggregation-") as scratch:
        directory = Path(scratch)
        write_inputs(directory, clients, coordinates, seed)
        for _ in range(turns):
            runs["flare"].append(run_side(Path(sys.executable), "flare", directory, case, repeats))
            runs["flower"].append(run_side(flower, "flower", directory, case, repeats))
    flare_timed, flower_timed = (fastest_of(runs[side]) for side in ("flare", "flower"))
    row = {
        "rule": rule,
        "clients": clients,
        "coordinates": coordinates,
        **compare(flare_timed, flower_timed),
        "selected": len(flare_timed["selected"]),
    }
    for key in FLOOR_KEYS:
        if key in flare_timed:
            row[f"flare_{key}"] = flare_timed[key]
    for side, timed in (("flare", flare_timed), ("flower", flower_timed)):
        for key in ("wall_min", "wall_median", "cpu_min"):
            row[f"{side}_{key}"] = timed[key]
        row[f"{side}_threads"] = timed["threads"]
    row["speedup_wall"] = row["flower_wall_min"] / row["flare_wall_min"]
    row["speedup_cpu"] = row["flower_cpu_min"] / row["flare_cpu_min"]
    row["target"] = TARGETS[rule]
    row["meets_target"] = row["speedup_wall"] >= TARGETS[rule]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per turn")
    parser.add_argument("--turns", type=int, default=5, help="alternating turns per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument(
        "--rules", nargs="+", choices=RULES, default=list(RULES), help="rules to compare"
    )
    arguments = parser.parse_args()
    flower = flower_python()
    env = environment()
    rows = []
    cases = [(rule, *size) for rule in arguments.rules for size in SIZES]
    for case in cases:
        row = run_case(case, flower, arguments.repeats, arguments.turns, arguments.seed)
        print(
            f"{row['rule']:>12} n={row['clients']:<4} d={row['coordinates']:<7} "
            f"flare {row['flare_wall_min']:.3f}s flower {row['flower_wall_min']:.3f}s "
            f"×{row['speedup_wall']:.1f} (cpu ×{row['speedup_cpu']:.1f}) "
            f"identical={row['identical']}",
            flush=True,
        )
        rows.append(row)
    results = {
        "command": COMMAND,
        "environment": env,
        "flower": FLOWER_REQUIREMENT.split("==")[1],
        "repeats": arguments.repeats,
        "turns": arguments.turns,
        "threads": {"flare": rows[0]["flare_threads"], "flower": rows[0]["flower_threads"]},
        "openblas_environment": {
            key: value for key, value in os.environ.items() if key.startswith("OPENBLAS_")
        },
        "rows": rows,
    }
    write_results(NAME, render(results), results, arguments.output_dir)


if __name__ == "__main__":
    main()

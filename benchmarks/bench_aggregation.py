"""Robust aggregation, Flare against Flower, on identical inputs, side by side.

Run from the repository root:

    .venv/bin/python benchmarks/bench_aggregation.py

Flower is not a dependency of Flare: the first run creates ``benchmarks/.flower-venv``
with ``flwr`` pinned (later runs reuse it). Each case's updates are written once to
``.npy`` files; a Flare process and a Flower process, started one after the other
with the same environment (one BLAS/OpenMP thread each, so the two are compared
core for core), load them, time their rule, and write back what they computed. The
script then checks that both computed the same thing and writes
``docs/bench/aggregation.md`` and ``docs/bench/aggregation.json``.

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
import time
import venv
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    OUTPUT_DIR,
    REPOSITORY,
    SINGLE_THREAD_ENVIRONMENT,
    environment,
    environment_line,
    write_results,
)

NAME = "aggregation"
COMMAND = ".venv/bin/python benchmarks/bench_aggregation.py"
FLOWER_REQUIREMENT = "flwr==1.42.0"
FLOWER_VENV_PACKAGES = (FLOWER_REQUIREMENT, "threadpoolctl")
FLOWER_VENV = REPOSITORY / "benchmarks" / ".flower-venv"
BYZANTINE_SHARE = 0.3
TRIM_FRACTION = 0.3
CASES = [
    (rule, clients, coordinates)
    for rule in ("krum", "multi-krum", "median", "trimmed-mean")
    for clients, coordinates in ((100, 100_000), (300, 20_000))
]
TARGETS = {"krum": 5.0, "multi-krum": 5.0, "median": 2.0, "trimmed-mean": 2.0}
TOLERANCE = 1e-6
"""Largest relative difference (‖flare − flower‖ / ‖flower‖) that counts as identical:
Flower averages in float32, Flare in float64 rounded once."""


def layer_shapes(coordinates: int) -> dict[str, tuple[int, ...]]:
    """A dense weight matrix and a bias-like vector, ``coordinates`` values in all."""
    bias = 1_000
    return {"weight": ((coordinates - bias) // 100, 100), "bias": (bias,)}


def write_inputs(directory: Path, clients: int, coordinates: int, seed: int) -> None:
    """Updates around a common direction, 30 % of them sign-flipped and scaled attackers."""
    rng = np.random.default_rng(seed)
    attackers = int(BYZANTINE_SHARE * clients)
    for name, shape in layer_shapes(coordinates).items():
        direction = rng.normal(0.0, 0.05, size=shape)
        stacked = np.empty((clients, *shape), dtype=np.float32)
        for client in range(clients):
            update = direction + rng.normal(0.0, 0.02, size=shape)
            stacked[client] = -4.0 * update if client < attackers else update
        np.save(directory / f"{name}.npy", stacked)
    np.save(directory / "samples.npy", rng.integers(50, 500, size=clients))


def load_inputs(directory: Path, coordinates: int) -> tuple[list[list[np.ndarray]], list[int]]:
    """Per client, its list of layers (views into the stacked arrays), and its samples."""
    layers = [np.load(directory / f"{name}.npy") for name in layer_shapes(coordinates)]
    samples = [int(count) for count in np.load(directory / "samples.npy")]
    return [[layer[client] for layer in layers] for client in range(len(samples))], samples


def time_calls(action: Any, repeats: int) -> dict[str, Any]:
    """Run ``action`` once to warm up, then ``repeats`` times; wall and CPU seconds."""
    result = action()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "result": result,
        "wall_min": min(walls),
        "wall_median": statistics.median(walls),
        "cpu_min": min(cpus),
    }


def flower_side(directory: Path, rule: str, coordinates: int, repeats: int) -> None:
    """Runs inside the Flower venv: time Flower's function, save its output."""
    from flwr.server.strategy.aggregate import (
        _compute_distances,
        aggregate_krum,
        aggregate_median,
        aggregate_trimmed_avg,
    )

    weights, samples = load_inputs(directory, coordinates)
    results = list(zip(weights, samples, strict=True))
    byzantine = byzantine_count(len(samples))
    keep = len(samples) - byzantine
    actions = {
        "krum": lambda: aggregate_krum(results, byzantine, 0),
        "multi-krum": lambda: aggregate_krum(results, byzantine, keep),
        "median": lambda: aggregate_median(results),
        "trimmed-mean": lambda: aggregate_trimmed_avg(results, TRIM_FRACTION),
    }
    timed = time_calls(actions[rule], repeats)
    selected: list[int] = []
    if rule in ("krum", "multi-krum"):
        # Flower returns no indices; its selection, recomputed as aggregate_krum does
        distances = _compute_distances(weights)
        closest = max(1, len(weights) - byzantine - 2)
        scores = [float(np.sum(row[np.argsort(row)[1 : closest + 1]])) for row in distances]
        selected = sorted(int(i) for i in np.argsort(scores)[: 1 if rule == "krum" else keep])
    save_side(directory / "flower", timed, selected)


def flare_side(directory: Path, rule: str, coordinates: int, repeats: int) -> None:
    """Runs in Flare's venv: time ``Aggregator.aggregate``, save its output."""
    from flare.aggregation import AggregationContext, ClientUpdate, make_aggregator

    weights, samples = load_inputs(directory, coordinates)
    names = list(layer_shapes(coordinates))
    updates = [
        ClientUpdate(f"client-{index}", dict(zip(names, layers, strict=True)), count)
        for index, (layers, count) in enumerate(zip(weights, samples, strict=True))
    ]
    context = AggregationContext(
        {name: np.zeros(shape, np.float32) for name, shape in layer_shapes(coordinates).items()}
    )
    params: dict[str, Any] = {}
    if rule in ("krum", "multi-krum"):
        params["num_byzantine"] = byzantine_count(len(samples))
    if rule == "multi-krum":
        params["count_weighting"] = "claimed"  # Flower averages by the claims as sent
    if rule == "trimmed-mean":
        params["trim_fraction"] = TRIM_FRACTION
    aggregator = make_aggregator(rule, **params)
    timed = time_calls(lambda: aggregator.aggregate(updates, context), repeats)
    outcome = timed.pop("result")
    if rule in ("median", "trimmed-mean"):
        timed["bookkeeping_wall_min"] = bookkeeping_seconds(updates, context, outcome, repeats)
    timed["result"] = [outcome.delta[name] for name in names]
    selected = sorted(int(cid.split("-")[1]) for cid in outcome.accepted)
    save_side(directory / "flare", timed, selected if rule in ("krum", "multi-krum") else [])


def bookkeeping_seconds(updates: list, context: Any, outcome: Any, repeats: int) -> float:
    """Wall seconds Flare spends beside the rule: checking the updates' structure and
    computing every client's reproducible distance to the result, which it reports and
    which refuses non-finite values."""
    from flare.aggregation.coordinatewise import checked_structure, finite_distance_scores

    def bookkeeping() -> None:
        spec = checked_structure(updates, context.global_weights)
        finite_distance_scores(updates, outcome.delta, spec, context.global_weights)

    return time_calls(bookkeeping, repeats)["wall_min"]


def byzantine_count(clients: int) -> int:
    """``f`` as Flare's default: 30 % of the round, capped so that ``n > 2f + 2``."""
    return max(0, min(int(BYZANTINE_SHARE * clients), (clients - 3) // 2))


def save_side(prefix: Path, timed: dict[str, Any], selected: list[int]) -> None:
    for index, layer in enumerate(timed.pop("result")):
        np.save(prefix.with_name(f"{prefix.name}-layer{index}.npy"), np.asarray(layer))
    timed["selected"] = selected
    timed["threads"] = thread_report()
    prefix.with_suffix(".json").write_text(json.dumps(timed))


def thread_report() -> str:
    """Which BLAS, for which CPU, with how many threads this process runs."""
    from threadpoolctl import threadpool_info

    return ", ".join(
        f"{pool['internal_api']} {pool.get('architecture', '')} × {pool['num_threads']}"
        for pool in threadpool_info()
    )


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
    rule, _, coordinates = case
    command = [
        str(python),
        str(Path(__file__).resolve()),
        f"--{side}-side",
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
    for key in ("wall_min", "cpu_min", "bookkeeping_wall_min"):
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
    if "bookkeeping_wall_min" in flare_timed:
        row["flare_bookkeeping_wall_min"] = flare_timed["bookkeeping_wall_min"]
    for side, timed in (("flare", flare_timed), ("flower", flower_timed)):
        for key in ("wall_min", "wall_median", "cpu_min"):
            row[f"{side}_{key}"] = timed[key]
        row[f"{side}_threads"] = timed["threads"]
    row["speedup_wall"] = row["flower_wall_min"] / row["flare_wall_min"]
    row["speedup_cpu"] = row["flower_cpu_min"] / row["flare_cpu_min"]
    row["target"] = TARGETS[rule]
    row["meets_target"] = row["speedup_wall"] >= TARGETS[rule]
    return row


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Robust aggregation: Flare vs Flower",
        "",
        f"Produced by `{results['command']}`. {environment_line(results['environment'])} "
        f"Flower {results['flower']} runs in a venv of its own on the same numpy; both "
        "sides load the same `.npy` inputs in their own process, one after the other, "
        f"with one BLAS thread ({results['threads']['flare']}), taking "
        f"{results['turns']} turns each, alternately. Times are the fastest of "
        f"{results['repeats']} calls per turn, after one warm-up, over all turns; "
        "CPU time is the process's own, which the load of a shared machine disturbs less.",
        "",
        "Inputs: float32 updates around a common direction (σ = 0.05) with noise "
        "(σ = 0.02), 30 % of them attackers sending −4× their update, in two tensors "
        "(a weight matrix and a 1,000-value bias). `f` is 30 % of the round for both; "
        "Multi-Krum keeps `n − f` and, like Flower, weights them by the claimed sample "
        'counts (`count_weighting="claimed"`; Flare\'s default caps each claim at the '
        "round's median claim); trimmed mean cuts 30 % from each end. Flare's time "
        "includes checking the inputs and the per-client scores it reports.",
        "",
        "| rule | clients | coordinates | Flare (s) | Flower (s) | speed-up | "
        "speed-up (CPU) | target | identical? |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in results["rows"]:
        verdict = "yes" if row["identical"] else "**no**"
        verdict += f" (rel. diff {row['relative_difference']:.1e}"
        if row["rule"] in ("krum", "multi-krum"):
            verdict += ", same selection" if row["same_selection"] else ", **other selection**"
        verdict += ")"
        met = "" if row["meets_target"] else " (missed)"
        lines.append(
            f"| {row['rule']} | {row['clients']} | {row['coordinates']:,} | "
            f"{row['flare_wall_min']:.3f} | {row['flower_wall_min']:.3f} | "
            f"{row['speedup_wall']:.1f}× | {row['speedup_cpu']:.1f}× | "
            f"≥ {row['target']:.0f}×{met} | {verdict} |"
        )
    lines += [
        "",
        "Of Flare's time for the coordinate-wise rules, checking the updates' structure and "
        "computing each client's reproducible distance to the result (reported, and read "
        "to refuse non-finite values; Flower does neither) took: "
        + "; ".join(
            f"{row['rule']} n={row['clients']}: {row['flare_bookkeeping_wall_min']:.3f} s"
            for row in results["rows"]
            if "flare_bookkeeping_wall_min" in row
        )
        + ". The rest is the selection itself: numpy's vectorised partition (median) or "
        "sort (trimmed mean) of each coordinate's client values." + missed_targets(results["rows"]),
        "",
        "How Flare gets there: Krum's pairwise distances come from a BLAS Gram matrix of "
        "block-centred float64 updates, each with a proven error interval around the "
        "reproducible elementwise distance; only distances whose interval leaves a "
        "neighbour set or a nine-digit score undecided are computed elementwise "
        "(`flare/aggregation/distances.py`), so scores, selection and bytes are those of "
        "the elementwise computation on every machine. Median and trimmed mean partition or "
        "sort each coordinate's client values, 1 MiB of coordinates at a time, and check "
        "finiteness through the distances they report instead of a pass of their own (a "
        "client's squared distance to a finite result is finite only if all its values "
        "are). Flower "
        "computes all n² distances pair by pair and takes `np.median`/`np.partition` over "
        "the stacked layers.",
        "",
    ]
    if results["openblas_environment"]:
        lines += [
            "OpenBLAS variables set on this machine, for both sides: "
            + ", ".join(f"`{k}={v}`" for k, v in results["openblas_environment"].items())
            + ".",
            "",
        ]
    return "\n".join(lines)


def missed_targets(rows: list[dict[str, Any]]) -> str:
    missed = [
        f"{row['rule']} at {row['clients']} clients ({row['speedup_wall']:.1f}× of "
        f"{row['target']:.0f}×)"
        for row in rows
        if not row["meets_target"]
    ]
    return f" Targets missed in this run: {', '.join(missed)}." if missed else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per turn")
    parser.add_argument("--turns", type=int, default=3, help="alternating turns per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument("--flare-side", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--flower-side", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rule", help=argparse.SUPPRESS)
    parser.add_argument("--coordinates", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.flare_side:
        flare_side(arguments.flare_side, arguments.rule, arguments.coordinates, arguments.repeats)
        return
    if arguments.flower_side:
        flower_side(arguments.flower_side, arguments.rule, arguments.coordinates, arguments.repeats)
        return
    flower = flower_python()
    env = environment()
    rows = []
    for case in CASES:
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

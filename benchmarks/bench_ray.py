"""Ray benchmark: the local backend against Ray on this machine, and what N machines would give.

Run from the repository root (needs ``pip install 'flare[ray]'``):

    .venv/bin/python benchmarks/bench_ray.py [--clients 1000 10000] [--rounds 2]

Each (client count, backend) pair runs offline in a fresh child process (this same script
with ``--measure``), so that the driver's peak RSS is that run's own (``VmHWM``, which
``ru_maxrss`` is not: it keeps the parent's peak across ``exec``); Ray's workers are
processes of their own and are not counted in it: that is the point of the backend. The
driver's peak is taken twice: over the whole run (set-up reads the whole data set on either
backend) and over the rounds alone (``VmHWM`` is reset as the first round starts), where
the Ray driver holds no training data. The
data is a synthetic .npz large enough that every client holds samples (120,000 × 64
features, 10 classes); logistic regression, FedAvg, no attacker and no codec keep the
measurement on the clients' path and the driver's fixed work.

The paper estimate splits a local round into the clients' part (the ``train`` phase:
training and encoding, per client) and the driver's part (the rest: decoding,
aggregation, evaluation), and spreads the clients' part over N machines of this one's
cores, adding Ray's measured overhead per round on this machine.

Writes docs/bench/ray.md and docs/bench/ray.json.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    OUTPUT_DIR,
    environment,
    environment_line,
    measure_in_child,
    write_results,
)
from scale_fleet import CLASSES, FEATURES, SAMPLES, write_synthetic_dataset

from flare.federation.report import process_peak_rss_mb

NAME = "ray"
MACHINES = (1, 4, 16, 64)


def reset_peak_rss() -> None:
    """Start this process's ``VmHWM`` afresh from what it holds now (Linux), so that
    :func:`process_peak_rss_mb` reads the peak since this call."""
    Path("/proc/self/clear_refs").write_text("5")


def measure(dataset: Path, clients: int, rounds: int, backend: str) -> dict[str, Any]:
    """One run in this process; the caller guarantees the process is fresh."""
    import torch

    from flare.federation.config import SimulationConfig
    from flare.federation.rounds import RunObserver
    from flare.federation.simulation import Simulation

    class RoundsPeak(RunObserver):
        """Keeps the set-up's peak and resets it as the first round starts."""

        setup_peak_mb = 0.0

        def round_started(self, round_number: int, participants: int) -> None:
            if round_number == 1:
                self.setup_peak_mb = process_peak_rss_mb()
                reset_peak_rss()

    torch.set_num_threads(1)
    config = SimulationConfig(
        dataset=str(dataset),
        model="logreg",
        clients=clients,
        rounds=rounds,
        malicious=0,
        aggregator="fedavg",
        local_epochs=1,
        backend=backend,
    )
    started = time.perf_counter()
    observer = RoundsPeak()
    report = Simulation(config).run(observer)
    rounds_peak = process_peak_rss_mb()
    return {
        "clients": clients,
        "backend": backend,
        "wall_seconds": time.perf_counter() - started,
        "driver_peak_rss_mb": max(observer.setup_peak_mb, rounds_peak),
        "driver_rounds_peak_rss_mb": rounds_peak,
        "rounds": [
            {"seconds": record.seconds, "timings": record.timings, "accuracy": record.accuracy}
            for record in report.rounds
        ],
        "bytes_up": [record.bytes_up for record in report.rounds],
    }


def steady(row: dict[str, Any], key: str) -> float:
    """Median over the rounds after the first (which alone starts Ray's workers)."""
    later = row["rounds"][1:] or row["rounds"]
    if key == "seconds":
        return statistics.median(r["seconds"] for r in later)
    return statistics.median(r["timings"].get(key, 0.0) for r in later)


def estimate(local: dict[str, Any], on_ray: dict[str, Any], cores: int) -> dict[str, Any]:
    """Per-client cost, driver cost per round and Ray's overhead, then N machines' round."""
    clients = local["clients"]
    per_client = steady(local, "train") / clients
    driver = steady(local, "seconds") - steady(local, "train")
    # What Ray adds per round beyond the clients' work split over this machine's cores.
    overhead = max(0.0, steady(on_ray, "train") - per_client * clients / cores)
    return {
        "clients": clients,
        "per_client_seconds": per_client,
        "driver_seconds_per_round": driver,
        "ray_overhead_seconds_per_round": overhead,
        "round_seconds_on": {
            str(machines): driver + overhead + per_client * clients / (machines * cores)
            for machines in MACHINES
        },
    }


def _decided(row: dict[str, Any]) -> tuple[list[int], list[float]]:
    return row["bytes_up"], [r["accuracy"] for r in row["rounds"]]


def markdown(results: dict[str, Any]) -> str:
    rows = results["runs"]
    lines = [
        "# Ray backend: local against Ray on this machine",
        "",
        environment_line(results["environment"]),
        "",
        f"Offline runs, {results['rounds']} rounds, on a synthetic .npz of "
        f"{SAMPLES:,} samples × {FEATURES} features, {CLASSES} classes (every client holds "
        "data); logistic regression, FedAvg, no attacker, no codec, one local epoch. Each run "
        "in a fresh process: the driver's peak RSS is its own (Ray's workers are separate "
        "processes), over the whole run and over the rounds alone (set-up, which reads the "
        "whole data set on either backend, left out). Ray runs start a local Ray with one "
        "worker per CPU; its first round also starts the workers. Same configuration, same "
        "run: the last column compares each round's bytes sent and test accuracy with the "
        "local run's.",
        "",
        "| clients | backend | wall (s) | steady round (s) | driver peak RSS (MB) "
        "| driver peak RSS in rounds (MB) | same bytes and accuracy as local |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        local = next(r for r in rows if r["clients"] == row["clients"] and r["backend"] == "local")
        same = "yes" if _decided(row) == _decided(local) else "NO"
        lines.append(
            f"| {row['clients']:,} | {row['backend']} | {row['wall_seconds']:.1f} "
            f"| {steady(row, 'seconds'):.2f} | {row['driver_peak_rss_mb']:.0f} "
            f"| {row['driver_rounds_peak_rss_mb']:.0f} | {same} |"
        )
    cores = results["environment"]["cpus"]
    lines += [
        "",
        f"## On paper: N machines of {cores} cores",
        "",
        "A round is the driver's part (decode, aggregate, evaluate: measured locally), Ray's "
        "overhead per round (measured here: the Ray train phase less the clients' work split "
        "over this machine's cores) and the clients' part (per-client cost × clients) split "
        "over every core. Transfer of the round's blobs grows with the clients and is inside "
        "the measured overhead only at this machine's size. The per-client cost follows the "
        f"samples each client holds ({SAMPLES:,} split over the clients, less the held-out "
        "splits).",
        "",
        "| clients | per client (ms) | driver per round (s) | Ray overhead per round (s) | "
        + " | ".join(f"round on {m} (s)" for m in MACHINES)
        + " |",
        "|---:|---:|---:|---:|" + "---:|" * len(MACHINES),
    ]
    for item in results["estimates"]:
        on = item["round_seconds_on"]
        lines.append(
            f"| {item['clients']:,} | {1000 * item['per_client_seconds']:.2f} "
            f"| {item['driver_seconds_per_round']:.2f} "
            f"| {item['ray_overhead_seconds_per_round']:.2f} | "
            + " | ".join(f"{on[str(m)]:.2f}" for m in MACHINES)
            + " |"
        )
    lines.append("")
    return "\n".join(lines)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument("--measure", nargs=3, metavar=("DATASET", "CLIENTS", "BACKEND"))
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    if arguments.measure:
        dataset, clients, backend = arguments.measure
        row = measure(Path(dataset), int(clients), arguments.rounds, backend)
        print(json.dumps(row))
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    env = environment()
    runs: list[dict[str, Any]] = []
    grid = [(clients, backend) for clients in arguments.clients for backend in ("local", "ray")]
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with tempfile.TemporaryDirectory() as scratch, Progress(*columns) as progress:
        dataset = Path(scratch) / "synthetic.npz"
        write_synthetic_dataset(dataset)
        task = progress.add_task("runs", total=len(grid))
        for clients, backend in grid:
            progress.update(task, description=f"{clients:,} clients on {backend}")
            run = ("--measure", str(dataset), str(clients), backend)
            runs.append(measure_in_child(__file__, *run, "--rounds", str(arguments.rounds)))
            progress.advance(task)
    estimates = [
        estimate(
            next(r for r in runs if r["clients"] == clients and r["backend"] == "local"),
            next(r for r in runs if r["clients"] == clients and r["backend"] == "ray"),
            env["cpus"],
        )
        for clients in arguments.clients
    ]
    results = {
        "environment": env,
        "rounds": arguments.rounds,
        "runs": runs,
        "estimates": estimates,
    }
    write_results(NAME, markdown(results), results, arguments.output_dir)
    print(markdown(results))


if __name__ == "__main__":
    main()

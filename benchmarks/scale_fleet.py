"""Scale benchmark, large fleets: one round of many clients, every one holding data.

Used by ``bench_scale.py --fleet N`` (and its data set by ``bench_ray.py``): a synthetic
``.npz`` large enough that every client holds samples (120,000 samples, 64 features, 10
classes), FedAvg and the default MLP, measured against issue 13's targets (10,000 clients
in at most 60 s and 1.5 GB).
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flare.federation.report import process_peak_rss_mb

if TYPE_CHECKING:
    from flare.federation.config import SimulationConfig

SAMPLES, FEATURES, CLASSES = 120_000, 64, 10
FLEET_AGGREGATOR = "fedavg"
FLEET_TARGET_SECONDS, FLEET_TARGET_MIB = 60.0, 1.5 * 1024


def write_synthetic_dataset(path: Path) -> None:
    """Gaussian classes around random centres: learnable, and the same every time."""
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 1.0, (CLASSES, FEATURES))
    labels = rng.integers(0, CLASSES, SAMPLES)
    features = centres[labels] + rng.normal(0.0, 2.0, (SAMPLES, FEATURES))
    np.savez(path, X=features.astype(np.float32), y=labels)


def samples_per_client(config: "SimulationConfig") -> dict[str, float]:
    """The fewest, median and most samples a client of ``config`` holds. It builds the
    federation again: call it after the run whose peak memory it must not inflate."""
    import numpy as np

    from flare.federation.setup import build_federation

    samples = np.array([client.num_samples for client in build_federation(config).clients])
    return {
        "min": int(samples.min()),
        "median": float(np.median(samples)),
        "max": int(samples.max()),
    }


def measure_fleet(dataset: Path, clients: int) -> dict[str, Any]:
    """One round of ``clients`` on ``dataset``, in this (fresh) process."""
    import torch

    from flare.federation.config import SimulationConfig
    from flare.federation.simulation import Simulation

    torch.set_num_threads(1)
    imports_rss_mb = process_peak_rss_mb()
    config = SimulationConfig(
        dataset=str(dataset),
        clients=clients,
        rounds=1,
        malicious=0,
        aggregator=FLEET_AGGREGATOR,
        seed=0,
    )
    cpu_started = time.process_time()
    report = Simulation(config).run()
    cpu_seconds = time.process_time() - cpu_started
    record = report.rounds[0]
    return {
        "clients": clients,
        "samples_per_client": samples_per_client(config),
        "imports_rss_mb": round(imports_rss_mb, 1),
        "peak_rss_mb": report.final["peak_memory_mb"],
        "run_seconds": report.final["seconds"],
        "run_cpu_seconds": round(cpu_seconds, 2),
        "round_seconds": round(record.seconds, 3),
        "timings": record.timings,
        "bytes_up": record.bytes_up,
        "bytes_raw": record.bytes_raw,
        "accuracy": record.accuracy,
    }


def fleet_markdown(fleets: list[dict[str, Any]]) -> list[str]:
    """The large fleets' section: one round each, against issue 13's targets."""
    lines = [
        "## A large fleet: one round, every client holding data",
        "",
        f"A synthetic `.npz` of {SAMPLES:,} samples, {FEATURES} features, {CLASSES} classes "
        f"(Gaussian classes around random centres), the default MLP and codec, "
        f"`{FLEET_AGGREGATOR}`, no attacker, one round, seed 0, in a fresh single-threaded "
        "process. Run time includes set-up (loading and splitting the data); the target "
        f"(issue 13) is at most {FLEET_TARGET_SECONDS:.0f} s and "
        f"{FLEET_TARGET_MIB / 1024:.1f} GB for 10,000 clients.",
        "",
        "| clients | samples/client (min–median–max) | run wall s | run CPU s | train s "
        "| decode s | aggregate s | evaluate s | peak RSS MiB | RSS after imports MiB "
        "| MB up | accuracy % |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fleet in fleets:
        samples, timings = fleet["samples_per_client"], fleet["timings"]
        lines.append(
            f"| {fleet['clients']:,} | {samples['min']}–{samples['median']:g}–{samples['max']} "
            f"| {fleet['run_seconds']:.1f} | {fleet['run_cpu_seconds']:.1f} "
            f"| {timings.get('train', 0.0):.1f} | {timings.get('decode', 0.0):.1f} "
            f"| {timings.get('aggregate', 0.0):.1f} | {timings.get('evaluate', 0.0):.2f} "
            f"| {fleet['peak_rss_mb']:.0f} | {fleet['imports_rss_mb']:.0f} "
            f"| {fleet['bytes_up'] / 1e6:.0f} | {100 * fleet['accuracy']:.1f} |"
        )
    largest = fleets[-1]
    held_mib = largest["bytes_raw"] / 2**20
    above_imports = largest["peak_rss_mb"] - largest["imports_rss_mb"]
    cpu_share = largest["run_cpu_seconds"] / largest["run_seconds"]
    lines += [
        "",
        f"`{FLEET_AGGREGATOR}` aggregates a round one update at a time "
        "(`StreamingAggregator`), so the offline round streams: each client's update is "
        "trained, encoded, decoded and added to the running weighted sum before the next "
        f"client trains. At {largest['clients']:,} clients the peak is "
        f"{above_imports:.0f} MiB above the {largest['imports_rss_mb']:.0f} MiB after "
        f"imports, where the fleet's decoded updates alone are {held_mib:.0f} MiB of "
        f"float32 ({largest['bytes_raw'] / largest['clients'] / 1024:.0f} KiB per client). "
        "The time goes to training and encoding (the train column), one client after "
        f"another on one core; the run had the core {cpu_share:.0%} of its wall time "
        "(CPU s / wall s), the rest went to other jobs on the shared machine.",
        "",
    ]
    return lines

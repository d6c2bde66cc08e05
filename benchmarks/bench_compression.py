"""Compression benchmark: per-layer PowerSGD size, error and speed; codecs on the default task.

Run from the repository root:

    .venv/bin/python benchmarks/bench_compression.py                # every part
    .venv/bin/python benchmarks/bench_compression.py --part layers  # per layer, whole models
    .venv/bin/python benchmarks/bench_compression.py --part task    # codecs on the task

Writes docs/bench/compression.md (tables) and docs/bench/compression.json (raw numbers); a
part not rerun keeps its numbers, and the revision they were taken at, from the existing
JSON. Sizes, errors and accuracies are deterministic (seeded); times depend on the machine.
"""

import argparse
import json
import multiprocessing
import sys

from common import OUTPUT_DIR, environment
from compression_layers import (
    MODEL_CODECS,
    MODELS,
    RANKS,
    SHAPES,
    TIMING_ROUNDS,
    layer_timings,
    measure,
    measure_model,
    with_timings,
)
from compression_tables import (
    COMMAND,
    TASK_CODECS,
    TASK_PARTITIONS,
    TASK_SEEDS,
    markdown,
)
from threadpoolctl import threadpool_limits

from flare.compression import make_codec

TASK_WORKERS = 2


def task_run(codec: str, partition: str, seed: int) -> dict:
    """One offline run of the default task (digits, MLP, 10 clients), honest fedavg."""
    import torch

    from flare.federation.config import SimulationConfig
    from flare.federation.simulation import Simulation

    torch.set_num_threads(1)
    config = SimulationConfig(
        codec=codec, partition=partition, seed=seed, malicious=0, aggregator="fedavg"
    )
    report = Simulation(config).run()
    bytes_up = sum(r.bytes_up for r in report.rounds)
    bytes_raw = sum(r.bytes_raw for r in report.rounds)
    return {
        "codec": codec,
        "params": make_codec(codec).params() if codec != "powersgd" else {"rank": config.rank},
        "partition": partition,
        "seed": seed,
        "accuracy": report.rounds[-1].accuracy,
        "bytes_up": bytes_up,
        "bytes_raw": bytes_raw,
        "ratio": bytes_raw / bytes_up,
    }


def task_rows() -> list[dict]:
    """Every codec, partition and seed, two runs at a time in fresh processes."""
    jobs = [
        (codec, partition, seed)
        for seed in TASK_SEEDS
        for partition in TASK_PARTITIONS
        for codec in TASK_CODECS
    ]
    results = []
    with multiprocessing.get_context("spawn").Pool(TASK_WORKERS) as pool:
        for row in pool.imap(_task_job, jobs):
            print(json.dumps(row), flush=True)  # progress, and what a stopped run still gives
            results.append(row)
    return results


def _task_job(job: tuple[str, str, int]) -> dict:
    return task_run(*job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "layers", "task"), default="all")
    part = parser.parse_args().part
    path = OUTPUT_DIR / "compression.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    results = {
        "command": COMMAND,
        "environments": previous.get("environments", {}),
        "rows": previous.get("rows", []),
        "models": previous.get("models", []),
        "task": previous.get("task", []),
    }
    if part != "task":
        results["environments"]["layers"] = environment()
        # one BLAS thread: on a shared machine a second one mostly waits for its core
        with threadpool_limits(limits=1):
            layers = [(label, shape, rank) for label, shape in SHAPES.items() for rank in RANKS]
            rows = [measure(*layer) for layer in layers]
            later = [
                [layer_timings(shape, rank) for _, shape, rank in layers]
                for _ in range(TIMING_ROUNDS - 1)
            ]
            results["rows"] = [
                with_timings(row, [row, *more])
                for row, more in zip(rows, zip(*later, strict=True), strict=True)
            ]
            results["models"] = [
                measure_model(model, codec) for model in MODELS for codec in MODEL_CODECS
            ]
    if part != "layers":
        results["environments"]["task"] = environment()
        results["task"] = task_rows()
    text = markdown(results)
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUTPUT_DIR / "compression.md").write_text(text)
    path.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

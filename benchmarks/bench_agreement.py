"""What exact inference costs: the committee's recomputation and a whole round, before and after.

Run from the repository root:

    .venv/bin/python benchmarks/bench_agreement.py

Two measurements, each with the float32 torch predictor the MI filter used before
(``float32``) and the exact predictor it uses now (``exact``), side by side in one run:

1. **Recomputation.** One MI-filter aggregate, as every committee member computes it:
   n + 1 labellings of the validation split, the filter's rules, the average, the
   canonical model bytes and their CID (fetching and decoding the blobs is left out: it is
   the same either way). 10 and 100 updates, the zoo's ``mlp`` and ``cnn``, one thread
   (torch and BLAS), the two predictors interleaved, the median of a few repeats.
2. **Round time.** The default ``flare simulate`` (the protocol run: 10 clients, a
   committee recomputing every round), once per predictor, each in a fresh process with
   one BLAS/OpenMP thread. The same global-model CIDs come out of both unless a label
   flips at a near-tie; the script says which.

Writes ``docs/bench/agreement.md`` and ``docs/bench/agreement.json``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
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

NAME = "agreement"
COMMAND = ".venv/bin/python benchmarks/bench_agreement.py"
MODELS = ("mlp", "cnn")
UPDATE_COUNTS = (10, 100)
REPEATS = 3
SIMULATION_REPEATS = 2
PREDICTORS = ("float32", "exact")


class Float32Predictor:
    """The MI filter's labels as they were: float32 torch inference, argmax."""

    def __init__(self, module: Any) -> None:
        from flare.models import TorchModelAdapter

        self.learner = TorchModelAdapter(module)

    def predict(self, weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
        self.learner.set_weights(weights)
        return self.learner.predict(features)


def _predictor(kind: str, module: Any) -> Any:
    from flare.models import ExactPredictor

    return ExactPredictor(module) if kind == "exact" else Float32Predictor(module)


def _round_inputs(model: str, updates: int, seed: int = 0) -> tuple[Any, dict, list, Any]:
    """A briefly trained global model and updates around a common direction, a third of
    them sign-flipped: the MI filter has work to do."""
    from flare.aggregation import ClientUpdate
    from flare.data import load_dataset
    from flare.models import TorchModelAdapter, TrainingConfig, build_model

    data = load_dataset("digits", seed=seed)
    module = build_model(model, data.num_features, data.num_classes, seed=seed)
    learner = TorchModelAdapter(module, TrainingConfig(epochs=1))
    initial = learner.get_weights()
    learner.train(data.train_features[:300], data.train_labels[:300], seed=seed)
    global_weights = learner.get_weights()
    rng = np.random.default_rng(seed)
    clients = []
    for index in range(updates):
        sign = -1.0 if index < updates // 3 else 1.0
        delta = {
            name: (
                sign * 0.2 * (global_weights[name] - initial[name])
                + rng.normal(0, 0.002, initial[name].shape)
            ).astype(np.float32)
            for name in initial
        }
        clients.append(ClientUpdate(f"client-{index}", delta, 100))
    return module, global_weights, clients, data


def recomputation() -> list[dict[str, Any]]:
    """Seconds per committee aggregate, each predictor, each model and round size."""
    import torch
    from threadpoolctl import threadpool_limits

    from flare.aggregation import AggregationContext, make_aggregator
    from flare.federation.protocol.artifacts import encode_model
    from flare.storage import compute_cid
    from flare.tensors import add

    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(limits=1):
        for model in MODELS:
            for updates in UPDATE_COUNTS:
                module, global_weights, clients, data = _round_inputs(model, updates)
                seconds: dict[str, list[float]] = {kind: [] for kind in PREDICTORS}
                outcome: dict[str, tuple[list[str], str]] = {}
                for _ in range(REPEATS):
                    for kind in PREDICTORS:
                        context = AggregationContext(
                            global_weights,
                            _predictor(kind, module).predict,
                            data.validation_features,
                            data.validation_labels,
                        )
                        started = time.perf_counter()
                        result = make_aggregator("mi").aggregate(clients, context)
                        blob = encode_model(add(global_weights, result.delta))
                        cid = str(compute_cid(blob))
                        seconds[kind].append(time.perf_counter() - started)
                        outcome[kind] = (result.flagged, cid)
                rows.append(
                    {
                        "model": model,
                        "updates": updates,
                        "validation_samples": len(data.validation_labels),
                        **{f"{k}_seconds": statistics.median(v) for k, v in seconds.items()},
                        "same_flags": outcome["float32"][0] == outcome["exact"][0],
                        "same_cid": outcome["float32"][1] == outcome["exact"][1],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def simulate_with(kind: str, report: Path) -> int:
    """``flare simulate --report`` with the MI filter's predictor set to ``kind``."""
    import flare.federation.protocol.aggregate as aggregate
    import flare.federation.setup as setup
    from flare.cli import main

    if kind == "float32":
        aggregate.ExactPredictor = Float32Predictor  # what load_task_context builds
        setup.ExactPredictor = Float32Predictor
    return main(["simulate", "--report", str(report)])


def round_times() -> dict[str, Any]:
    """The default protocol simulation per predictor, each run in a fresh process, the two
    predictors alternating ``SIMULATION_REPEATS`` times so that load drifts hit both."""
    found: dict[str, Any] = {
        kind: {"process_seconds": [], "round_seconds": [], "aggregate_seconds": []}
        for kind in PREDICTORS
    }
    with tempfile.TemporaryDirectory() as directory:
        for repeat in range(SIMULATION_REPEATS):
            for kind in PREDICTORS:
                report = Path(directory) / f"{kind}-{repeat}.json"
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, __file__, "--simulate", kind, str(report)],
                    env={**os.environ, **SINGLE_THREAD_ENVIRONMENT},
                    cwd=REPOSITORY,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                run = found[kind]
                run["process_seconds"].append(time.perf_counter() - started)
                rounds = json.loads(report.read_text())["rounds"]
                run["round_seconds"] += [r["seconds"] for r in rounds[1:]]  # 1: warm-up
                run["aggregate_seconds"] += [r["timings"]["aggregate"] for r in rounds[1:]]
                run["global_models"] = [r["protocol"]["global_model"] for r in rounds]
                print(kind, json.dumps(run["process_seconds"]), flush=True)
    return found


def markdown(env: dict[str, Any], rows: list[dict[str, Any]], rounds: dict[str, Any]) -> str:
    lines = [
        "# Exact inference: what agreement costs",
        "",
        f"Produced by `{COMMAND}`. {environment_line(env)}",
        "",
        "The MI filter labels the validation split once per update and once for the global",
        "model. `float32` is the torch inference it used before, `exact` the integer",
        "inference of `flare/models/exact.py` it uses now (see",
        "[mi-filter.md](../mi-filter.md#portable-inference)).",
        "",
        "## One committee recomputation",
        "",
        "MI filter, average, canonical bytes and CID; one thread; median of "
        f"{REPEATS} interleaved repeats.",
        "",
        "| model | updates | validation samples | float32 (s) | exact (s) | ratio "
        "| same flags | same CID |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['updates']} | {row['validation_samples']} "
            f"| {row['float32_seconds']:.3f} | {row['exact_seconds']:.3f} "
            f"| {row['exact_seconds'] / row['float32_seconds']:.1f}× "
            f"| {'yes' if row['same_flags'] else 'no'} | {'yes' if row['same_cid'] else 'no'} |"
        )
    same_models = rounds["float32"]["global_models"] == rounds["exact"]["global_models"]
    lines += [
        "",
        "## The default `flare simulate`, round by round",
        "",
        "MLP on digits, 10 clients (3 sign-flip attackers), MI filter, a committee that",
        "recomputes every round; one BLAS/OpenMP thread per process. `aggregate` is the",
        "round's aggregation phase (the proposer's and every member's recomputation).",
        f"{SIMULATION_REPEATS} runs per predictor, alternating; medians over rounds 2–10 of",
        "all runs (round 1 carries the start-up).",
        "",
        "| predictor | whole runs (s) | median round (s) | median aggregate phase (s) |",
        "|---|---|---|---|",
    ]
    for kind in PREDICTORS:
        run = rounds[kind]
        lines.append(
            f"| {kind} | {', '.join(f'{t:.1f}' for t in run['process_seconds'])} "
            f"| {statistics.median(run['round_seconds']):.2f} "
            f"| {statistics.median(run['aggregate_seconds']):.2f} |"
        )
    lines += [
        "",
        "Global-model CIDs of the ten rounds: "
        + (
            "identical with both predictors (no label that decided anything differed)."
            if same_models
            else "they differ: some label lay on a near-tie, which float32 inference "
            "decided one way and exact inference the other."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", nargs=2, metavar=("PREDICTOR", "REPORT"))
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args()
    if args.simulate:
        kind, report = args.simulate
        sys.exit(simulate_with(kind, Path(report)))
    env = environment()
    rows = recomputation()
    rounds = round_times()
    data = {"environment": env, "recomputation": rows, "round_times": rounds}
    write_results(NAME, markdown(env, rows, rounds), data, args.output_dir)


if __name__ == "__main__":
    main()

"""Compression benchmark: per-layer PowerSGD size, error and speed; codecs on the default task.

Run from the repository root:

    .venv/bin/python benchmarks/bench_compression.py            # both parts
    .venv/bin/python benchmarks/bench_compression.py --part task

Writes docs/bench/compression.md (tables) and docs/bench/compression.json (raw numbers); a
part not rerun keeps its numbers from the existing JSON. Sizes, errors and accuracies are
deterministic (seeded); times depend on the machine.
"""

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from flare.compression import Codec, PowerSGDCodec, UpdateBinding, decode_update, make_codec
from flare.compression.powersgd import orthonormalise
from flare.compression.rebuild import (
    factor_bits,
    low_rank_matrix,
    low_rank_product,
    onto_grid,
    rebuild_tensor,
)
from flare.compression.wire import load_container_tensors

SHAPES = {
    "mlp fc1 256x64": (256, 64),
    "mlp fc2 128x256": (128, 256),
    "mlp fc3 10x128": (10, 128),
    "cnn conv1 16x1x3x3": (16, 1, 3, 3),
    "cnn conv2 32x16x3x3": (32, 16, 3, 3),
    "cnn fc1 64x512": (64, 512),
    "cnn fc2 10x64": (10, 64),
}
"""Every matrix-shaped layer of the default MLP and of the CNN on digits (flare/models/zoo.py)."""
MODELS = {
    "mlp": {
        "0.weight": (256, 64),
        "0.bias": (256,),
        "2.weight": (128, 256),
        "2.bias": (128,),
        "4.weight": (10, 128),
        "4.bias": (10,),
    },
    "cnn": {
        "1.weight": (16, 1, 3, 3),
        "1.bias": (16,),
        "3.weight": (32, 16, 3, 3),
        "3.bias": (32,),
        "7.weight": (64, 512),
        "7.bias": (64,),
        "9.weight": (10, 64),
        "9.bias": (10,),
    },
}
"""The default MLP and the CNN on digits, whole: one blob per update, as clients send them."""
MODEL_CODECS = {"powersgd": {"rank": 4}, "powersgd-q8": {}}
RANKS = (1, 2, 4, 8)
SIGNAL_RANK = 8
NOISE_FRACTION = 0.1
REPEATS = 31
ROUNDS = 10
DRIFT = 0.05
BINDING = UpdateBinding("0xbench", "bench", 0, 0, "bench-base", 1)
COMMAND = ".venv/bin/python benchmarks/bench_compression.py"
TASK_CODECS = ("none", "powersgd", "powersgd-q8", "topk")
TASK_PARTITIONS = ("iid", "dirichlet")
TASK_SEEDS = (0, 1, 2)
TASK_WORKERS = 2
OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "bench"


def synthetic_delta(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A gradient-like matrix: rank-8 signal with geometric spectrum plus 10% Gaussian noise.

    Singular values of the signal are 1, 2^-1/2, 2^-1, ... so the spectrum decays
    smoothly, and the noise (Frobenius norm 10% of the signal's) keeps it full rank.
    """
    rng = np.random.default_rng(seed)
    rows, cols = shape[0], int(np.prod(shape[1:]))
    k = min(SIGNAL_RANK, rows, cols)
    u, _ = np.linalg.qr(rng.standard_normal((rows, k)))
    v, _ = np.linalg.qr(rng.standard_normal((cols, k)))
    signal = (u * 2.0 ** (-np.arange(k) / 2)) @ v.T
    noise = rng.standard_normal((rows, cols))
    noise *= NOISE_FRACTION * np.linalg.norm(signal) / np.linalg.norm(noise)
    return (signal + noise).astype(np.float32).reshape(shape)


def optimal_error(matrix: np.ndarray, rank: int) -> float:
    """Relative error of the best rank-``rank`` approximation (Eckart-Young, via SVD)."""
    singular = np.linalg.svd(
        matrix.reshape(matrix.shape[0], -1).astype(np.float64), compute_uv=False
    )
    return float(np.sqrt(np.sum(singular[rank:] ** 2) / np.sum(singular**2)))


def relative_error(approximation: np.ndarray, exact: np.ndarray) -> float:
    return float(np.linalg.norm(approximation - exact) / np.linalg.norm(exact))


def median_seconds(action: Callable[[], object]) -> float:
    """Median CPU seconds of ``action`` (one thread, so CPU time is its own work): on a
    shared machine wall time also counts the waits for a core, which no codec controls."""
    action()  # warm caches and lazy imports
    samples = []
    for _ in range(REPEATS):
        start = time.process_time()
        action()
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def measure(label: str, shape: tuple[int, ...], rank: int) -> dict:
    """One row: size, one-shot error, error after warm-started rounds, and timing."""
    spec = {"w": shape}
    delta = synthetic_delta(shape, seed=sum(shape))
    codec = PowerSGDCodec(rank=rank)
    blob = codec.new_encoder(spec, 0).encode({"w": delta}, BINDING)
    dense_blob = make_codec("none").new_encoder(spec, 0).encode({"w": delta}, BINDING)
    layout = codec.layout(spec)[0]
    one_shot = relative_error(decode_update(blob, spec).delta["w"], delta)

    # Slowly drifting matrix, error memory cleared each round: isolates the warm start.
    warm_encoder = codec.new_encoder(spec, 0)
    # Same drifting sequence with error feedback on: how much the server's sum misses.
    feedback_encoder = codec.new_encoder(spec, 0)
    drift_rng = np.random.default_rng(1)
    current = delta.astype(np.float64)
    sent_sum, true_sum = np.zeros(shape), np.zeros(shape)
    for _ in range(ROUNDS):
        current += DRIFT * np.linalg.norm(delta) * _unit(drift_rng.standard_normal(shape))
        step = current.astype(np.float32)
        warm_blob = warm_encoder.encode({"w": step}, BINDING)
        if layout.is_low_rank:  # a dense layer keeps no error memory
            warm_encoder.error_memory["w"][:] = 0.0
        sent_sum += decode_update(feedback_encoder.encode({"w": step}, BINDING), spec).delta["w"]
        true_sum += step
    warm = relative_error(decode_update(warm_blob, spec).delta["w"], step)
    warm_optimal = optimal_error(step, rank)

    rows, cols = layout.matrix_shape
    matrix = delta.reshape(rows, cols).astype(np.float64)
    q, p = np.ones((cols, rank)), np.ones((rows, rank))
    encoder = codec.new_encoder(spec, 0)
    codec_seconds = median_seconds(
        lambda: decode_update(encoder.encode({"w": delta}, BINDING), spec)
    )
    core_seconds = median_seconds(lambda: _power_step_and_rebuild(matrix, q))
    floor_seconds = median_seconds(lambda: (matrix @ q, matrix.T @ p))
    matrix32, q32, p32 = (a.astype(np.float32) for a in (matrix, q, p))
    float32_floor_seconds = median_seconds(lambda: (matrix32 @ q32, matrix32.T @ p32))
    optimal = optimal_error(delta, rank)
    return {
        "layer": label,
        "shape": list(shape),
        "rank": rank,
        "low_rank": layout.is_low_rank,
        "raw_bytes": delta.nbytes,
        "dense_blob_bytes": len(dense_blob),
        "blob_bytes": len(blob),
        "ratio": delta.nbytes / len(blob),
        "error": one_shot,
        "optimal_error": optimal,
        "error_vs_optimal": one_shot / optimal if optimal else float("nan"),
        "warm_error": warm,
        "warm_optimal_error": warm_optimal,
        "feedback_sum_error": relative_error(sent_sum, true_sum),
        "codec_seconds": codec_seconds,
        "core_seconds": core_seconds,
        "floor_seconds": floor_seconds,
        "time_vs_floor": codec_seconds / floor_seconds,
        "float32_floor_seconds": float32_floor_seconds,
        "time_vs_float32_floor": codec_seconds / float32_floor_seconds,
    }


def measure_model(model: str, codec_name: str) -> dict:
    """Encode + decode of a whole model's update against the two float32 products of
    every factored layer (each at its own rank): the per-blob cost spread over the model."""
    spec = MODELS[model]
    codec = make_codec(codec_name, **MODEL_CODECS[codec_name])
    delta = {name: synthetic_delta(shape, seed=sum(shape)) for name, shape in spec.items()}
    encoder = codec.new_encoder(spec, 0)
    blob = encoder.encode(delta, BINDING)
    encode_seconds = median_seconds(lambda: encoder.encode(delta, BINDING))
    decode_seconds = median_seconds(lambda: decode_update(blob, spec))
    products = []
    for entry in codec.layout(spec):
        if entry.is_low_rank:
            matrix = delta[entry.name].reshape(entry.matrix_shape)
            q = np.ones((matrix.shape[1], entry.rank), dtype=np.float32)
            p = np.ones((matrix.shape[0], entry.rank), dtype=np.float32)
            products.append((matrix, q, p))
    floor_seconds = median_seconds(lambda: [(m @ q, m.T @ p) for m, q, p in products])
    codec_seconds = encode_seconds + decode_seconds
    arithmetic_seconds = _arithmetic_seconds(codec, spec, delta, blob)
    return {
        "model": model,
        "codec": codec_name,
        "params": codec.params(),
        "ratio": sum(tensor.nbytes for tensor in delta.values()) / len(blob),
        "encode_seconds": encode_seconds,
        "decode_seconds": decode_seconds,
        "float32_floor_seconds": floor_seconds,
        "time_vs_float32_floor": codec_seconds / floor_seconds,
        "arithmetic_seconds": arithmetic_seconds,
        "rest_seconds": codec_seconds - arithmetic_seconds,
    }


def _arithmetic_seconds(codec: Codec, spec: dict, delta: dict, blob: bytes) -> float:
    """The part of an encode + decode that is the factored layers' arithmetic: each power
    step (M@Q, Gram-Schmidt, M^T@P, in float64) and the deterministic rebuild twice (the
    encoder's error feedback and the decoder), the rebuild as the decoder does it."""
    stored = load_container_tensors(blob)  # PowerSGD blobs are never gzip-framed
    steps = []
    for entry in codec.layout(spec):
        if entry.is_low_rank:
            matrix = delta[entry.name].reshape(entry.matrix_shape).astype(np.float64)
            q = np.ones((matrix.shape[1], entry.rank))
            steps.append((entry, matrix, q))

    def arithmetic() -> None:
        for entry, matrix, q in steps:
            matrix.T @ orthonormalise(matrix @ q)
            rebuild_tensor(entry, stored)
            rebuild_tensor(entry, stored)

    return median_seconds(arithmetic)


def _power_step_and_rebuild(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The codec's arithmetic alone: one power step, then the encoder's and decoder's rebuild."""
    bits = factor_bits(q.shape[1])
    p = orthonormalise(matrix @ q)
    p_grid, q_grid = onto_grid(p, bits), onto_grid(matrix.T @ p, bits)
    low_rank_product(p_grid, q_grid)
    return low_rank_matrix(p_grid.stored, q_grid.stored)


def _unit(array: np.ndarray) -> np.ndarray:
    return array / np.linalg.norm(array)


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


def task_markdown(runs: list[dict]) -> list[str]:
    accuracy = {(r["codec"], r["partition"], r["seed"]): r["accuracy"] for r in runs}
    lines = [
        "## Codecs on the default task",
        "",
        "Digits, MLP 64-256-128-10, 10 clients, 10 rounds, no attackers, fedavg, offline "
        f"(`SimulationConfig(malicious=0, aggregator='fedavg')`), seeds "
        f"{', '.join(map(str, TASK_SEEDS))}. **ratio**: raw float32 bytes of every update / "
        "bytes uploaded (headers included); **accuracy**: final test accuracy, mean ± std "
        "over seeds; **Δ pts**: mean per-seed difference from `none` in percentage points; "
        "**target**: at least 25x fewer bytes and at most 1 point below `none`.",
        "",
        "| codec | params | partition | target | ratio | accuracy % | Δ pts |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for partition in TASK_PARTITIONS:
        for codec in TASK_CODECS:
            cell = [r for r in runs if r["codec"] == codec and r["partition"] == partition]
            if not cell:
                continue
            scores = [100 * r["accuracy"] for r in cell]
            gaps = [
                100 * (r["accuracy"] - accuracy[("none", partition, r["seed"])])
                for r in cell
                if ("none", partition, r["seed"]) in accuracy
            ]
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            params = json.dumps(cell[0]["params"], separators=(",", ":"))
            target_met = statistics.mean(r["ratio"] for r in cell) >= 25 and (
                statistics.mean(gaps) >= -1
            )
            lines.append(
                f"| {codec} | `{params}` | {partition} | {'yes' if target_met else 'no'} "
                f"| {statistics.mean(r['ratio'] for r in cell):.1f} "
                f"| {statistics.mean(scores):.2f} ± {spread:.2f} "
                f"| {statistics.mean(gaps):+.2f} |"
            )
    return lines


def markdown(rows: list[dict], models: list[dict], environment: dict, runs: list[dict]) -> str:
    lines = [
        "# Compression benchmark",
        "",
        "## PowerSGD per layer",
        "",
        f"Produced by `{COMMAND}` ({environment['python']}, numpy {environment['numpy']}, "
        f"{environment['cpus']} CPUs, {environment['machine']}; one BLAS thread). Sizes and "
        "errors are deterministic (seeded); times are medians of "
        f"{REPEATS} runs in CPU time (`time.process_time`), which a shared machine's load "
        "disturbs less than wall time; they still move with it (shared caches).",
        "",
        f"Input: seeded synthetic deltas with a decaying spectrum: a rank-{SIGNAL_RANK} signal "
        "with singular values 1, 2^-1/2, 2^-1, ... plus Gaussian noise whose Frobenius norm "
        f"is {NOISE_FRACTION:.0%} of the signal's (so the matrix is full rank). Conv kernels "
        "are factored as (out, in*kh*kw).",
        "",
        "- **ratio**: raw float32 bytes / whole PowerSGD blob (header included; the header "
        "is ~0.5 KiB, which dominates for small layers). `dense` means the codec sends the "
        "tensor as float32 because rank-r factors would not be smaller.",
        "- **error**: ||M - PQ^T|| / ||M|| after one encode from a fresh encoder (random "
        "start); **SVD**: the best possible rank-r error; **x opt**: their ratio.",
        f"- **warm**: the same error after {ROUNDS} encodes of a slowly drifting matrix "
        f"(each round adds {DRIFT:.0%} of ||M|| in a random direction), error memory cleared "
        "each round so only the warm start acts; **warm SVD**: optimum for the last matrix.",
        f"- **EF sum**: with error feedback on, ||sum of decoded - sum of inputs|| / "
        f"||sum of inputs|| over those {ROUNDS} rounds: what the server is still owed.",
        "- **codec us**: encode (power step, serialisation) + `decode_update` (validation, "
        "reconstruction); **core us**: its arithmetic alone (M@Q, Gram-Schmidt, M^T@P, "
        "and the deterministic rebuild, done twice: encoder's error feedback and decoder); "
        "**floor us**: the two bare float64 products M@Q and M^T@P; **x floor**: codec / "
        "floor; **core x**: core / floor; **f32 floor us**: the same two products in "
        "float32; **x f32**: codec / f32 floor, the issue's measure (target 3).",
        "",
        "| layer | r | ratio | error | SVD | x opt | warm | warm SVD | EF sum "
        "| codec us | core us | floor us | x floor | core x | f32 floor us | x f32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = f"{row['ratio']:.1f}" if row["low_rank"] else f"{row['ratio']:.2f} dense"
        lines.append(
            f"| {row['layer']} | {row['rank']} | {ratio} | {row['error']:.3f} "
            f"| {row['optimal_error']:.3f} | {row['error_vs_optimal']:.2f} "
            f"| {row['warm_error']:.3f} | {row['warm_optimal_error']:.3f} "
            f"| {row['feedback_sum_error']:.3f} | {row['codec_seconds'] * 1e6:.0f} "
            f"| {row['core_seconds'] * 1e6:.0f} | {row['floor_seconds'] * 1e6:.1f} "
            f"| {row['time_vs_floor']:.0f} | {row['core_seconds'] / row['floor_seconds']:.0f} "
            f"| {row['float32_floor_seconds'] * 1e6:.1f} | {row['time_vs_float32_floor']:.0f} |"
        )
    if rows:
        codec_x = [row["time_vs_float32_floor"] for row in rows]
        core_x = [row["core_seconds"] / row["float32_floor_seconds"] for row in rows]
        lines += [
            "",
            f"Against two float32 matmuls the codec takes {min(codec_x):.0f}-{max(codec_x):.0f}x "
            "(the issue's target is 3x, not met), its arithmetic alone "
            f"{min(core_x):.0f}-{max(core_x):.0f}x. That arithmetic is mostly the deterministic "
            "rebuild the bitwise guarantee requires: a float64 sum of r outer products, "
            "elementwise and in column order (a BLAS matmul may reorder its sums with the CPU "
            "or the thread count), so 2r+1 passes over a float64 matrix of the layer's size, "
            "done twice (the encoder's error feedback, then the decoder), where each of the "
            "floor's products reads the float32 matrix once and keeps its r multiply-adds per "
            "entry in registers. At these sizes (at most 33k entries, floors of a few "
            "microseconds) every numpy call's fixed cost counts too." + _rest_sentence(models),
        ]
    lines += ["", *model_markdown(models), "", *task_markdown(runs)]
    return "\n".join(lines) + "\n"


def _rest_sentence(models: list[dict]) -> str:
    """What the whole-model table says about the cost beside the arithmetic."""
    if not models or "rest_seconds" not in models[0]:
        return ""
    rest = [row["rest_seconds"] * 1e6 for row in models]
    arithmetic = [row["arithmetic_seconds"] * 1e6 for row in models]
    return (
        f" Per whole update (below), the arithmetic takes {min(arithmetic):.0f}-"
        f"{max(arithmetic):.0f} us of encode + decode and everything else (error-feedback "
        "sums, quantisation, serialisation, validation, Python per layer and per blob) "
        f"{min(rest):.0f}-{max(rest):.0f} us."
    )


def model_markdown(models: list[dict]) -> list[str]:
    if not models:
        return []
    lines = [
        "## Whole models",
        "",
        "One update blob per model, as a client sends it: **encode us** and **decode us** "
        "(`decode_update`, validation included), medians as above; **f32 floor us**: the "
        "two float32 products M@Q and M^T@P of every factored layer, at its rank, in one "
        "go; **x f32**: (encode + decode) / f32 floor; **arith us**: of encode + decode, the "
        "factored layers' arithmetic (each power step in float64 and the deterministic "
        "rebuild twice, as the decoder does it); **rest us**: everything else (error-feedback "
        "sums, quantisation, serialisation, validation, Python per layer and per blob).",
        "",
        "| model | codec | params | ratio | encode us | decode us | f32 floor us | x f32 "
        "| arith us | rest us |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in models:
        lines.append(
            f"| {row['model']} | {row['codec']} | `{json.dumps(row['params'])}` "
            f"| {row['ratio']:.1f} | {row['encode_seconds'] * 1e6:.0f} "
            f"| {row['decode_seconds'] * 1e6:.0f} | {row['float32_floor_seconds'] * 1e6:.1f} "
            f"| {row['time_vs_float32_floor']:.0f} | {row['arithmetic_seconds'] * 1e6:.0f} "
            f"| {row['rest_seconds'] * 1e6:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "layers", "task"), default="all")
    part = parser.parse_args().part
    previous_path = OUTPUT / "compression.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else {}
    environment = {
        "python": f"Python {platform.python_version()}",
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    if part == "task":
        rows, models = previous.get("rows", []), previous.get("models", [])
    else:
        # one BLAS thread: on a shared machine a second one mostly waits for its core
        with threadpool_limits(limits=1):
            rows = [
                measure(label, shape, rank) for label, shape in SHAPES.items() for rank in RANKS
            ]
            models = [measure_model(model, codec) for model in MODELS for codec in MODEL_CODECS]
    runs = task_rows() if part != "layers" else previous.get("task", [])
    OUTPUT.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, models, environment, runs)
    (OUTPUT / "compression.md").write_text(text)
    results = {
        "command": COMMAND,
        "environment": environment,
        "rows": rows,
        "models": models,
        "task": runs,
    }
    previous_path.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

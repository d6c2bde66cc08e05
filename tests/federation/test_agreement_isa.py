"""The MI filter's labels and the aggregate's bytes are the same on every CPU path.

The candidates are adversarial. Each is an honest-looking update whose classifier head is
moved (least-norm) so that 40 validation samples sit on an exact float64 tie between their
two largest logits: float32 inference then labels them by its rounding, which depends on
the instruction set, the BLAS kernel and the thread count. Every candidate is aggregated
with the MI filter in one round with honest updates, in fresh processes under different
ATen, oneDNN, MKL, OpenBLAS and numpy instruction-set settings and thread counts: the
exact predictor's logits, labels, the exact reference step the filter judges by, its
decisions and the model CID must be identical bytes.

The weights are built once, here, and written to a file that every process reads:
training in each process would itself differ by CPU path. Run as a script with that file,
this module prints one process's outcome.
"""

import copy
import hashlib
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flare.aggregation import AggregationContext, ClientUpdate, make_aggregator
from flare.data import load_dataset
from flare.federation.protocol.artifacts import encode_model
from flare.models import ExactPredictor, TorchModelAdapter, TrainingConfig, build_model
from flare.models.exact_training import exact_reference_step
from flare.storage import compute_cid
from flare.tensors import Weights, add, subtract

CANDIDATES = {"mlp": 6, "cnn": 2}
HONEST_UPDATES = 4
TIED_SAMPLES = 40
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _numpy_dispatch_targets() -> str:
    """The SIMD targets numpy dispatches to on this machine, all of which a process may
    disable (the baseline ones it may not)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return " ".join(t for t in __cpu_dispatch__ if __cpu_features__.get(t))


def _threads(count: int) -> dict[str, str]:
    return dict.fromkeys(THREAD_VARIABLES, str(count))


ENVIRONMENTS: dict[str, dict[str, str]] = {
    "inherited": {},
    "aten-default-1-thread": {"ATEN_CPU_CAPABILITY": "default", **_threads(1)},
    "aten-avx2-4-threads": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        **_threads(4),
    },
    "aten-avx512-numpy-no-simd-openblas-nehalem": {
        "ATEN_CPU_CAPABILITY": "avx512",  # capped to what the CPU has
        "NPY_DISABLE_CPU_FEATURES": _numpy_dispatch_targets(),
        "OPENBLAS_CORETYPE": "Nehalem",
    },
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
}
"""Settings of different libraries share a process; the two that flip float32 labels on
this project's machines (oneDNN's SSE4.1 and MKL's compatible path) run alone."""


def _tied_head(module: torch.nn.Module, weights: Weights, samples: np.ndarray) -> Weights:
    """``weights`` with the last Linear layer moved, by the least-norm change, so that each
    of ``samples`` has its two largest float64 logits exactly equal."""
    reference = copy.deepcopy(module).double()
    reference.load_state_dict(
        {k: torch.as_tensor(v, dtype=torch.float64) for k, v in weights.items()}
    )
    body = torch.nn.Sequential(*list(reference.children())[:-1])
    with torch.no_grad():
        hidden = body(torch.as_tensor(samples, dtype=torch.float64)).numpy()
    head, bias = list(weights)[-2:]
    matrix = np.concatenate([weights[head], weights[bias][:, None]], axis=1).astype(np.float64)
    inputs = np.concatenate([hidden, np.ones((len(hidden), 1))], axis=1)
    logits = inputs @ matrix.T
    order = np.argsort(-logits, axis=1)
    equations = np.zeros((len(samples), *matrix.shape))
    for row, (first, second) in enumerate(order[:, :2]):
        equations[row, first] += inputs[row]
        equations[row, second] -= inputs[row]
    gaps = np.take_along_axis(logits, order[:, :1], 1) - np.take_along_axis(
        logits, order[:, 1:2], 1
    )
    change = np.linalg.lstsq(equations.reshape(len(samples), -1), -gaps[:, 0], rcond=None)[0]
    moved = matrix + change.reshape(matrix.shape)
    return {
        **weights,
        head: moved[:, :-1].astype(np.float32),
        bias: moved[:, -1].astype(np.float32),
    }


def _top_two_gaps(module: torch.nn.Module, weights: Weights, features: np.ndarray) -> np.ndarray:
    reference = copy.deepcopy(module).double()
    reference.load_state_dict(
        {k: torch.as_tensor(v, dtype=torch.float64) for k, v in weights.items()}
    )
    with torch.no_grad():
        logits = np.sort(reference(torch.as_tensor(features, dtype=torch.float64)).numpy(), axis=1)
    return (logits[:, -1] - logits[:, -2]) / np.abs(logits).max()


def build_rounds(path: Path) -> None:
    """Train a global model per architecture, then honest updates and tied candidates."""
    data = load_dataset("digits", seed=0)
    features, labels = data.validation_features, data.validation_labels
    arrays: dict[str, np.ndarray] = {"features": features, "labels": labels}
    rng = np.random.default_rng(10)
    for name, count in CANDIDATES.items():
        module = build_model(name, data.num_features, data.num_classes, seed=0)
        learner = TorchModelAdapter(module, TrainingConfig(epochs=1))
        initial = learner.get_weights()
        learner.train(data.train_features[:300], data.train_labels[:300], seed=0)
        global_weights = learner.get_weights()
        direction = {k: 0.05 * (global_weights[k] - initial[k]) for k in initial}

        def honest_delta(direction: Weights = direction) -> Weights:
            return {
                k: (v + rng.normal(0, 0.3 * np.abs(v).mean() + 1e-6, v.shape)).astype(np.float32)
                for k, v in direction.items()
            }

        deltas = [honest_delta() for _ in range(HONEST_UPDATES)]
        for _ in range(count):
            start = add(global_weights, honest_delta())
            # the closest calls need the smallest move, which leaves the other samples be
            closest = np.argsort(_top_two_gaps(module, start, features))[: 2 * TIED_SAMPLES]
            samples = np.sort(rng.choice(closest, TIED_SAMPLES, replace=False))
            while True:  # a sample whose third class overtakes the tied two is let go
                candidate = subtract(_tied_head(module, start, features[samples]), global_weights)
                gaps = _top_two_gaps(module, add(global_weights, candidate), features[samples])
                if gaps.max() < 1e-6:
                    break
                samples = samples[gaps < 1e-6]
            assert len(samples) >= TIED_SAMPLES // 4  # typically 25 to 35 stay tied
            deltas.append(candidate)
        arrays.update({f"{name}/global/{k}": v for k, v in global_weights.items()})
        for index, delta in enumerate(deltas):
            arrays.update({f"{name}/delta{index}/{k}": v for k, v in delta.items()})
    np.savez(path, **arrays)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def outcome(path: Path) -> dict[str, Any]:
    """What one process computes from the rounds in ``path``: per architecture the MI
    filter's round (flags, scores, model CID), per candidate its exact logits and labels
    and, beside them, the float32 torch labels."""
    stored = np.load(path)
    features, labels = stored["features"], stored["labels"]
    result: dict[str, Any] = {}
    for name, count in CANDIDATES.items():
        module = build_model(name, features.shape[1], 10, seed=0)
        names = list(module.state_dict())
        global_weights = {k: stored[f"{name}/global/{k}"] for k in names}
        updates = [
            ClientUpdate(
                f"honest-{i}" if i < HONEST_UPDATES else f"candidate-{i - HONEST_UPDATES}",
                {k: stored[f"{name}/delta{i}/{k}"] for k in names},
                100,
            )
            for i in range(HONEST_UPDATES + count)
        ]
        predictor, float32 = ExactPredictor(module), TorchModelAdapter(module)
        reference_step = exact_reference_step(module)
        assert reference_step is not None, name
        context = AggregationContext(
            global_weights, predictor.predict, features, labels, reference_step=reference_step
        )
        aggregation = make_aggregator("mi").aggregate(updates, context)
        result[name] = {
            "reference_step": _digest(
                np.concatenate(
                    [t.ravel() for t in reference_step(global_weights, features, labels).values()]
                )
            ),
            "flagged": aggregation.flagged,
            "scores": aggregation.scores,
            "model": str(compute_cid(encode_model(add(global_weights, aggregation.delta)))),
        }
        for candidate in updates[HONEST_UPDATES:]:
            weights = add(global_weights, candidate.delta)
            float32.set_weights(weights)
            result[f"{name} {candidate.client_id}"] = {
                "logits": _digest(predictor.logits(weights, features)),
                "labels": _digest(predictor.predict(weights, features)),
                "float32_labels": float32.predict(features).tolist(),
            }
    return result


def _run(path: Path, settings: dict[str, str]) -> dict[str, Any]:
    environment = {**os.environ, **settings}
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(path)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    path = tmp_path_factory.mktemp("agreement") / "rounds.npz"
    build_rounds(path)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = {name: pool.submit(_run, path, env) for name, env in ENVIRONMENTS.items()}
        found = {name: run.result() for name, run in runs.items()}
    found["this process"] = outcome(path)
    return found


def _without_float32(result: dict[str, Any]) -> dict[str, Any]:
    return {
        candidate: {k: v for k, v in values.items() if k != "float32_labels"}
        for candidate, values in result.items()
    }


@pytest.mark.slow
def test_exact_inference_and_aggregate_are_identical_on_every_cpu_path(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    reference = _without_float32(outcomes["this process"])
    assert len(reference) == len(CANDIDATES) + sum(CANDIDATES.values())
    for name in CANDIDATES:  # the filter judged by the reference step too
        assert all("cosine_to_reference" in s for s in reference[name]["scores"].values()), name
    for environment, result in outcomes.items():
        assert _without_float32(result) == reference, environment


@pytest.mark.slow
@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"),
    reason="the MKL and oneDNN code paths compared here exist on x86 only",
)
def test_float32_torch_labels_differ_between_cpu_paths(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    """What the exact predictor replaces: the same weights, other float32 labels."""
    reference = outcomes["this process"]
    differing = {
        environment: [
            candidate
            for candidate, values in result.items()
            if "float32_labels" in values
            and values["float32_labels"] != reference[candidate]["float32_labels"]
        ]
        for environment, result in outcomes.items()
    }
    assert any(differing.values()), differing
    assert any(differing["mkl-compatible"]) or any(differing["onednn-sse41"]), differing


if __name__ == "__main__":
    print(json.dumps(outcome(Path(sys.argv[1]))))

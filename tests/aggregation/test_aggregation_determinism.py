"""Every aggregator returns the same bytes whatever the thread count, process or memory layout.

Committee members recompute the aggregate on their own machines and approve only
an identical CID, so this is a correctness property, not a nicety. The round is
large enough (~37k parameters per update) that BLAS-style reductions would
split work across threads. Run as a script, this file prints the round's
digests, which the subprocess test compares with the in-process ones.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from flare.aggregation import AGGREGATORS, AggregationContext, ClientUpdate, make_aggregator

SPEC = {"conv": (32, 16, 3, 3), "dense": (256, 16), "bias": (16,)}


def predict(weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    logits = features @ weights["dense"].astype(np.float64) + weights["bias"]
    return np.argmax(logits, axis=1).astype(np.int64)


def build_round(seed: int = 7) -> tuple[list[ClientUpdate], AggregationContext]:
    """Seven honest updates around a common direction, and three attackers."""
    rng = np.random.default_rng(seed)
    global_weights = {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in SPEC.items()}
    direction = {k: rng.normal(0, 0.05, s) for k, s in SPEC.items()}
    features = rng.normal(size=(300, 256))
    target = {k: global_weights[k] + 4 * direction[k] for k in SPEC}
    labels = predict(target, features)
    deltas = [
        {k: (direction[k] + rng.normal(0, 0.02, s)).astype(np.float32) for k, s in SPEC.items()}
        for _ in range(10)
    ]
    deltas[0] = {k: 10 * v for k, v in deltas[0].items()}
    deltas[1] = {k: -v for k, v in deltas[1].items()}
    deltas[2] = {k: rng.normal(0, 1, s).astype(np.float32) for k, s in SPEC.items()}
    updates = [
        ClientUpdate(f"client-{i}", delta, int(rng.integers(50, 500)))
        for i, delta in enumerate(deltas)
    ]
    server_update = {k: (2 * direction[k]).astype(np.float32) for k in SPEC}

    def train(weights: dict, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return server_update  # FLTrust's root training, fixed: only the rule is under test

    context = AggregationContext(global_weights, predict, features, labels, train=train, seed=3)
    return updates, context


def digest(name: str, updates: list[ClientUpdate], context: AggregationContext) -> str:
    result = make_aggregator(name).aggregate(updates, context)
    hasher = hashlib.sha256()
    for tensor_name in SPEC:
        tensor = result.delta[tensor_name]
        hasher.update(tensor_name.encode() + str(tensor.dtype).encode() + tensor.tobytes())
    summary = [result.accepted, result.flagged, result.scores, result.reasons, result.notes]
    hasher.update(json.dumps(summary, sort_keys=True).encode())
    return hasher.hexdigest()


def all_digests(updates: list[ClientUpdate], context: AggregationContext) -> dict[str, str]:
    return {name: digest(name, updates, context) for name in sorted(AGGREGATORS)}


def relaid(array: np.ndarray) -> np.ndarray:
    """The same values in a different memory layout: a strided view into a Fortran buffer."""
    wide = np.zeros((*array.shape, 2), dtype=array.dtype, order="F")
    wide[..., 1] = array
    view = wide[..., 1]
    assert not view.flags.c_contiguous or array.ndim < 2
    return view


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    return all_digests(*build_round())


def test_the_round_exercises_the_filters(reference: dict[str, str]) -> None:
    updates, context = build_round()
    result = make_aggregator("mi").aggregate(updates, context)
    assert {"client-0", "client-1", "client-2"} <= set(result.flagged)
    assert len(set(reference.values())) == len(reference)


def test_repeated_calls_give_identical_bytes(reference: dict[str, str]) -> None:
    assert all_digests(*build_round()) == reference


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_thread_count_does_not_change_bytes(reference: dict[str, str], threads: int) -> None:
    import torch  # imported here so that the script run in a subprocess starts fast

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            assert all_digests(*build_round()) == reference
    finally:
        torch.set_num_threads(previous)


def test_copies_in_other_memory_layouts_give_identical_bytes(reference: dict[str, str]) -> None:
    updates, context = build_round()
    copied = [
        ClientUpdate(
            u.client_id,
            {k: relaid(u.delta[k]) for k in reversed(list(u.delta))},  # other key order too
            u.num_samples,
        )
        for u in updates
    ]
    copied_context = AggregationContext(
        {k: relaid(v) for k, v in context.global_weights.items()},
        context.predict,
        np.asfortranarray(context.validation_features),
        context.validation_labels.copy(),
        train=context.train,
        seed=context.seed,
    )
    assert all_digests(copied, copied_context) == reference


def test_separate_processes_give_identical_bytes(reference: dict[str, str]) -> None:
    """Two fresh interpreters, one and two BLAS/OpenMP threads, started side by side."""
    runs = []
    for threads in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=threads)
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[variable] = threads
        runs.append(
            subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve())],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for run in runs:
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0
        assert json.loads(output) == reference


if __name__ == "__main__":
    print(json.dumps(all_digests(*build_round())))

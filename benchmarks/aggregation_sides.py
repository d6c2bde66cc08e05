"""One side of ``bench_aggregation.py``, in a process of its own: load a case's updates,
time Flare's rule or Flower's, and write back what it computed.

``bench_aggregation.py`` writes each case's updates once (:func:`write_inputs`) and runs
this script twice per turn, under Flare's venv (``flare``) and under Flower's
(``flower``), one BLAS thread each:

    python benchmarks/aggregation_sides.py {flare,flower} DIRECTORY --rule R \
        --coordinates D --repeats K

It imports nothing from Flare's benchmarks, so that Flower's venv, which has numpy,
``flwr`` and ``threadpoolctl`` but not Flare, can run it.
"""

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

BYZANTINE_SHARE = 0.3
TRIM_FRACTION = 0.3


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


def byzantine_count(clients: int) -> int:
    """``f`` as Flare's default: 30 % of the round, capped so that ``n > 2f + 2``."""
    return max(0, min(int(BYZANTINE_SHARE * clients), (clients - 3) // 2))


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
        timed["selection_floor_wall_min"] = selection_floor_seconds(
            directory, rule, coordinates, repeats
        )
        timed["filling_floor_wall_min"] = selection_floor_seconds(
            directory, "none", coordinates, repeats
        )
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


def selection_floor_seconds(directory: Path, rule: str, coordinates: int, repeats: int) -> float:
    """Wall seconds of the bare numpy steps no exact coordinate-wise rule on these inputs
    skips: copying each tensor's values into one row per coordinate (the layout numpy's
    row kernels order fastest), then ordering every row, ``np.partition`` at the middle
    and the largest value below it (median, even count) or ``np.sort`` (trimmed mean).
    No checks, no scores, no sums. ``rule="none"`` times the copying alone."""
    layers = [np.load(directory / f"{name}.npy") for name in layer_shapes(coordinates)]
    flat = [layer.reshape(layer.shape[0], -1) for layer in layers]
    rows = [np.empty(layer.shape[::-1], dtype=layer.dtype) for layer in flat]
    middle = flat[0].shape[0] // 2

    def order_rows() -> None:
        for layer, row in zip(flat, rows, strict=True):
            np.copyto(row, layer.T)
            if rule == "none":
                continue
            if rule == "trimmed-mean":
                row.sort(axis=1)
                continue
            row.partition(middle, axis=1)
            if layer.shape[0] % 2 == 0:
                row[:, :middle].max(axis=1)

    return time_calls(order_rows, repeats)["wall_min"]


def save_side(prefix: Path, timed: dict[str, Any], selected: list[int]) -> None:
    """``<side>-layer<i>.npy`` per layer of the result, and ``<side>.json`` with the
    times, the selection and the BLAS threads."""
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


SIDES = {"flare": flare_side, "flower": flower_side}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=sorted(SIDES))
    parser.add_argument("directory", type=Path)
    parser.add_argument("--rule", required=True)
    parser.add_argument("--coordinates", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    arguments = parser.parse_args()
    SIDES[arguments.side](
        arguments.directory, arguments.rule, arguments.coordinates, arguments.repeats
    )


if __name__ == "__main__":
    main()

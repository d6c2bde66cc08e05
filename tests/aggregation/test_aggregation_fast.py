"""The fast aggregation paths give exactly the bytes of the elementwise computation.

Each ``reference_*`` function below is the implementation these paths replaced,
kept verbatim as the specification: Krum's scores from every pairwise elementwise
distance, median and trimmed mean from a full float64 sort of the stacked updates,
the weighted average from float64 copies. Inputs include the cases that break a
careless fast path: duplicate updates, updates one ulp apart, equidistant points,
a large common direction, far outliers, mixed dtypes and signed zeros.
"""

import math
import tracemalloc
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from flare.aggregation import (
    AggregationContext,
    ClientUpdate,
    CoordinateMedian,
    Krum,
    MultiKrum,
    TrimmedMean,
)
from flare.aggregation import krum as krum_module
from flare.aggregation.arithmetic import (
    round_significant,
    squared_distance,
    squared_distances_to,
    weighted_average,
)
from flare.aggregation.distances import PairwiseDistances, pairwise_depth
from flare.aggregation.krum import default_byzantine_count, krum_scores
from flare.aggregation.order_statistics import coordinate_median

Deltas = list[dict[str, np.ndarray]]
SHAPES = ({"w": (6, 5), "b": (5,)}, {"conv": (3, 2, 3, 3), "dense": (130,)}, {"v": (9,)})
KINDS = ("spread", "common-direction", "duplicates", "last-bit", "equidistant", "outlier", "ties")


def reference_krum_scores(
    deltas: Sequence[Mapping[str, np.ndarray]], spec: dict, num_byzantine: int
) -> list[float]:
    count = len(deltas)
    distances = [[0.0] * count for _ in range(count)]
    for i in range(count):
        for j in range(i + 1, count):
            distance = squared_distance(deltas[i], deltas[j], spec)
            distances[i][j] = distances[j][i] = distance
    neighbours = max(0, count - num_byzantine - 2)
    scores = []
    for i in range(count):
        nearest = sorted(distances[i][j] for j in range(count) if j != i)[:neighbours]
        scores.append(round_significant(math.fsum(nearest)))
    return scores


def reference_stacked(deltas: Sequence[Mapping[str, np.ndarray]], name: str) -> np.ndarray:
    return np.stack([np.asarray(delta[name], dtype=np.float64) for delta in deltas])


def reference_median(deltas: Sequence[Mapping[str, np.ndarray]], spec: dict) -> dict:
    count = len(deltas)
    middle = count // 2
    median = {}
    for name in spec:
        ordered = np.sort(reference_stacked(deltas, name), axis=0)
        if count % 2 == 0:
            ordered[middle] = (ordered[middle - 1] + ordered[middle]) / 2.0
        median[name] = ordered[middle]
    return median


def reference_trimmed_mean(deltas: Deltas, spec: dict, trim_fraction: float) -> dict:
    count = len(deltas)
    trimmed = math.floor(trim_fraction * count)
    kept = range(trimmed, count - trimmed)
    result = {}
    for name, shape in spec.items():
        ordered = np.sort(reference_stacked(deltas, name), axis=0)
        accumulator = np.zeros(shape, dtype=np.float64)
        for row in kept:
            np.add(accumulator, ordered[row], out=accumulator)
        np.divide(accumulator, len(kept), out=accumulator)
        result[name] = accumulator.astype(np.float32)
    return result


def reference_weighted_average(
    deltas: Deltas, weights: Sequence[float], spec: dict, scales: Sequence[float]
) -> dict:
    total = math.fsum(float(w) for w in weights)
    coefficients = [float(w) * float(s) for w, s in zip(weights, scales, strict=True)]
    averaged = {}
    for name, shape in spec.items():
        accumulator = np.zeros(shape, dtype=np.float64)
        term = np.empty(shape, dtype=np.float64)
        for delta, coefficient in zip(deltas, coefficients, strict=True):
            np.multiply(np.asarray(delta[name], dtype=np.float64), coefficient, out=term)
            np.add(accumulator, term, out=accumulator)
        np.divide(accumulator, total, out=accumulator)
        averaged[name] = accumulator.astype(np.float32)
    return averaged


def make_round(kind: str, count: int, spec: dict, seed: int) -> Deltas:
    """``count`` float32 updates of ``spec`` shaped as ``kind`` says."""
    rng = np.random.default_rng(seed)
    scale = 1e3 if kind == "common-direction" else 0.0
    centre = {name: scale * rng.normal(size=shape) for name, shape in spec.items()}
    deltas = [
        {
            name: (centre[name] + rng.normal(size=shape)).astype(np.float32)
            for name, shape in spec.items()
        }
        for _ in range(count)
    ]
    if kind == "duplicates":
        for index in range(1, count, 2):
            deltas[index] = {name: tensor.copy() for name, tensor in deltas[index - 1].items()}
    elif kind == "last-bit":
        for index in range(1, count):
            deltas[index] = {
                name: np.nextafter(tensor, np.float32(np.inf)) if index % 2 else tensor.copy()
                for name, tensor in deltas[0].items()
            }
    elif kind == "equidistant":
        # ± unit vectors along distinct axes: every pair is √2 or 2 apart
        size = sum(math.prod(shape) for shape in spec.values())
        for index in range(count):
            flat = np.zeros(size, dtype=np.float32)
            flat[(index // 2) % size] = 1.0 if index % 2 == 0 else -1.0
            deltas[index] = unflatten(flat, spec)
    elif kind == "outlier":
        deltas[0] = {name: tensor * np.float32(1e6) for name, tensor in deltas[0].items()}
    elif kind == "ties":
        deltas = [
            {
                name: rng.integers(-2, 3, size=shape).astype(np.float32)
                for name, shape in spec.items()
            }
            for _ in range(count)
        ]
    return deltas


def unflatten(flat: np.ndarray, spec: dict) -> dict[str, np.ndarray]:
    tensors, start = {}, 0
    for name, shape in spec.items():
        size = math.prod(shape)
        tensors[name] = flat[start : start + size].reshape(shape).copy()
        start += size
    return tensors


def as_updates(deltas: Deltas) -> list[ClientUpdate]:
    return [ClientUpdate(f"c{i}", delta, 10 + 7 * i) for i, delta in enumerate(deltas)]


def context_for(spec: dict) -> AggregationContext:
    return AggregationContext({name: np.zeros(shape, np.float32) for name, shape in spec.items()})


def assert_same_bytes(left: Mapping[str, np.ndarray], right: Mapping[str, np.ndarray]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert left[name].dtype == right[name].dtype
        assert left[name].shape == right[name].shape
        assert left[name].tobytes() == right[name].tobytes(), name


rounds = st.tuples(
    st.sampled_from(KINDS), st.integers(1, 12), st.sampled_from(SHAPES), st.integers(0, 2**32 - 1)
)


@pytest.mark.parametrize("threads", [1, 4])
@settings(max_examples=60, deadline=None)
@given(rounds, st.data())
def test_krum_scores_equal_the_elementwise_scores(
    threads: int, round_, data: st.DataObject
) -> None:
    kind, count, spec, seed = round_
    deltas = make_round(kind, count, spec, seed)
    byzantine = data.draw(st.integers(0, max(0, (count - 3) // 2)), label="f")
    with threadpool_limits(limits=threads):
        fast = krum_scores(deltas, spec, byzantine)
    assert fast == reference_krum_scores(deltas, spec, byzantine)


@settings(max_examples=40, deadline=None)
@given(rounds)
def test_multi_krum_and_krum_results_equal_the_reference(round_: tuple) -> None:
    kind, count, spec, seed = round_
    updates = as_updates(make_round(kind, count, spec, seed))
    context = context_for(spec)
    for aggregator in (MultiKrum(), Krum(), MultiKrum(num_selected=2)):
        fast = aggregator.aggregate(updates, context)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(krum_module, "krum_scores", reference_krum_scores)
            patch.setattr(
                krum_module,
                "weighted_average",
                lambda deltas, weights, spec: reference_weighted_average(
                    deltas, weights, spec, [1.0] * len(deltas)
                ),
            )
            reference = aggregator.aggregate(updates, context)
        assert_same_bytes(fast.delta, reference.delta)
        assert (fast.accepted, fast.flagged) == (reference.accepted, reference.flagged)
        assert (fast.scores, fast.reasons, fast.notes) == (
            reference.scores,
            reference.reasons,
            reference.notes,
        )


@settings(max_examples=60, deadline=None)
@given(rounds, st.sampled_from([np.float16, np.float32, np.float64]))
def test_every_interval_contains_the_reproducible_distance(round_, dtype: type) -> None:
    kind, count, spec, seed = round_
    deltas = make_round(kind, count, spec, seed)
    with np.errstate(over="ignore"):
        deltas = [{name: tensor.astype(dtype) for name, tensor in d.items()} for d in deltas]
    assume(all(np.isfinite(tensor).all() for delta in deltas for tensor in delta.values()))
    distances = PairwiseDistances(deltas, spec)
    for i in range(count):
        for j in range(count):
            exact = squared_distance(deltas[i], deltas[j], spec)
            assert distances.lower[i, j] <= exact <= distances.upper[i, j]


def scores_and_distances(
    deltas: Deltas, spec: dict, byzantine: int
) -> tuple[list[float], PairwiseDistances]:
    """Krum's scores, and the distance intervals it worked from."""
    created: list[PairwiseDistances] = []

    class Recorded(PairwiseDistances):
        def __init__(self, *arguments: object) -> None:
            super().__init__(*arguments)
            created.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(krum_module, "PairwiseDistances", Recorded)
        scores = krum_scores(deltas, spec, byzantine)
    (distances,) = created
    return scores, distances


def test_generic_rounds_are_decided_from_the_gram_matrix_alone() -> None:
    """A large common direction (‖x‖ ≈ 1000·spread) would cost the Gram matrix six
    digits; centring each block keeps the intervals narrow enough to decide all."""
    spec = {"w": (64, 40), "b": (40,)}
    deltas = make_round("common-direction", 30, spec, seed=3)
    scores, distances = scores_and_distances(deltas, spec, 8)
    off_diagonal = ~np.eye(30, dtype=bool)
    width = (distances.upper - distances.lower)[off_diagonal]
    assert (width / distances.estimate[off_diagonal]).max() < 1e-10
    assert distances.exact_count == 0
    assert scores == reference_krum_scores(deltas, spec, 8)


def test_attackers_far_away_do_not_widen_the_honest_intervals() -> None:
    """Six of twenty updates sent −4×: a mean-centred Gram matrix would measure every
    honest update from a point the attackers dragged away; blocks after the first
    are centred on the first block's medoid instead, and nothing needs settling."""
    rng = np.random.default_rng(4)
    spec = {"w": (600, 100)}  # 60k coordinates: several Gram blocks at 20 clients
    direction = rng.normal(0.0, 0.05, size=spec["w"])
    deltas = [
        {"w": ((-4.0 if index < 6 else 1.0) * (direction + rng.normal(0, 0.02, spec["w"])))}
        for index in range(20)
    ]
    deltas = [{"w": delta["w"].astype(np.float32)} for delta in deltas]
    scores, distances = scores_and_distances(deltas, spec, 6)
    assert distances.exact_count == 0
    assert scores == reference_krum_scores(deltas, spec, 6)


@pytest.mark.parametrize("kind", ["duplicates", "last-bit", "equidistant"])
def test_near_ties_are_settled_elementwise(kind: str) -> None:
    spec = {"w": (64, 40)}
    deltas = make_round(kind, 12, spec, seed=5)
    scores, distances = scores_and_distances(deltas, spec, 2)
    assert distances.exact_count > 0
    assert scores == reference_krum_scores(deltas, spec, 2)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_coordinates_beyond_the_gram_range_fall_back_to_elementwise_distances() -> None:
    spec = {"v": (4,)}
    rng = np.random.default_rng(11)
    deltas = [{"v": rng.normal(size=4) * 1e160} for _ in range(6)]
    distances = PairwiseDistances(deltas, spec)
    assert distances.settled.all() and distances.exact_count == 15
    assert krum_scores(deltas, spec, 1) == reference_krum_scores(deltas, spec, 1)


def emulated_numpy_sum(values: list[float], start: int, stop: int) -> tuple[float, int]:
    """numpy's pairwise summation of ``values[start:stop]`` in Python, and its depth."""
    length = stop - start
    if length < 8:
        total = 0.0
        for index in range(start, stop):
            total += values[index]
        return total, length
    if length <= 128:
        partial = values[start : start + 8]
        unrolled = length - length % 8
        for offset in range(8, unrolled, 8):
            for lane in range(8):
                partial[lane] += values[start + offset + lane]
        total = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + (
            (partial[4] + partial[5]) + (partial[6] + partial[7])
        )
        for index in range(start + unrolled, stop):
            total += values[index]
        return total, unrolled // 8 - 1 + 3 + length % 8
    half = length // 2
    half -= half % 8
    left, left_depth = emulated_numpy_sum(values, start, start + half)
    right, right_depth = emulated_numpy_sum(values, start + half, stop)
    return left + right, 1 + max(left_depth, right_depth)


LENGTHS = [*range(1, 140), 255, 256, 257, 1000, 8191, 8192, 8193, 16391, 70001]


def test_numpy_sums_in_the_order_the_error_bound_assumes() -> None:
    """np.sum of a contiguous float64 vector is numpy's pairwise summation, bit for bit,
    and no term passes through more additions than :func:`pairwise_depth` allows."""
    rng = np.random.default_rng(2)
    for length in LENGTHS:
        vector = rng.normal(size=length) * rng.lognormal(sigma=4.0, size=length)
        emulated, depth = emulated_numpy_sum(vector.tolist(), 0, length)
        assert float(np.sum(vector)) == emulated, length
        assert depth <= pairwise_depth(length), length


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.sampled_from([(3,), (129,), (8193,), (4, 33), ()]),
    st.sampled_from([np.float16, np.float32, np.float64, np.longdouble]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_batched_distances_equal_pairwise_ones(
    count: int, shape: tuple, dtype: type, fortran: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    spec = {"t": shape, "u": (2,)}

    def tensor(size: tuple) -> np.ndarray:
        values = (rng.normal(size=size) * 10).astype(dtype)
        return np.asfortranarray(values) if fortran else values

    target = {name: tensor(size) for name, size in spec.items()}
    deltas = [{name: tensor(size) for name, size in spec.items()} for _ in range(count)]
    assert squared_distances_to(target, deltas, spec) == [
        squared_distance(delta, target, spec) for delta in deltas
    ]


@settings(max_examples=60, deadline=None)
@given(rounds, st.floats(0.0, 0.49), st.booleans())
def test_median_and_trimmed_mean_equal_the_reference(round_, trim: float, mixed: bool) -> None:
    kind, count, spec, seed = round_
    deltas = make_round(kind, count, spec, seed)
    if mixed:  # one client in float64, one in float16: sorted in float64, exactly
        deltas[0] = {name: tensor.astype(np.float64) for name, tensor in deltas[0].items()}
        with np.errstate(over="ignore"):
            deltas[-1] = {name: tensor.astype(np.float16) for name, tensor in deltas[-1].items()}
        assume(all(np.isfinite(tensor).all() for tensor in deltas[-1].values()))
    updates, context = as_updates(deltas), context_for(spec)
    assert_same_bytes(coordinate_median(deltas, spec), reference_median(deltas, spec))
    median = CoordinateMedian().aggregate(updates, context)
    expected = {
        name: tensor.astype(np.float32) for name, tensor in reference_median(deltas, spec).items()
    }
    assert_same_bytes(median.delta, expected)
    trimmed = TrimmedMean(trim_fraction=trim).aggregate(updates, context)
    assert_same_bytes(trimmed.delta, reference_trimmed_mean(deltas, spec, trim))
    assert trimmed.scores == {
        update.client_id: {
            "distance_to_aggregate": round_significant(
                math.sqrt(squared_distance(update.delta, trimmed.delta, spec))
            )
        }
        for update in updates
    }


def total_order_median(column: list[float]) -> float:
    """Median with −0.0 sorted before +0.0 (as IEEE 754 totalOrder does)."""
    ordered = sorted(column, key=lambda value: (value, not math.copysign(1.0, value) < 0))
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([-0.0, 0.0, 1.0, -1.0]), min_size=4, max_size=4),
        min_size=1,
        max_size=9,
    )
)
def test_median_orders_negative_zero_before_positive_zero(rows: list[list[float]]) -> None:
    deltas = [{"t": np.array(row, dtype=np.float32)} for row in rows]
    median = coordinate_median(deltas, {"t": (4,)})["t"]
    for coordinate in range(4):
        expected = total_order_median([row[coordinate] for row in rows])
        assert math.copysign(1.0, median[coordinate]) == math.copysign(1.0, expected)
        assert median[coordinate] == expected


@settings(max_examples=40, deadline=None)
@given(rounds, st.lists(st.floats(0.25, 4.0), min_size=12, max_size=12))
def test_weighted_average_equals_the_reference(round_, scales: list[float]) -> None:
    kind, count, spec, seed = round_
    deltas = make_round(kind, count, spec, seed)
    deltas[0] = {name: tensor.astype(np.float64) for name, tensor in deltas[0].items()}
    weights = [3 * index + 1 for index in range(count)]
    assert_same_bytes(
        weighted_average(deltas, weights, spec, scales[:count]),
        reference_weighted_average(deltas, weights, spec, scales[:count]),
    )


def test_krum_holds_a_block_not_every_update_in_float64() -> None:
    """Krum reads the updates in place: its peak allocation is a fraction of the round."""
    spec = {"w": (400, 500)}  # 200k coordinates: 16 MB of float32 updates over 20 clients
    deltas = make_round("spread", 20, spec, seed=1)
    round_bytes = sum(delta["w"].nbytes for delta in deltas)
    tracemalloc.start()
    try:
        krum_scores(deltas, spec, default_byzantine_count(20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < round_bytes / 2


@pytest.mark.parametrize("aggregator", [CoordinateMedian(), TrimmedMean()])
def test_order_statistics_hold_a_block_not_every_update_in_float64(
    aggregator: CoordinateMedian | TrimmedMean,
) -> None:
    """Median and trimmed mean sort a block of coordinates at a time: stacking every
    update in float64, as a plain ``np.sort`` over clients would, takes twice the
    round; here the peak stays below one float32 copy of it."""
    spec = {"w": (400, 500)}
    updates = as_updates(make_round("spread", 20, spec, seed=2))
    round_bytes = sum(update.delta["w"].nbytes for update in updates)
    tracemalloc.start()
    try:
        aggregator.aggregate(updates, context_for(spec))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < round_bytes

"""The MI filter's measurements take shortcuts that must not move a bit: one widening per
update for its norm and both cosines, labels counted by value, the trimmed mean alone."""

import math

import numpy as np
import pytest

from flare.aggregation import AggregationContext, ClientUpdate, TrimmedMean
from flare.aggregation.arithmetic import dot, dots_with, l2_norm, norm_of_square, widened
from flare.aggregation.information import contingency_counts, label_agreement

SPEC = {"w": (7, 5), "b": (5,), "c": (3, 2, 2)}


def delta_of(rng: np.random.Generator, dtype: type = np.float32) -> dict[str, np.ndarray]:
    reach = 3 if dtype is np.float16 else 8  # orders of magnitude, within the type's range
    return {
        name: (rng.standard_normal(shape) * 10.0 ** rng.integers(-reach, reach)).astype(dtype)
        for name, shape in SPEC.items()
    }


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dots_with_equal_dot_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(1)
    others = [delta_of(rng), delta_of(rng, np.float64)]
    others[1]["c"] = np.asfortranarray(others[1]["c"])  # a layout dot flattens in C order
    for _ in range(20):
        delta = delta_of(rng, dtype)
        own, crossed = dots_with(delta, [widened(other, SPEC) for other in others], SPEC)
        assert own == dot(delta, delta, SPEC)
        assert norm_of_square(own) == l2_norm(delta, SPEC)
        assert crossed == [dot(delta, other, SPEC) for other in others]


def label_agreement_by_the_union(predicted: np.ndarray, reference: np.ndarray) -> tuple:
    """The computation counting labels by value replaced, on the sorted union's table."""
    counts = contingency_counts(predicted, reference)
    total = int(counts.sum())
    rows, columns = counts.sum(axis=1), counts.sum(axis=0)
    full, diagonal = [], []
    for a, b in zip(*np.nonzero(counts), strict=True):
        joint = int(counts[a, b])
        term = joint / total * math.log2(joint * total / (int(rows[a]) * int(columns[b])))
        full.append(term)
        if a == b:
            diagonal.append(term)
    return math.fsum(full), math.fsum(diagonal), int(np.trace(counts)) / total


@pytest.mark.parametrize(
    "labels",
    [
        lambda rng, n: rng.integers(0, 10, n),  # the usual case, counted by value
        lambda rng, n: rng.integers(0, 3, n) * 7 + 2,  # sparse values, empty rows between
        lambda rng, n: rng.integers(-3, 3, n),  # negative: the union's table
        lambda rng, n: rng.integers(0, 3, n).astype(np.uint8),
        lambda rng, n: rng.integers(5000, 5003, n),  # past the by-value range
    ],
)
def test_label_agreement_equals_the_union_table_computation(labels) -> None:
    rng = np.random.default_rng(2)
    for size in (1, 7, 180, 1000):
        truth = labels(rng, size)
        for predicted in (labels(rng, size), truth, (truth + 1) % 10):
            agreement = label_agreement(predicted, truth)
            expected = label_agreement_by_the_union(predicted, truth)
            assert (agreement.mi, agreement.aligned_mi, agreement.accuracy) == expected


def test_the_trimmed_mean_alone_is_the_aggregate_s_delta() -> None:
    rng = np.random.default_rng(3)
    updates = [ClientUpdate(f"c{i}", delta_of(rng), 1) for i in range(11)]
    updates.append(ClientUpdate("copy", updates[0].delta, 1))
    context = AggregationContext(
        global_weights={n: np.zeros(s, np.float32) for n, s in SPEC.items()}
    )
    rule = TrimmedMean(0.2)
    expected = rule.aggregate(updates, context).delta
    alone = rule.trimmed_mean([update.delta for update in updates], SPEC)
    assert alone.keys() == expected.keys()
    assert all(alone[n].tobytes() == expected[n].tobytes() for n in SPEC)
    assert all(alone[n].dtype == np.float32 and alone[n].shape == SPEC[n] for n in SPEC)

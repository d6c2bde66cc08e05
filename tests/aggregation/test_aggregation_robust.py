"""Coordinate-wise median and trimmed mean against numpy references; Krum and Multi-Krum."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import finite_float32

from flare.aggregation import (
    AggregationContext,
    AggregationError,
    ClientUpdate,
    CoordinateMedian,
    Krum,
    MultiKrum,
    TrimmedMean,
)
from flare.aggregation.krum import default_byzantine_count


@st.composite
def client_stacks(draw: st.DrawFn) -> np.ndarray:
    """A (clients, rows, cols) float32 stack: one tensor per client."""
    clients = draw(st.integers(1, 9))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=5))
    return draw(hnp.arrays(np.float32, (clients, *shape), elements=finite_float32))


def as_round(stack: np.ndarray) -> tuple[list[ClientUpdate], AggregationContext]:
    updates = [ClientUpdate(f"c{i}", {"t": stack[i]}, i + 1) for i in range(stack.shape[0])]
    return updates, AggregationContext({"t": np.zeros(stack.shape[1:], np.float32)})


@settings(max_examples=60, deadline=None)
@given(client_stacks())
def test_median_equals_numpy_median(stack: np.ndarray) -> None:
    updates, ctx = as_round(stack)
    result = CoordinateMedian().aggregate(updates, ctx)
    expected = np.median(stack.astype(np.float64), axis=0).astype(np.float32)
    np.testing.assert_array_equal(result.delta["t"], expected)
    assert result.flagged == [] and len(result.accepted) == stack.shape[0]


@settings(max_examples=60, deadline=None)
@given(client_stacks(), st.floats(min_value=0.0, max_value=0.49))
def test_trimmed_mean_equals_sort_slice_mean(stack: np.ndarray, trim: float) -> None:
    updates, ctx = as_round(stack)
    result = TrimmedMean(trim_fraction=trim).aggregate(updates, ctx)
    count = stack.shape[0]
    cut = math.floor(trim * count)
    ordered = np.sort(stack.astype(np.float64), axis=0)
    expected = ordered[cut : count - cut].mean(axis=0)
    np.testing.assert_allclose(result.delta["t"], expected.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_trimmed_mean_drops_the_extremes() -> None:
    stack = np.array([[1.0], [2.0], [3.0], [1000.0], [-1000.0]], np.float32)
    updates, ctx = as_round(stack)
    result = TrimmedMean(trim_fraction=0.2).aggregate(updates, ctx)
    assert result.delta["t"][0] == 2.0  # mean of 1, 2, 3


def test_median_reports_distance_to_aggregate() -> None:
    stack = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]], np.float32)
    updates, ctx = as_round(stack)
    scores = CoordinateMedian().aggregate(updates, ctx).scores
    assert scores["c1"]["distance_to_aggregate"] == 5.0
    assert scores["c0"]["distance_to_aggregate"] == 0.0


def krum_round() -> tuple[list[ClientUpdate], AggregationContext]:
    """Five honest updates around (1, 1, 1, 1), one of them exactly at the centre, and two
    colluding outliers."""
    centre = np.ones(4, np.float32)
    offsets = [0.0, 0.1, -0.1, 0.15, -0.15]
    honest = [centre + np.float32(o) * np.array([1, -1, 1, -1], np.float32) for o in offsets]
    outliers = [np.full(4, 50.0, np.float32), np.full(4, 51.0, np.float32)]
    order = [honest[1], outliers[0], honest[0], honest[2], outliers[1], honest[3], honest[4]]
    updates = [ClientUpdate(f"c{i}", {"t": v}, 10) for i, v in enumerate(order)]
    return updates, AggregationContext({"t": np.zeros(4, np.float32)})


def test_krum_selects_the_update_at_the_centre_of_the_honest_cluster() -> None:
    updates, ctx = krum_round()
    result = Krum(num_byzantine=2).aggregate(updates, ctx)
    assert result.accepted == ["c2"]
    np.testing.assert_array_equal(result.delta["t"], np.ones(4, np.float32))
    assert set(result.flagged) == {"c0", "c1", "c3", "c4", "c5", "c6"}
    ranks = {cid: s["krum_rank"] for cid, s in result.scores.items()}
    assert ranks["c2"] == 1.0 and {ranks["c1"], ranks["c4"]} == {6.0, 7.0}
    assert "Krum score" in result.reasons["c1"]


def test_multi_krum_keeps_the_honest_cluster() -> None:
    updates, ctx = krum_round()
    result = MultiKrum(num_byzantine=2).aggregate(updates, ctx)
    assert result.accepted == ["c0", "c2", "c3", "c5", "c6"]  # submission order
    assert result.flagged == ["c1", "c4"]
    np.testing.assert_allclose(result.delta["t"], np.ones(4), atol=1e-6)


def test_multi_krum_with_explicit_selection_size() -> None:
    updates, ctx = krum_round()
    result = MultiKrum(num_byzantine=2, num_selected=3).aggregate(updates, ctx)
    assert len(result.accepted) == 3 and "c2" in result.accepted


@pytest.mark.parametrize(
    ("clients", "expected"), [(1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (10, 3), (100, 30)]
)
def test_default_byzantine_count_keeps_krum_valid(clients: int, expected: int) -> None:
    f = default_byzantine_count(clients)
    assert f == expected
    assert f == 0 or clients > 2 * f + 2


def test_explicit_f_too_large_for_the_round_is_refused() -> None:
    updates, ctx = krum_round()  # 7 updates: f = 3 would need more than 8
    with pytest.raises(AggregationError, match="needs more than 8 updates"):
        Krum(num_byzantine=3).aggregate(updates, ctx)


def test_krum_ties_go_to_the_earlier_submission() -> None:
    same = np.ones(3, np.float32)
    updates = [ClientUpdate(f"c{i}", {"t": same.copy()}, 1) for i in range(4)]
    result = Krum().aggregate(updates, AggregationContext({"t": np.zeros(3, np.float32)}))
    assert result.accepted == ["c0"]

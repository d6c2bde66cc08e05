"""The baseline defences (FLTrust, centered clipping, geometric median, bucketing) and the
cap on claimed sample counts that every count-weighted rule applies."""

import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from flare.aggregation import (
    AGGREGATORS,
    AggregationContext,
    AggregationError,
    Bucketing,
    CenteredClipping,
    ClientUpdate,
    FLTrust,
    GeometricMedian,
    make_aggregator,
)
from flare.aggregation.bucketing import shuffled
from flare.aggregation.counts import sample_weights
from flare.errors import ConfigError

ZERO = {"w": np.zeros(2, np.float32)}


def vector_updates(points: list[tuple[float, float]], counts: list[int] | None = None):
    counts = counts or [1] * len(points)
    return [
        ClientUpdate(f"c{i}", {"w": np.array(p, np.float32)}, n)
        for i, (p, n) in enumerate(zip(points, counts, strict=True))
    ]


def server_context(server: tuple[float, float]) -> AggregationContext:
    def train(weights, features, labels):
        return {"w": np.array(server, np.float32)}

    return AggregationContext(ZERO, None, np.zeros((4, 2)), np.zeros(4, np.int64), train=train)


# --- FLTrust -------------------------------------------------------------------------


def test_fltrust_matches_hand_computed_trust_weighted_sum() -> None:
    # g0 = (3, 4), ‖g0‖ = 5. a = (6, 8): cos 1, rescaled to (3, 4). b = (1, 0): cos 0.6,
    # rescaled to (5, 0). c = (-1, 0): cos −0.6, trust 0.
    updates = vector_updates([(6.0, 8.0), (1.0, 0.0), (-1.0, 0.0)])
    result = FLTrust().aggregate(updates, server_context((3.0, 4.0)))
    expected = (1.0 * np.array([3.0, 4.0]) + 0.6 * np.array([5.0, 0.0])) / 1.6
    np.testing.assert_allclose(result.delta["w"], expected.astype(np.float32), rtol=1e-7)
    assert result.accepted == ["c0", "c1"] and result.flagged == ["c2"]
    assert result.scores["c1"]["trust"] == 0.6
    assert "not positive" in result.reasons["c2"]


def test_fltrust_ignores_claimed_counts_and_bounds_the_norm() -> None:
    updates = vector_updates([(1000.0, 0.0), (0.0, 1.0)], counts=[10**6, 1])
    result = FLTrust().aggregate(updates, server_context((1.0, 1.0)))
    # both have cos 1/√2 and are rescaled to ‖g0‖ = √2: equal shares, whatever the claim
    np.testing.assert_allclose(result.delta["w"], [math.sqrt(2) / 2] * 2, rtol=1e-6)


def test_fltrust_rescales_a_lone_update_to_the_server_norm() -> None:
    result = FLTrust().aggregate(vector_updates([(0.5, 0.0)]), server_context((3.0, 0.0)))
    np.testing.assert_array_equal(result.delta["w"], np.array([3.0, 0.0], np.float32))


def test_fltrust_with_nobody_trusted_returns_zero() -> None:
    result = FLTrust().aggregate(vector_updates([(-1.0, 0.0)]), server_context((1.0, 0.0)))
    np.testing.assert_array_equal(result.delta["w"], [0.0, 0.0])
    assert result.accepted == [] and result.notes[-1].startswith("no update")


def test_fltrust_without_a_trainer_says_so_in_one_line() -> None:
    with pytest.raises(AggregationError, match="needs a train function"):
        FLTrust().aggregate(vector_updates([(1.0, 0.0)]), AggregationContext(ZERO))


def test_fltrust_trains_on_a_copy_of_the_global_model() -> None:
    global_weights = {"w": np.ones(2, np.float32)}

    def train(weights, features, labels):
        weights["w"] += 1.0  # a trainer that works in place
        return {"w": np.array([1.0, 0.0], np.float32)}

    context = AggregationContext(global_weights, None, np.zeros((1, 2)), np.zeros(1), train=train)
    FLTrust().aggregate(vector_updates([(1.0, 0.0)]), context)
    np.testing.assert_array_equal(global_weights["w"], [1.0, 1.0])


# --- centered clipping ---------------------------------------------------------------


def test_centered_clipping_one_step_by_hand() -> None:
    # centre starts at the coordinate median (1, 0); distances 1, 0, 99; τ = 2 clips only
    # the outlier to length 2: v = (1, 0) + ((−1, 0) + 0 + (2, 0)) / 3 = (4/3, 0)
    updates = vector_updates([(0.0, 0.0), (1.0, 0.0), (100.0, 0.0)])
    result = CenteredClipping(tau=2.0, iterations=1).aggregate(updates, AggregationContext(ZERO))
    np.testing.assert_allclose(result.delta["w"], [4.0 / 3.0, 0.0], rtol=1e-7)


def test_centered_clipping_without_clipping_is_the_mean() -> None:
    updates = vector_updates([(0.0, 1.0), (1.0, 0.0), (2.0, 2.0)])
    result = CenteredClipping(tau=100.0, iterations=1).aggregate(updates, AggregationContext(ZERO))
    np.testing.assert_allclose(result.delta["w"], [1.0, 1.0], rtol=1e-7)


# --- geometric median ----------------------------------------------------------------


def test_geometric_median_of_a_symmetric_cross_is_its_centre() -> None:
    updates = vector_updates([(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0), (0.0, 0.0)])
    result = GeometricMedian().aggregate(updates, AggregationContext(ZERO))
    np.testing.assert_allclose(result.delta["w"], [0.0, 0.0], atol=1e-7)


def test_geometric_median_without_iterations_is_the_mean() -> None:
    updates = vector_updates([(0.0, 0.0), (3.0, 6.0)], counts=[1, 1000])
    result = GeometricMedian(iterations=0).aggregate(updates, AggregationContext(ZERO))
    np.testing.assert_array_equal(result.delta["w"], np.array([1.5, 3.0], np.float32))


@pytest.mark.parametrize("rule", ["geomedian", "centered-clipping"])
def test_a_far_outlier_barely_moves_the_robust_centre(rule: str) -> None:
    rng = np.random.default_rng(1)
    honest = [tuple(p) for p in rng.normal(0.0, 0.05, size=(9, 2))]
    params = {"tau": 0.1} if rule == "centered-clipping" else {}
    aggregator = make_aggregator(rule, **params)
    clean = aggregator.aggregate(vector_updates(honest), AggregationContext(ZERO)).delta["w"]
    attacked = aggregator.aggregate(
        vector_updates([*honest, (1e6, -1e6)]), AggregationContext(ZERO)
    ).delta["w"]
    assert np.linalg.norm(attacked - clean) < 0.1  # the mean would move by ~1.4e5
    mean = np.mean([*honest, (1e6, -1e6)], axis=0)
    assert np.linalg.norm(mean - clean) > 1e5


# --- bucketing ----------------------------------------------------------------------


def test_bucketing_averages_shuffled_pairs_then_applies_the_rule() -> None:
    updates = vector_updates([(1.0, 0.0), (3.0, 0.0), (5.0, 0.0), (7.0, 0.0)])
    context = AggregationContext(ZERO, seed=11)
    order = shuffled([u.client_id for u in updates], 11)
    values = {u.client_id: float(u.delta["w"][0]) for u in updates}
    means = [(values[order[0]] + values[order[1]]) / 2, (values[order[2]] + values[order[3]]) / 2]
    result = Bucketing(rule="fedavg").aggregate(updates, context)
    np.testing.assert_allclose(result.delta["w"], [np.mean(means), 0.0])
    median = Bucketing(rule="median").aggregate(updates, context)
    np.testing.assert_allclose(median.delta["w"], [np.median(means), 0.0])
    assert sorted(median.accepted) == ["c0", "c1", "c2", "c3"]
    assert {median.scores[c]["bucket"] for c in order[:2]} == {0.0}


def test_bucketing_shuffle_depends_on_the_seed_not_the_submission_order() -> None:
    ids = [f"client-{i}" for i in range(12)]
    assert shuffled(ids, 5) == shuffled(list(reversed(ids)), 5)
    assert shuffled(ids, 5) != shuffled(ids, 6)
    assert sorted(shuffled(ids, 5)) == sorted(ids)


def test_bucketing_maps_a_flagged_bucket_to_its_members() -> None:
    points = [(1.0, 1.0)] * 8 + [(-50.0, -50.0)] * 2
    updates = vector_updates(points)
    context = AggregationContext(ZERO, seed=0)
    result = Bucketing(rule="multi-krum", bucket_size=1).aggregate(updates, context)
    assert set(result.flagged) >= {"c8", "c9"}
    assert all("left out by multi-krum" in result.reasons[c] for c in result.flagged)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rule": "bucketing"}, "cannot wrap itself"),
        ({"bucket_size": 0}, "bucket_size"),
        ({"rule": "nope"}, "unknown aggregator"),
        ({"rule": "trimmed-mean", "rule_params": {"trim_fraction": 0.7}}, "trim_fraction"),
    ],
)
def test_bucketing_refuses_bad_configuration(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_aggregator("bucketing", **params)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("centered-clipping", {"tau": 0}),
        ("centered-clipping", {"iterations": 0}),
        ("geomedian", {"smoothing": -1}),
        ("geomedian", {"iterations": 1.5}),
        ("fedavg", {"count_weighting": "trusted"}),
        ("mi", {"count_weighting": "max"}),
    ],
)
def test_bad_defence_parameters_are_config_errors(name: str, params: dict) -> None:
    with pytest.raises(ConfigError):
        make_aggregator(name, **params)


# --- claimed counts ------------------------------------------------------------------


@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_capped_weights_never_exceed_the_median_claim(counts: list[int]) -> None:
    weights = sample_weights(counts, "capped")
    median = float(np.median(counts))
    assert all(w <= median and w <= c for w, c in zip(weights, counts, strict=True))
    assert sample_weights(counts, "equal") == [1.0] * len(counts)
    assert sample_weights(counts, "claimed") == [float(c) for c in counts]


def _count_round(attacker_claim: int) -> tuple[list[ClientUpdate], AggregationContext]:
    """Nine honest clients at (0, 0.1) with true counts 10..90, one attacker at (1, 0)."""
    honest = [
        ClientUpdate(f"h{i}", {"w": np.array([0.0, 0.1], np.float32)}, 10 * (i + 1))
        for i in range(9)
    ]
    attacker = ClientUpdate("bad", {"w": np.array([1.0, 0.0], np.float32)}, attacker_claim)
    features = np.eye(2, dtype=np.float32)[[0, 1] * 10]
    labels = np.array([0, 1] * 10, np.int64)

    def predict(weights, x):
        return np.argmax(x + 0 * weights["w"], axis=1).astype(np.int64)

    return [*honest, attacker], AggregationContext(ZERO, predict, features, labels)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("fedavg", {}),
        ("mi", {"norm_ratio_limit": 1e9, "check_direction": False, "clip_to_median_norm": False}),
        ("multi-krum", {"num_byzantine": 0}),
    ],
)
def test_an_inflated_claim_moves_the_aggregate_no_further_than_the_largest_honest_count(
    name: str, params: dict
) -> None:
    # The attacker's true count is 9; claiming 1000x it must not beat claiming what the
    # largest honest client (90) truly holds.
    # The aggregate's first coordinate is the attacker's share of the weight.
    aggregator = make_aggregator(name, **params)
    inflated = aggregator.aggregate(*_count_round(9000))
    as_largest = aggregator.aggregate(*_count_round(90)).delta["w"]
    assert "bad" in inflated.accepted
    assert 0 < inflated.delta["w"][0] <= as_largest[0] < 0.5
    claimed = make_aggregator(name, count_weighting="claimed", **params)
    assert claimed.aggregate(*_count_round(9000)).delta["w"][0] > 0.9


UNEVEN_COUNTS = [3, 7, 12, 25, 60, 140, 300, 650, 1400]
"""Honest true counts as uneven as a Dirichlet split makes them; the attacker truly holds 5."""


def _uneven_round(attacker_claim: int) -> tuple[list[ClientUpdate], AggregationContext]:
    """Nine honest clients near (0, 0.1, 0) and one attacker close enough to pass every
    rule, offset along the first coordinate, claiming ``attacker_claim`` samples."""
    rng = np.random.default_rng(12)
    honest = [
        ClientUpdate(
            f"h{i}",
            {"w": (np.array([0, 0.1, 0]) + rng.normal(0, 0.01, 3)).astype(np.float32)},
            count,
        )
        for i, count in enumerate(UNEVEN_COUNTS)
    ]
    attacker = ClientUpdate("bad", {"w": np.array([0.03, 0.1, 0.0], np.float32)}, attacker_claim)
    features = np.eye(3, dtype=np.float32)[[0, 1, 2] * 10]
    labels = np.array([0, 1, 2] * 10, np.int64)

    def predict(weights, x):
        return np.argmax(x + 0 * weights["w"][0], axis=1).astype(np.int64)

    def train(weights, x, y):
        return {"w": np.array([0.0, 0.1, 0.0], np.float32)}

    zero = {"w": np.zeros(3, np.float32)}
    context = AggregationContext(zero, predict, features, labels, train=train, seed=5)
    return [*honest, attacker], context


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_a_million_fold_claim_moves_no_rule_further_than_the_largest_honest_count(
    name: str,
) -> None:
    # The attacker truly holds 5 samples. How far its update pulls the aggregate away
    # from the honest clients' own must not grow when it claims a million times that,
    # beyond what claiming the largest honest count (1400) would pull.
    aggregator = make_aggregator(name)
    honest_only = aggregator.aggregate(_uneven_round(5)[0][:-1], _uneven_round(5)[1]).delta["w"]
    inflated = aggregator.aggregate(*_uneven_round(5_000_000))
    as_largest = aggregator.aggregate(*_uneven_round(max(UNEVEN_COUNTS))).delta["w"]
    pull_inflated = np.linalg.norm(inflated.delta["w"].astype(np.float64) - honest_only)
    pull_as_largest = np.linalg.norm(as_largest.astype(np.float64) - honest_only)
    assert pull_inflated <= pull_as_largest
    if name in ("fedavg", "mi"):  # these trust it, so the comparison is not vacuous
        assert "bad" in inflated.accepted and pull_inflated > 0
    if "count_weighting" in inspect.signature(AGGREGATORS[name]).parameters:
        claimed = make_aggregator(name, count_weighting="claimed")
        taken_at_its_word = claimed.aggregate(*_uneven_round(5_000_000)).delta["w"]
        if "bad" in inflated.accepted:  # taken at its word, the claim takes the aggregate over
            all_the_way = np.linalg.norm(np.array([0.03, 0.1, 0.0]) - honest_only)
            assert np.linalg.norm(taken_at_its_word - honest_only) > 0.9 * all_the_way


# --- determinism ----------------------------------------------------------------------


def _large_round() -> tuple[list[ClientUpdate], AggregationContext]:
    rng = np.random.default_rng(3)
    spec = {"a": (64, 129), "b": (33,)}
    centre = {k: rng.normal(0, 0.05, s) for k, s in spec.items()}

    def noisy() -> dict[str, np.ndarray]:
        return {k: (v + rng.normal(0, 0.02, v.shape)).astype(np.float32) for k, v in centre.items()}

    updates = [ClientUpdate(f"c{i}", noisy(), int(rng.integers(1, 100))) for i in range(9)]
    server = {k: centre[k].astype(np.float32) for k in spec}
    zeros = {k: np.zeros(s, np.float32) for k, s in spec.items()}
    context = AggregationContext(
        zeros, None, np.zeros((3, 2)), np.zeros(3, np.int64), train=lambda w, x, y: server, seed=9
    )
    return updates, context


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("fltrust", {}),
        ("centered-clipping", {"tau": 0.1}),
        ("geomedian", {}),
        ("bucketing", {"rule": "geomedian"}),
        ("fedavg", {}),
    ],
)
def test_defences_give_the_same_bytes_under_one_and_four_threads(name: str, params: dict) -> None:
    updates, context = _large_round()
    aggregator = make_aggregator(name, **params)
    digests = []
    for threads in (1, 4):
        with threadpool_limits(limits=threads):
            result = aggregator.aggregate(updates, context)
        digests.append((b"".join(t.tobytes() for t in result.delta.values()), result.scores))
    assert digests[0] == digests[1]
    reordered = [
        ClientUpdate(u.client_id, {k: np.asfortranarray(v) for k, v in u.delta.items()}, 1)
        for u in updates
    ]
    if name != "fedavg":  # the others ignore counts, so only the layout changed
        again = aggregator.aggregate(reordered, context)
        assert b"".join(t.tobytes() for t in again.delta.values()) == digests[0][0]

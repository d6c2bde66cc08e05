"""FedAvg exactness, input validation shared by every aggregator, and the registry."""

import numpy as np
import pytest

from flare.aggregation import (
    AGGREGATORS,
    AggregationContext,
    AggregationError,
    ClientUpdate,
    FedAvg,
    make_aggregator,
)
from flare.aggregation.arithmetic import dot, squared_distance, weighted_average
from flare.errors import ConfigError

SPEC_WEIGHTS = {"w": np.zeros((2, 2), np.float32), "b": np.zeros(3, np.float32)}


def linear_predict(weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    return np.argmax(features @ weights["w"], axis=1).astype(np.int64)


def context() -> AggregationContext:
    rng = np.random.default_rng(0)
    return AggregationContext(
        SPEC_WEIGHTS,
        linear_predict,
        rng.normal(size=(20, 2)).astype(np.float32),
        rng.integers(0, 2, 20).astype(np.int64),
    )


def update(client: str, fill: float, samples: int = 1, **overrides: np.ndarray) -> ClientUpdate:
    delta = {name: np.full(a.shape, fill, np.float32) for name, a in SPEC_WEIGHTS.items()}
    delta.update(overrides)
    return ClientUpdate(client, delta, samples)


def round_of(count: int) -> list[ClientUpdate]:
    return [update(f"c{i}", 0.1 * (i + 1), samples=i + 1) for i in range(count)]


def test_fedavg_matches_hand_computed_weighted_mean() -> None:
    updates = [
        ClientUpdate("a", {"w": np.array([1.0, 2.0], np.float32)}, 1),
        ClientUpdate("b", {"w": np.array([3.0, 6.0], np.float32)}, 3),
    ]
    ctx = AggregationContext({"w": np.zeros(2, np.float32)})
    result = FedAvg(count_weighting="claimed").aggregate(updates, ctx)
    # (1·1 + 3·3) / 4 = 2.5 and (1·2 + 3·6) / 4 = 5
    np.testing.assert_array_equal(result.delta["w"], np.array([2.5, 5.0], np.float32))
    assert result.delta["w"].dtype == np.float32
    assert result.accepted == ["a", "b"] and result.flagged == []
    assert result.scores["b"]["weight"] == 0.75


def test_weighted_average_accumulates_in_float64_and_rounds_once() -> None:
    values = [2.0**24, 1.0, 1.0]
    deltas = [{"x": np.array([v], np.float32)} for v in values]
    averaged = weighted_average(deltas, [1, 1, 1], {"x": (1,)})
    # Exact: (2**24 + 2) / 3 = 5592406. A float32 running sum loses both ones.
    float32_sum = np.float32(0)
    for value in values:
        float32_sum += np.float32(value)
    assert averaged["x"][0] == np.float32(5592406.0)
    assert averaged["x"][0] != float32_sum / np.float32(3)


def test_weighted_average_applies_scales_without_changing_weights() -> None:
    deltas = [{"x": np.array([4.0], np.float32)}, {"x": np.array([2.0], np.float32)}]
    averaged = weighted_average(deltas, [1, 1], {"x": (1,)}, scales=[0.5, 1.0])
    assert averaged["x"][0] == 2.0  # (0.5·4 + 2) / 2


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_empty_round_is_refused(name: str) -> None:
    with pytest.raises(AggregationError, match="no updates"):
        make_aggregator(name).aggregate([], context())


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (update("bad", 0.5, w=np.zeros((2, 3), np.float32)), "shape"),
        (ClientUpdate("bad", {"w": np.zeros((2, 2), np.float32)}, 1), "missing"),
        (update("bad", 0.5, w=np.full((2, 2), np.nan, np.float32)), "not finite"),
        (update("bad", 0.5, w=np.zeros((2, 2), np.int64)), "floating point"),
        (update("bad", 0.5, samples=0), "positive"),
        (update("c0", 0.5), "more than one update"),
    ],
)
def test_malformed_updates_are_refused(name: str, bad: ClientUpdate, message: str) -> None:
    with pytest.raises(AggregationError, match=message):
        make_aggregator(name).aggregate([*round_of(6), bad], context())


def test_mi_filter_needs_its_context() -> None:
    with pytest.raises(AggregationError, match="predict"):
        make_aggregator("mi").aggregate(round_of(4), AggregationContext(SPEC_WEIGHTS))
    bad_labels = AggregationContext(SPEC_WEIGHTS, linear_predict, np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(AggregationError, match="one label per feature row"):
        make_aggregator("mi").aggregate(round_of(4), bad_labels)


def test_mi_filter_checks_what_predict_returns() -> None:
    ctx = context()
    floats = AggregationContext(
        ctx.global_weights,
        lambda w, x: np.zeros(len(x)),
        ctx.validation_features,
        ctx.validation_labels,
    )
    with pytest.raises(AggregationError, match="integer labels"):
        make_aggregator("mi").aggregate(round_of(4), floats)


def test_registry_knows_every_strategy() -> None:
    assert sorted(AGGREGATORS) == [
        "bucketing",
        "centered-clipping",
        "fedavg",
        "fltrust",
        "geomedian",
        "krum",
        "median",
        "mi",
        "multi-krum",
        "trimmed-mean",
    ]
    for name, cls in AGGREGATORS.items():
        built = make_aggregator(name)
        assert isinstance(built, cls) and built.name == name


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("fedavgg", {}, "unknown aggregator"),
        ("krum", {"f": 2}, "no parameter"),
        ("median", {"z": 3}, "no parameter.*allowed: none"),
        ("trimmed-mean", {"trim_fraction": 0.5}, "trim_fraction"),
        ("krum", {"num_byzantine": -1}, "num_byzantine"),
        ("multi-krum", {"num_selected": 0}, "num_selected"),
        ("mi", {"z": -1.0}, "z"),
        ("mi", {"z": "three"}, "could not convert"),
        ("trimmed-mean", {"trim_fraction": None}, "not supported"),
        ("mi", {"norm_ratio_limit": 0.5}, "norm_ratio_limit"),
        ("mi", {"fix_ratio_share": 2.0}, "fix_ratio_share"),
    ],
)
def test_bad_configuration_raises_config_error(name: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_aggregator(name, **params)


def test_make_aggregator_passes_parameters() -> None:
    built = make_aggregator("trimmed-mean", trim_fraction=0.1)
    assert built.trim_fraction == 0.1


# FLTrust rescales even a lone update to its server update's norm
@pytest.mark.parametrize("name", sorted(set(AGGREGATORS) - {"fltrust"}))
def test_a_single_update_is_the_aggregate(name: str) -> None:
    only = update("only", 0.25, samples=7)
    result = make_aggregator(name).aggregate([only], context())
    assert result.accepted == ["only"] and result.flagged == []
    for tensor_name, tensor in only.delta.items():
        np.testing.assert_array_equal(result.delta[tensor_name], tensor)


def test_parameter_sums_do_not_depend_on_memory_layout() -> None:
    # Heavy-tailed values make any change of summation order visible in the last bits.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 257)) * np.exp(3 * rng.normal(size=(300, 257)))
    b = rng.normal(size=(300, 257))
    spec = {"t": (300, 257)}
    c_order = ({"t": a}, {"t": b})
    fortran = ({"t": np.asfortranarray(a)}, {"t": np.asfortranarray(b)})
    assert dot(*c_order, spec) == dot(*fortran, spec)
    assert squared_distance(*c_order, spec) == squared_distance(*fortran, spec)


def test_numpy_integer_sample_counts_are_accepted() -> None:
    updates = [ClientUpdate("a", {"w": np.ones(2, np.float32)}, np.int64(3))]
    result = FedAvg().aggregate(updates, AggregationContext({"w": np.zeros(2, np.float32)}))
    assert result.accepted == ["a"]

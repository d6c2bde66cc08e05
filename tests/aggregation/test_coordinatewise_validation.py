"""Median and trimmed mean read finiteness off the distances they report: they must refuse
exactly what the full validator refuses, with its message, and accept what it accepts."""

import numpy as np
import pytest

from flare.aggregation import AggregationContext, AggregationError, ClientUpdate, make_aggregator
from flare.aggregation.arithmetic import validate_updates

RULES = ["median", "trimmed-mean"]
SHAPES = {"w": (3, 4), "b": (5,)}


def round_of(count: int, dtype: type = np.float32) -> list[ClientUpdate]:
    rng = np.random.default_rng(count)
    return [
        ClientUpdate(
            f"c{i}",
            {name: rng.normal(size=shape).astype(dtype) for name, shape in SHAPES.items()},
            i + 1,
        )
        for i in range(count)
    ]


def context() -> AggregationContext:
    return AggregationContext({name: np.zeros(shape, np.float32) for name, shape in SHAPES.items()})


def full_validator_message(updates: list[ClientUpdate]) -> str:
    with pytest.raises(AggregationError) as refused:
        validate_updates(updates, context().global_weights)
    return str(refused.value)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("client", [0, 4, 6])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_one_non_finite_value_is_refused_naming_its_client(
    rule: str, value: float, client: int, dtype: type
) -> None:
    # one value among seven clients: the median and the trimmed mean both outvote it, so
    # only the check can notice it
    updates = round_of(7, dtype)
    updates[client].delta["b"][2] = value
    with pytest.raises(AggregationError, match=f"client 'c{client}': tensor 'b' is not finite"):
        make_aggregator(rule).aggregate(updates, context())


@pytest.mark.parametrize("rule", RULES)
def test_the_first_faulty_client_is_named_as_the_full_validator_names_it(rule: str) -> None:
    updates = round_of(7)
    updates[5].delta["w"][0, 0] = np.inf
    updates[3] = ClientUpdate("c3", {**updates[3].delta, "w": np.zeros((4, 3), np.float32)}, 4)
    updates[1].delta["b"][0] = np.nan
    message = full_validator_message(updates)
    assert message == "client 'c1': tensor 'b' is not finite"
    with pytest.raises(AggregationError) as refused:
        make_aggregator(rule).aggregate(updates, context())
    assert str(refused.value) == message


@pytest.mark.parametrize("rule", RULES)
def test_structural_faults_keep_the_full_validators_message(rule: str) -> None:
    updates = round_of(5)
    updates[2] = ClientUpdate("c2", {**updates[2].delta, "b": np.zeros(5, np.int32)}, 3)
    updates[4] = ClientUpdate("c0", updates[4].delta, 5)
    with pytest.raises(AggregationError) as refused:
        make_aggregator(rule).aggregate(updates, context())
    assert str(refused.value) == full_validator_message(updates)


@pytest.mark.parametrize("rule", RULES)
def test_finite_values_whose_squares_overflow_are_still_aggregated(rule: str) -> None:
    # one float64 client at ±1e200: finite, so valid, though its squared distance is inf
    updates = round_of(5, np.float64)
    updates[0].delta["w"][:] = 1e200
    updates[1].delta["w"][:] = -1e200
    validate_updates(updates, context().global_weights)
    with np.errstate(over="ignore"):
        result = make_aggregator(rule).aggregate(updates, context())
    assert np.isfinite(result.delta["w"]).all()
    assert result.scores["c0"]["distance_to_aggregate"] == float("inf")
    assert np.isfinite(result.scores["c2"]["distance_to_aggregate"])

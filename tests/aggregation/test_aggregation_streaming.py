"""A round aggregated one update at a time gives the batch computation's bytes."""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import finite_float32

from flare.aggregation import AggregationContext, AggregationError, ClientUpdate, FedAvg
from flare.aggregation.arithmetic import (
    WeightedAverage,
    WeightedSum,
    linear_combination,
    weighted_average,
)
from flare.aggregation.counts import COUNT_WEIGHTINGS, sample_weights


@st.composite
def rounds(draw: st.DrawFn) -> tuple[list[dict[str, np.ndarray]], list[int]]:
    """Two tensors per client, of drawn shapes, and a positive claimed count each."""
    clients = draw(st.integers(1, 12))
    shapes = [draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=6)) for _ in range(2)]
    deltas = [
        {
            f"t{index}": draw(hnp.arrays(np.float32, shape, elements=finite_float32))
            for index, shape in enumerate(shapes)
        }
        for _ in range(clients)
    ]
    counts = draw(st.lists(st.integers(1, 10_000), min_size=clients, max_size=clients))
    return deltas, counts


def batch_weighted_average(
    deltas: list[dict[str, np.ndarray]], weights: list[float]
) -> dict[str, np.ndarray]:
    """The batch computation the accumulator replaced: tensor by tensor, every client's
    float64 term added in order, one division, one rounding to float32."""
    total = math.fsum(weights)
    averaged = {}
    for name in deltas[0]:
        accumulator = np.zeros(deltas[0][name].shape, dtype=np.float64)
        for delta, weight in zip(deltas, weights, strict=True):
            accumulator = accumulator + delta[name].astype(np.float64) * float(weight)
        averaged[name] = (accumulator / total).astype(np.float32)
    return averaged


def assert_same_bytes(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(actual) == list(expected)
    for name in expected:
        assert actual[name].dtype == expected[name].dtype
        assert actual[name].tobytes() == expected[name].tobytes()


def spec_of_round(deltas: list[dict[str, np.ndarray]]) -> dict[str, tuple[int, ...]]:
    return {name: tensor.shape for name, tensor in deltas[0].items()}


@settings(max_examples=80, deadline=None)
@given(rounds())
def test_weighted_average_equals_the_batch_computation_bit_for_bit(drawn):
    deltas, counts = drawn
    weights = [float(count) for count in counts]
    average = weighted_average(deltas, weights, spec_of_round(deltas))
    assert_same_bytes(average, batch_weighted_average(deltas, weights))


@settings(max_examples=80, deadline=None)
@given(rounds(), st.sampled_from(COUNT_WEIGHTINGS))
def test_fedavg_streamed_update_by_update_equals_the_batch_computation(drawn, weighting):
    deltas, counts = drawn
    updates = [
        ClientUpdate(f"client-{i}", delta, count)
        for i, (delta, count) in enumerate(zip(deltas, counts, strict=True))
    ]
    context = AggregationContext(
        {name: np.zeros(s, np.float32) for name, s in spec_of_round(deltas).items()}
    )
    rule = FedAvg(count_weighting=weighting)
    stream = rule.open_stream([(u.client_id, u.num_samples) for u in updates], context)
    for update in updates:
        stream.add(update)
    streamed = stream.finish()
    expected = batch_weighted_average(deltas, sample_weights(counts, weighting))
    assert_same_bytes(streamed.delta, expected)
    assert_same_bytes(rule.aggregate(updates, context).delta, expected)
    assert streamed.accepted == [u.client_id for u in updates]


@settings(max_examples=40, deadline=None)
@given(rounds(), st.lists(st.floats(-4.0, 4.0), min_size=12, max_size=12))
def test_linear_combination_keeps_the_float64_sum_of_the_batch_computation(drawn, coefficients):
    deltas, _ = drawn
    coefficients = coefficients[: len(deltas)]
    combined = linear_combination(deltas, coefficients, spec_of_round(deltas))
    for name in deltas[0]:
        expected = np.zeros(deltas[0][name].shape, dtype=np.float64)
        for delta, coefficient in zip(deltas, coefficients, strict=True):
            expected = expected + delta[name].astype(np.float64) * coefficient
        assert combined[name].tobytes() == expected.tobytes()


def test_adding_to_the_running_sum_allocates_no_model_sized_temporary():
    spec = {"w": (1000, 100), "b": (100,)}
    model_float64_bytes = 8 * (1000 * 100 + 100)
    running = WeightedSum(spec)
    delta = {"w": np.ones((1000, 100), np.float32), "b": np.ones(100, np.float32)}
    running.add(delta, 2.0)
    tracemalloc.start()
    for _ in range(49):
        running.add(delta, 2.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # a widened copy of the update, or a fresh sum per add, would be model-sized each
    assert peak < model_float64_bytes / 4
    assert running.sums["b"][0] == 100.0


def two_updates() -> tuple[list[ClientUpdate], AggregationContext]:
    updates = [ClientUpdate(f"c{i}", {"t": np.full(3, i, np.float32)}, 2) for i in range(2)]
    return updates, AggregationContext({"t": np.zeros(3, np.float32)})


def test_a_stream_refuses_an_update_other_than_the_one_announced():
    updates, context = two_updates()
    stream = FedAvg().open_stream([("c0", 2), ("c1", 2)], context)
    with pytest.raises(AggregationError, match="'c1' claiming 2 samples arrived where 'c0'"):
        stream.add(updates[1])
    stream.add(updates[0])
    with pytest.raises(AggregationError, match="claiming 5 samples"):
        stream.add(ClientUpdate("c1", updates[1].delta, 5))


def test_a_stream_finishes_only_with_every_announced_update_and_no_more():
    updates, context = two_updates()
    stream = FedAvg().open_stream([("c0", 2), ("c1", 2)], context)
    stream.add(updates[0])
    with pytest.raises(AggregationError, match="1 announced update never arrived"):
        stream.finish()
    stream.add(updates[1])
    with pytest.raises(AggregationError, match="no update was announced"):
        stream.add(ClientUpdate("c2", updates[1].delta, 2))
    np.testing.assert_array_equal(stream.finish().delta["t"], np.full(3, 0.5, np.float32))


def test_a_stream_checks_the_claims_and_the_tensors_as_the_batch_path_does():
    _, context = two_updates()
    with pytest.raises(AggregationError, match="no updates to aggregate"):
        FedAvg().open_stream([], context)
    with pytest.raises(AggregationError, match="'c0' submitted more than one update"):
        FedAvg().open_stream([("c0", 2), ("c0", 2)], context)
    with pytest.raises(AggregationError, match="'c0': num_samples must be positive"):
        FedAvg().open_stream([("c0", 0)], context)
    stream = FedAvg().open_stream([("c0", 2)], context)
    with pytest.raises(AggregationError, match="'c0': tensor 't' is not finite"):
        stream.add(ClientUpdate("c0", {"t": np.full(3, np.nan, np.float32)}, 2))


def test_an_average_takes_exactly_one_delta_per_weight_and_can_be_read_twice():
    delta = {"t": np.ones(3, np.float32)}
    average = WeightedAverage([1.0, 3.0], {"t": (3,)})
    average.add(delta)
    with pytest.raises(AggregationError, match="one weight per update"):
        average.result()
    average.add({"t": np.full(3, 5.0, np.float32)})
    with pytest.raises(AggregationError, match="more updates than weights"):
        average.add(delta)
    first = average.result()
    np.testing.assert_array_equal(first["t"], np.full(3, 4.0, np.float32))
    assert average.result()["t"].tobytes() == first["t"].tobytes()

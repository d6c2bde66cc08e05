"""The MI filter's coordinate clip: each trusted update bounded, coordinate by coordinate, by
a multiple of the trusted updates' median magnitude, so a colluding backdoor bloc cannot pull
the weights clean data barely moves."""

import numpy as np
import pytest

from flare.aggregation import AggregationContext, ClientUpdate
from flare.aggregation.coordinate_clipping import (
    clipped_to_median_magnitude,
    median_magnitudes,
)
from flare.aggregation.mi_filter import MIFilter
from flare.data import load_dataset
from flare.errors import ConfigError
from flare.federation.backdoor import TARGET_LABEL, trigger_width, with_trigger
from flare.models import ExactPredictor, TorchModelAdapter, TrainingConfig, build_model
from flare.models.exact_training import ExactReferenceStep
from flare.tensors import ModelSpec, Weights, add

SPEC: ModelSpec = {"w": (6, 5), "b": (5,)}


def same_bytes(left: Weights, right: Weights) -> bool:
    return left.keys() == right.keys() and all(
        left[name].dtype == right[name].dtype and left[name].tobytes() == right[name].tobytes()
        for name in left
    )


def random_deltas(count: int, seed: int) -> list[Weights]:
    rng = np.random.default_rng(seed)
    return [
        {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SPEC.items()}
        for _ in range(count)
    ]


def test_every_coordinate_is_bounded_by_the_factor_times_the_median_magnitude() -> None:
    deltas = random_deltas(7, seed=0)
    deltas[2]["w"][0, 0] = np.float32(-1e6)
    clipped, count = clipped_to_median_magnitude(deltas, SPEC, 1.5)
    medians = median_magnitudes(deltas, SPEC)
    beyond = 0
    for delta, result in zip(deltas, clipped, strict=True):
        for name in SPEC:
            bound = 1.5 * medians[name]
            original = delta[name].astype(np.float64)
            inside = np.abs(original) <= bound
            beyond += int(np.count_nonzero(~inside))
            assert np.all(np.abs(result[name]) <= bound)
            assert np.array_equal(result[name][inside], original[inside])  # untouched
            assert np.array_equal(np.abs(result[name][~inside]), bound[~inside])
            assert np.array_equal(np.signbit(result[name]), np.signbit(original))
    assert clipped[2]["w"][0, 0] == -1.5 * medians["w"][0, 0]
    assert count == beyond > 0


def test_the_clip_does_not_depend_on_the_order_of_the_updates() -> None:
    deltas = random_deltas(8, seed=1)
    order = [5, 2, 7, 0, 3, 1, 6, 4]
    clipped, count = clipped_to_median_magnitude(deltas, SPEC, 1.0)
    shuffled, shuffled_count = clipped_to_median_magnitude([deltas[i] for i in order], SPEC, 1.0)
    assert count == shuffled_count
    assert all(same_bytes(shuffled[place], clipped[i]) for place, i in enumerate(order))


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "2", True])
def test_a_factor_that_is_not_a_positive_finite_number_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="coordinate_clip_factor"):
        MIFilter(coordinate_clip_factor=value)  # type: ignore[arg-type]


def test_the_clip_is_off_by_default_and_takes_an_integer_factor() -> None:
    assert MIFilter().coordinate_clip_factor is None
    assert MIFilter(coordinate_clip_factor=2).coordinate_clip_factor == 2.0


@pytest.fixture(scope="module")
def backdoor_round():
    """A digits MLP after an epoch, seven honest updates from it on disjoint shards, and a
    bloc of three near-identical backdoored updates (triggered copies relabelled to the
    target, each copy scaled a hair differently)."""
    data = load_dataset("digits", seed=0)
    module = build_model("mlp", 64, 10, seed=0)
    learner = TorchModelAdapter(module, TrainingConfig(epochs=1))
    learner.train(data.train_features[:200], data.train_labels[:200], seed=0)
    base = learner.get_weights()

    def trained(features: np.ndarray, labels: np.ndarray, seed: int) -> Weights:
        learner.set_weights(base)
        learner.train(features, labels, seed=seed)
        return {name: learner.get_weights()[name] - base[name] for name in base}

    honest = []
    for i in range(7):
        rows = slice(200 + 120 * i, 320 + 120 * i)
        delta = trained(data.train_features[rows], data.train_labels[rows], seed=i)
        honest.append(ClientUpdate(f"honest-{i}", delta, 120))
    rows = slice(1040, 1160)
    features, labels = data.train_features[rows], data.train_labels[rows]
    others = labels != TARGET_LABEL
    poisoned = trained(
        np.concatenate([features, with_trigger(features[others])]),
        np.concatenate([labels, np.full(int(others.sum()), TARGET_LABEL, labels.dtype)]),
        seed=99,
    )
    bloc = [
        ClientUpdate(
            f"bloc-{i}",
            {
                name: (d * np.float32(1 + 1e-3 * i)).astype(np.float32)
                for name, d in poisoned.items()
            },
            120,
        )
        for i in range(3)
    ]
    context = AggregationContext(
        global_weights=base,
        predict=ExactPredictor(module).predict,
        validation_features=data.validation_features,
        validation_labels=data.validation_labels,
        reference_step=ExactReferenceStep(module),
    )
    triggered = with_trigger(data.test_features[data.test_labels != TARGET_LABEL])
    return honest, bloc, context, triggered


def attack_success(context: AggregationContext, delta: Weights, triggered: np.ndarray) -> float:
    labels = context.predict(add(context.global_weights, delta), triggered)
    return float(np.mean(np.asarray(labels) == TARGET_LABEL))


def test_a_trusted_backdoor_bloc_cannot_pull_the_trigger_weights_beyond_the_honest_spread(
    backdoor_round,
) -> None:
    honest, bloc, context, triggered = backdoor_round
    updates = [*honest[:4], *bloc, *honest[4:]]
    # The aggregate rule off: the bloc that rehearses it sends copies it lets through.
    plain = MIFilter(aggregate_margin_bits=None).aggregate(updates, context)
    clipped = MIFilter(aggregate_margin_bits=None, coordinate_clip_factor=1.0).aggregate(
        updates, context
    )
    assert plain.accepted == clipped.accepted == [u.client_id for u in updates]

    # the first layer's weights reading the trigger's pixels
    trigger = slice(64 - trigger_width(64), 64)
    reading = {"0.weight": updates[0].delta["0.weight"].shape}
    median = median_magnitudes([{"0.weight": u.delta["0.weight"]} for u in updates], reading)
    bound = median["0.weight"][:, trigger]
    pull_plain = np.abs(plain.delta["0.weight"][:, trigger])
    pull_clipped = np.abs(clipped.delta["0.weight"][:, trigger])
    assert np.all(pull_clipped <= bound * (1 + 1e-6))
    assert np.any(pull_plain > bound * 1.5)
    # one round of it opens the backdoor on most triggered test samples, clipped on almost none
    assert attack_success(context, plain.delta, triggered) > 0.3
    assert attack_success(context, clipped.delta, triggered) < 0.1
    assert any("clipped to 1x their median magnitude" in note for note in clipped.notes)


def test_the_clipped_aggregate_is_the_same_bytes_on_every_call_and_its_decisions_in_any_order(
    backdoor_round,
) -> None:
    honest, bloc, context, _ = backdoor_round
    updates = [*honest, *bloc]
    rule = MIFilter(coordinate_clip_factor=1.0)
    first = rule.aggregate(updates, context)
    again = rule.aggregate(updates, context)
    assert same_bytes(first.delta, again.delta)
    reversed_round = rule.aggregate(updates[::-1], context)
    assert set(reversed_round.accepted) == set(first.accepted)
    assert reversed_round.scores == first.scores
    np.testing.assert_allclose(
        np.concatenate([reversed_round.delta[n].ravel() for n in sorted(first.delta)]),
        np.concatenate([first.delta[n].ravel() for n in sorted(first.delta)]),
        rtol=0,
        atol=1e-6,
    )

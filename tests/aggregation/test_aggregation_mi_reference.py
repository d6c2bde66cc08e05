"""The MI filter's reference rule: updates judged against an exact step of the committee's
own on the validation split, which no submitter moves."""

import numpy as np
import pytest

from flare.aggregation import AggregationContext, ClientUpdate
from flare.aggregation.mi_filter import MIFilter
from flare.data import load_dataset
from flare.errors import ConfigError
from flare.models import (
    ExactPredictor,
    TorchModelAdapter,
    TrainingConfig,
    build_model,
    exact_arithmetic,
)
from flare.models.exact_training import ExactReferenceStep
from flare.tensors import Weights, flatten, spec_of, unflatten


@pytest.fixture(scope="module")
def round_inputs():
    """A global model after a short epoch, and six honest updates from it on disjoint shards."""
    data = load_dataset("digits", seed=0)
    module = build_model("mlp", 64, 10, seed=0)
    learner = TorchModelAdapter(module, TrainingConfig(epochs=1))
    learner.train(data.train_features[:200], data.train_labels[:200], seed=0)
    base = learner.get_weights()
    honest = []
    for i in range(6):
        learner.set_weights(base)
        rows = slice(200 + 150 * i, 350 + 150 * i)
        learner.train(data.train_features[rows], data.train_labels[rows], seed=i)
        delta = {k: learner.get_weights()[k] - base[k] for k in base}
        honest.append(ClientUpdate(f"honest-{i}", delta, 150))
    context = AggregationContext(
        global_weights=base,
        predict=ExactPredictor(module).predict,
        validation_features=data.validation_features,
        validation_labels=data.validation_labels,
        reference_step=ExactReferenceStep(module),
    )
    return honest, context


def reference_of(context: AggregationContext) -> Weights:
    assert context.reference_step is not None
    return context.reference_step(
        context.global_weights, context.validation_features, context.validation_labels
    )


def against_the_reference(honest: list[ClientUpdate], context: AggregationContext) -> Weights:
    """The honest mean with its component along the reference step reversed: as long as an
    honest update, and close to the round's consensus in every other direction."""
    spec = spec_of(honest[0].delta)
    mean = np.mean([flatten(u.delta) for u in honest], axis=0)
    reference = flatten(reference_of(context)).astype(np.float64)
    unit = reference / np.linalg.norm(reference)
    along = float(mean @ unit)
    return unflatten(
        (mean - 2.0 * max(along, 0.0) * unit - 0.05 * np.linalg.norm(mean) * unit).astype(
            np.float32
        ),
        spec,
    )


def test_honest_updates_point_along_the_reference_and_pass(round_inputs):
    honest, context = round_inputs
    result = MIFilter().aggregate(honest, context)
    assert result.flagged == []
    assert all(result.scores[u.client_id]["cosine_to_reference"] > 0.1 for u in honest)


def test_copies_pointing_away_from_the_reference_are_flagged_by_it(round_inputs):
    honest, context = round_inputs
    forged = against_the_reference(honest, context)
    bloc = [ClientUpdate(f"bloc-{i}", forged, 150) for i in range(3)]
    result = MIFilter().aggregate([*honest, *bloc], context)
    for update in bloc:
        assert result.scores[update.client_id]["cosine_to_reference"] <= 0.1
        assert "exact reference step" in result.reasons[update.client_id]
    without = MIFilter(reference_cosine_min=None, reference_floor=False).aggregate(
        [*honest, *bloc], context
    )
    assert all("cosine_to_reference" not in s for s in without.scores.values())
    assert not any("reference" in r for r in without.reasons.values())


def test_a_context_without_a_reference_step_judges_as_before(round_inputs):
    honest, context = round_inputs
    bare = AggregationContext(
        global_weights=context.global_weights,
        predict=context.predict,
        validation_features=context.validation_features,
        validation_labels=context.validation_labels,
    )
    with_rule_off = MIFilter(reference_cosine_min=None, reference_floor=False).aggregate(
        honest, context
    )
    unavailable = MIFilter().aggregate(honest, bare)
    assert unavailable.accepted == with_rule_off.accepted
    assert all(
        unavailable.delta[n].tobytes() == with_rule_off.delta[n].tobytes()
        for n in unavailable.delta
    )


def test_a_round_the_bloc_owns_steps_by_the_reference_not_by_the_bloc(round_inputs):
    honest, context = round_inputs
    spec = spec_of(honest[0].delta)
    mean = np.mean([flatten(u.delta) for u in honest], axis=0)
    reversed_mean = unflatten((-3.0 * mean).astype(np.float32), spec)
    # every submission the same: each rule relative to the round, and every robust step of
    # the round, sees nothing amiss; only the reference does
    owned = [ClientUpdate(f"bloc-{i}", reversed_mean, 150) for i in range(6)]
    rule = MIFilter(reference_cosine_min=None)
    result = rule.aggregate(owned, context)
    reference = reference_of(context)
    assert all(result.delta[n].tobytes() == reference[n].tobytes() for n in reference)
    assert any("the aggregate is the exact reference step" in note for note in result.notes)
    unguarded = MIFilter(reference_cosine_min=None, reference_floor=False).aggregate(owned, context)
    assert np.allclose(flatten(unguarded.delta), -3.0 * mean, rtol=1e-5, atol=1e-7)


def test_the_decisions_do_not_depend_on_how_the_integer_sums_are_done(round_inputs, monkeypatch):
    honest, context = round_inputs
    bloc = [
        ClientUpdate(f"bloc-{i}", against_the_reference(honest, context), 150) for i in range(3)
    ]
    updates = [*honest, *bloc]
    first = MIFilter().aggregate(updates, context)
    monkeypatch.setattr(
        exact_arithmetic, "integer_matmul", lambda a, b: np.ascontiguousarray((b.T @ a.T).T)
    )
    again = MIFilter().aggregate(updates, context)
    assert again.accepted == first.accepted and again.scores == first.scores
    assert all(again.delta[n].tobytes() == first.delta[n].tobytes() for n in first.delta)


@pytest.mark.parametrize("minimum", [-1.5, 1.0, float("nan")])
def test_a_reference_cosine_minimum_outside_minus_one_to_one_is_refused(minimum):
    with pytest.raises(ConfigError, match="reference_cosine_min"):
        MIFilter(reference_cosine_min=minimum)

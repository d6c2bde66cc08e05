"""The exact reference step: the same bits whatever computes its integer sums, and a true
gradient of the hinge loss it descends."""

import numpy as np
import pytest
import torch
from hinge_autograd import autograd_hinge
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from integer_products import reversed_blocks
from threadpoolctl import threadpool_limits
from torch import nn

from flare.models import (
    ExactInferenceError,
    UnsupportedLayerError,
    build_model,
    exact,
    exact_arithmetic,
    exact_training,
)
from flare.models.exact_training import ExactReferenceStep, exact_reference_step


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_the_gradient_is_the_hinge_losss_within_quantisation(digits, trained, name):
    module, weights = trained[name]
    features, labels = digits.validation_features, digits.validation_labels
    loss, gradients = ExactReferenceStep(module).gradient(weights, features, labels)
    expected_loss, expected = autograd_hinge(module, weights, features, labels)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    assert set(gradients) == set(expected)
    for parameter, gradient in gradients.items():
        scale = np.abs(expected[parameter]).max()
        assert np.abs(gradient - expected[parameter]).max() <= 1e-5 * scale, parameter


def test_the_loss_falls_over_the_steps(digits, trained):
    module, weights = trained["mlp"]
    features, labels = digits.validation_features, digits.validation_labels
    losses = [
        ExactReferenceStep(module).gradient(
            ExactReferenceStep(module, steps=steps).descend(weights, features, labels),
            features,
            labels,
        )[0]
        for steps in (1, 2, 3, 5)
    ]
    start, _ = ExactReferenceStep(module).gradient(weights, features, labels)
    assert start > losses[0] > losses[1] > losses[2] > losses[3]


def test_the_step_is_a_float32_delta_of_every_parameter(digits, trained):
    module, weights = trained["mlp"]
    step = ExactReferenceStep(module)(weights, digits.validation_features, digits.validation_labels)
    assert {name: v.shape for name, v in step.items()} == {n: v.shape for n, v in weights.items()}
    assert all(v.dtype == np.float32 and np.abs(v).max() > 0 for v in step.values())


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_the_step_does_not_depend_on_how_the_integer_sums_are_done(
    digits, trained, name, monkeypatch
):
    module, weights = trained[name]
    features, labels = digits.validation_features, digits.validation_labels
    step = ExactReferenceStep(module)
    reference = [step(weights, features, labels)[n].tobytes() for n in sorted(weights)]
    orders = {
        "int64": lambda a, b: (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float64),
        "reversed blocks": reversed_blocks,
        "transposed": lambda a, b: np.ascontiguousarray((b.T @ a.T).T),
    }
    for order in orders.values():
        monkeypatch.setattr(exact_arithmetic, "integer_matmul", order)
        again = step(weights, features, labels)
        assert [again[n].tobytes() for n in sorted(weights)] == reference


# one step for the cnn suffices: every product threads could split is in it
@pytest.mark.parametrize(("name", "steps"), [("mlp", 5), ("cnn", 1)])
def test_the_step_is_the_same_on_one_thread_and_on_many(digits, trained, name, steps):
    module, weights = trained[name]
    features, labels = digits.validation_features, digits.validation_labels
    step = ExactReferenceStep(module, steps=steps)
    with threadpool_limits(1):
        alone = step(weights, features, labels)
    with threadpool_limits(4):
        threaded = step(weights, features, labels)
    assert all(alone[n].tobytes() == threaded[n].tobytes() for n in weights)


@settings(max_examples=25, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        (6, 5),
        elements=st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([1e-310, -1e-320, 0.0]),  # subnormals count as zero
        ),
    )
)
def test_non_finite_and_subnormal_features_give_a_finite_step(features):
    module = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    torch.manual_seed(0)
    weights = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    labels = np.arange(6) % 3
    step = ExactReferenceStep(module)(weights, features, labels)
    assert all(np.isfinite(v).all() for v in step.values())
    flushed = np.nan_to_num(np.where(np.abs(features) < 2.0**-1022, 0.0, features), nan=0.0)
    flushed = np.clip(flushed, -np.finfo(np.float64).max, np.finfo(np.float64).max)
    again = ExactReferenceStep(module)(weights, flushed, labels)
    assert all(step[n].tobytes() == again[n].tobytes() for n in step)


def test_a_layer_without_an_exact_gradient_is_refused_up_front(monkeypatch):
    assert exact_reference_step(build_model("mlp", 64, 10, seed=0)) is not None
    with pytest.raises(UnsupportedLayerError, match="Dropout"):
        ExactReferenceStep(nn.Sequential(nn.Linear(4, 4), nn.Dropout(), nn.Linear(4, 2)))
    assert exact_reference_step(nn.Sequential(nn.Linear(4, 4), nn.Dropout())) is None
    # a layer exact inference runs but exact training does not differentiate
    compiled = exact.compile_layers(nn.Sequential(nn.Linear(4, 2)), "", "")
    monkeypatch.setattr(exact_training, "compile_layers", lambda *_: [*compiled, NoGradient()])
    with pytest.raises(UnsupportedLayerError, match="NoGradient has no exact gradient"):
        ExactReferenceStep(nn.Sequential(nn.Linear(4, 2)))
    assert exact_reference_step(nn.Sequential(nn.Linear(4, 2))) is None


class NoGradient(exact.ExactLayer):
    def apply(self, x: np.ndarray, weights: dict) -> np.ndarray:
        return x


def test_a_model_without_a_linear_or_conv2d_layer_is_refused():
    with pytest.raises(UnsupportedLayerError, match="no Linear or Conv2d"):
        ExactReferenceStep(nn.Sequential(nn.Flatten(), nn.ReLU()))


def test_labels_that_do_not_fit_the_logits_are_refused(trained, digits):
    module, weights = trained["logreg"]
    features = digits.validation_features[:4]
    with pytest.raises(ExactInferenceError, match="labels"):
        ExactReferenceStep(module).gradient(weights, features, np.array([0, 1, 2, 10]))
    with pytest.raises(ExactInferenceError, match="one label per row"):
        ExactReferenceStep(module).gradient(weights, features, np.array([0, 1]))

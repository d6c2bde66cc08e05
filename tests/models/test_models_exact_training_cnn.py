"""The exact reference step through convolutions and max pooling: a true gradient of the
hinge loss, and the same bits whatever computes its integer sums."""

import numpy as np
import pytest
import torch
from hinge_autograd import autograd_hinge
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from integer_products import reversed_blocks
from torch import nn

from flare.models import build_model, exact_arithmetic, exact_gradients
from flare.models.exact import compile_layers
from flare.models.exact_gradients import input_gradient
from flare.models.exact_training import ExactReferenceStep, exact_reference_step


def within_quantisation(gradients: dict, expected: dict) -> None:
    assert set(gradients) == set(expected)
    for parameter, gradient in gradients.items():
        scale = np.abs(expected[parameter]).max()
        assert np.abs(gradient - expected[parameter]).max() <= 1e-5 * scale, parameter


def test_the_cnn_gradient_is_the_hinge_losss_within_quantisation(digits, trained):
    module, weights = trained["cnn"]
    features, labels = digits.validation_features, digits.validation_labels
    loss, gradients = ExactReferenceStep(module).gradient(weights, features, labels)
    expected_loss, expected = autograd_hinge(module, weights, features, labels)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    within_quantisation(gradients, expected)


def test_every_trainable_layer_differentiates_as_autograd(every_layer_kind):
    module, weights = every_layer_kind
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(9, 60)), rng.integers(0, 5, size=9)
    loss, gradients = ExactReferenceStep(module).gradient(weights, features, labels)
    expected_loss, expected = autograd_hinge(module, weights, features, labels)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    within_quantisation(gradients, expected)


def max_pool_input_gradient(pool: nn.MaxPool2d, image: np.ndarray, upstream: np.ndarray):
    (layer,) = compile_layers(pool, "", "")
    return input_gradient(layer, image, upstream, {})


@pytest.mark.parametrize(
    "pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, stride=1, padding=1)], ids=["apart", "overlapping"]
)
def test_max_pool_ties_go_to_the_first_largest_input_as_in_torch(pool):
    image = np.array([[[[1.0, 3.0, 2.0, 2.0], [3.0, 0.0, 2.0, 2.0]]]])
    shape = pool(torch.as_tensor(image)).shape
    upstream = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)
    gradient = max_pool_input_gradient(pool, image, upstream)
    pixels = torch.as_tensor(image).requires_grad_()
    pool(pixels).backward(torch.as_tensor(upstream))
    assert np.array_equal(gradient, pixels.grad.numpy())
    if pool.kernel_size == 2:  # the first 3 in the first window; the first 2 in the second
        assert np.array_equal(gradient, [[[[0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])


def test_a_window_of_equal_values_sends_its_gradient_to_its_first_pixel():
    image = np.zeros((2, 3, 4, 4))
    gradient = max_pool_input_gradient(nn.MaxPool2d(2), image, np.ones((2, 3, 2, 2)))
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1.0
    assert np.array_equal(gradient, np.broadcast_to(expected, image.shape))


def test_the_zoo_cnn_has_a_reference_step():
    assert exact_reference_step(build_model("cnn", 64, 10, seed=0)) is not None


def test_the_cnn_loss_falls_over_the_steps(digits, trained):
    module, weights = trained["cnn"]
    features, labels = digits.validation_features, digits.validation_labels
    one_step = ExactReferenceStep(module, steps=1)
    losses, current = [one_step.gradient(weights, features, labels)[0]], weights
    for _ in range(5):
        current = one_step.descend(current, features, labels)
        losses.append(one_step.gradient(current, features, labels)[0])
        # the exact descent's loss is float64 autograd's at the same weights
        assert losses[-1] == pytest.approx(autograd_hinge(module, current, features, labels)[0])
    assert losses[1] < losses[0] and losses[2] < losses[1]
    # at rate 0.05 the fourth step overshoots (2.64 to 4.04), yet the five steps more than
    # halve the loss (6.10 to 2.78)
    assert losses[-1] < losses[0] / 2


def test_the_cnn_step_does_not_depend_on_how_the_integer_sums_are_done(
    digits, trained, monkeypatch
):
    module, weights = trained["cnn"]
    features, labels = digits.validation_features[:24], digits.validation_labels[:24]
    step = ExactReferenceStep(module, steps=2)
    reference = [step(weights, features, labels)[n].tobytes() for n in sorted(weights)]
    orders = {
        "int64": lambda a, b: (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float64),
        "reversed blocks": reversed_blocks,
        "transposed": lambda a, b: np.ascontiguousarray((b.T @ a.T).T),
    }
    for name, order in orders.items():
        monkeypatch.setattr(exact_arithmetic, "integer_matmul", order)
        again = step(weights, features, labels)
        assert [again[n].tobytes() for n in sorted(weights)] == reference, name
    monkeypatch.undo()
    # one sample per piece: the pieces' integer products add up to the same integers
    monkeypatch.setattr(exact_gradients, "COLUMN_BUDGET", 1)
    again = step(weights, features, labels)
    assert [again[n].tobytes() for n in sorted(weights)] == reference


@settings(max_examples=25, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        (6, 16),
        elements=st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([1e-310, -1e-320, 0.0]),  # subnormals count as zero
        ),
    )
)
def test_non_finite_and_subnormal_features_give_a_finite_cnn_step(features):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)),
        nn.Conv2d(1, 2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8, 3),
    )
    weights = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    labels = np.arange(6) % 3
    step = ExactReferenceStep(module)(weights, features, labels)
    assert all(np.isfinite(v).all() for v in step.values())
    flushed = np.nan_to_num(np.where(np.abs(features) < 2.0**-1022, 0.0, features), nan=0.0)
    flushed = np.clip(flushed, -np.finfo(np.float64).max, np.finfo(np.float64).max)
    again = ExactReferenceStep(module)(weights, flushed, labels)
    assert all(step[n].tobytes() == again[n].tobytes() for n in step)

"""An exact reference step: a few gradient-descent steps whose bits every machine agrees on.

The MI filter judges updates against a step the committee takes itself on the public
validation split, one that no submitter can move (FLTrust's server update). Float32
training gives no such step: its sums run in an order, and with or without fused
multiply-add, that depends on the CPU and the thread count. Here every sum of products is
an integer product within the bit budget of :mod:`flare.models.exact` (power-of-two scaling
and round-half-even to integers, so a float64 matrix product is the exact integer result
whatever computes it), and everything else is one correctly rounded IEEE operation per
element.

The loss is the multiclass hinge (Weston and Watkins): ``(1/n) Σᵢ Σ_{c≠yᵢ} max(0, 1 + z_ic −
z_iyᵢ)`` on the logits ``z``. Like cross-entropy it pushes the true class's logit above the
others, but it needs no transcendental function (``exp`` and ``log`` are not correctly
rounded alike everywhere), only comparisons and additions. Its gradient with respect to
the logits is a count divided by ``n``.

``Sequential``, ``Linear``, ``Conv2d``, ``MaxPool2d``, ``ReLU`` and the reshaping layers
(``Flatten``, ``Unflatten``, the zoo's image reshape) are trained exactly, each layer's
backward pass in :mod:`flare.models.exact_gradients`: every model of the zoo. A model
holding anything else is refused up front with
:class:`flare.models.exact.UnsupportedLayerError`.
"""

from collections.abc import Mapping

import numpy as np
from torch import nn

from flare.models.exact import ExactConv2d, ExactLinear, UnsupportedLayerError, compile_layers
from flare.models.exact_arithmetic import ExactInferenceError, exact_float64, settled
from flare.models.exact_gradients import (
    TRAINABLE,
    TRAINABLE_NAMES,
    input_gradient,
    parameter_gradients,
)
from flare.tensors import Weights

REFERENCE_STEPS = 5
"""Gradient-descent steps from the global model: enough to leave the first step's
direction, few enough that the step stays a step of the round rather than a fit of the
validation split."""

REFERENCE_LEARNING_RATE = 0.05
"""The step size of each of those steps, as a client's default learning rate."""

HINGE_MARGIN = 1.0

FLOAT32_MAX = float(np.finfo(np.float32).max)


class ExactReferenceStep:
    """``step(weights, features, labels) -> delta``: full-batch gradient descent on the
    multiclass hinge loss, the same bits on every machine.

    Built once from the model's structure (``module``'s weights are not used); each call
    takes the weights to start from by their ``state_dict`` names and returns the change,
    float32 like an update.
    """

    def __init__(
        self,
        module: nn.Module,
        steps: int = REFERENCE_STEPS,
        learning_rate: float = REFERENCE_LEARNING_RATE,
    ) -> None:
        self.layers = compile_layers(module, "", "")
        for layer in self.layers:
            if not isinstance(layer, TRAINABLE):
                raise UnsupportedLayerError(
                    f"{type(layer).__name__} has no exact gradient "
                    f"(trained exactly: {TRAINABLE_NAMES})"
                )
        parametrised = [
            position
            for position, layer in enumerate(self.layers)
            if isinstance(layer, ExactLinear | ExactConv2d)
        ]
        if not parametrised:
            raise UnsupportedLayerError("the model has no Linear or Conv2d layer")
        self.first_parametrised = parametrised[0]
        if steps < 1 or not learning_rate > 0.0:
            raise ExactInferenceError("the reference step needs steps >= 1 and a positive rate")
        self.steps = int(steps)
        self.learning_rate = float(learning_rate)

    def __call__(self, weights: Weights, features: np.ndarray, labels: np.ndarray) -> Weights:
        trained = self.descend(weights, features, labels)
        # wild features can drive a float64 step past float32's range: keep it finite
        return {
            name: np.clip(
                trained[name] - exact_float64(weights[name]), -FLOAT32_MAX, FLOAT32_MAX
            ).astype(np.float32)
            for name in trained
        }

    def descend(
        self, weights: Mapping[str, np.ndarray], features: np.ndarray, labels: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The float64 weights after :attr:`steps` steps from ``weights``."""
        current = {name: exact_float64(tensor) for name, tensor in weights.items()}
        for _ in range(self.steps):
            _, gradients = self.gradient(current, features, labels)
            for name, gradient in gradients.items():
                current[name] = settled(current[name] - self.learning_rate * gradient)
        return current

    def gradient(
        self, weights: Mapping[str, np.ndarray], features: np.ndarray, labels: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        """The hinge loss at ``weights`` and its gradient, by parameter name.

        The loss is for reporting only (its sum is not exact); the gradient is.
        """
        x = exact_float64(features)
        targets = np.asarray(labels)
        if x.ndim < 2 or len(x) == 0 or targets.shape != (len(x),):
            raise ExactInferenceError(
                f"need a non-empty batch with one label per row, got {x.shape} and {targets.shape}"
            )
        inputs: list[np.ndarray] = []
        for layer in self.layers:
            inputs.append(x)
            x = layer.apply(x, weights)
        if x.ndim != 2 or not 0 <= targets.min() <= targets.max() < x.shape[1]:
            raise ExactInferenceError(f"logits of shape {x.shape} do not fit the labels")
        loss, upstream = _hinge(x, targets.astype(np.int64))
        gradients: dict[str, np.ndarray] = {}
        # no parameter lies before the first Linear or Conv2d: the backward pass ends there
        for position in range(len(self.layers) - 1, self.first_parametrised - 1, -1):
            layer, layer_input = self.layers[position], inputs[position]
            gradients.update(parameter_gradients(layer, layer_input, upstream))
            if position > self.first_parametrised:
                upstream = input_gradient(layer, layer_input, upstream, weights)
        return loss, gradients


def exact_reference_step(module: nn.Module) -> ExactReferenceStep | None:
    """The model's exact reference step, or None where its layers cannot be trained exactly
    (the MI filter then goes without its reference rule, alike on every machine)."""
    try:
        return ExactReferenceStep(module)
    except UnsupportedLayerError:
        return None


def _hinge(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The Weston–Watkins hinge loss and its gradient with respect to the logits."""
    rows = np.arange(len(logits))
    gaps = logits - logits[rows, labels][:, None]  # one rounded subtraction each
    violated = gaps > -HINGE_MARGIN
    violated[rows, labels] = False
    counts = violated.astype(np.float64)
    counts[rows, labels] = -violated.sum(axis=1)
    loss = float(np.where(violated, gaps + HINGE_MARGIN, 0.0).sum() / len(logits))
    return loss, counts / len(logits)

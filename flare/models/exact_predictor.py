"""The MI filter's labels: exact inference (:mod:`flare.models.exact`) of many candidate
models on one batch of features.

A round runs every candidate model on the same validation split, so the predictor prepares
a batch once: it settles the features, runs the layers before the first Linear or Conv2d
(they hold no weights) and quantises that layer's input. It keeps the last few prepared
batches and finds one again by the features' dtype, shape and bytes, never by the array's
identity alone: an array changed in place is a new batch. The logits are the bits
:class:`~flare.models.exact.ExactLayer` by layer would give; only the repeated work is
skipped.
"""

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from torch import nn

from flare.models.exact import (
    ExactLayer,
    ExactLinear,
    ExactParametrised,
    ExactReLU,
    QuantisedInput,
    UnsupportedLayerError,
    compile_layers,
)
from flare.models.exact_arithmetic import ExactInferenceError, exact_float64

KEPT_BATCHES = 2
"""Prepared batches kept: the validation split the MI filter judges on, and one more."""

KEPT_VALUES = 1 << 20
"""Largest batch kept, in values (12 to 16 MiB prepared, with its bytes); larger batches are
prepared at every call, so what is kept stays bounded."""


@dataclass(frozen=True)
class _PreparedBatch:
    dtype: np.dtype
    shape: tuple[int, ...]
    raw: bytes
    prepared: QuantisedInput


class ExactPredictor:
    """Labels from a model's weights, the same on every machine.

    Built once from the model's structure (``module``'s weights are not used); each call
    takes the weights to run, by their ``state_dict`` names, so one predictor serves every
    candidate model of a round. Its :meth:`predict` fits the MI filter's ``predict``.
    Safe to share between threads.
    """

    def __init__(self, module: nn.Module) -> None:
        layers = compile_layers(module, "", "")
        first = next(
            (at for at, layer in enumerate(layers) if isinstance(layer, ExactParametrised)), None
        )
        if first is None:
            raise UnsupportedLayerError("the model has no Linear or Conv2d layer")
        self._weightless = layers[:first]  # reshapes, say: the same for every candidate
        self._first: ExactParametrised = layers[first]
        self._rest = _fused(layers[first + 1 :])
        self._kept: list[_PreparedBatch] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        # A predictor travels to other processes (Ray's workers) inside a task's context: the
        # compiled layers go, the kept batches and the lock (which cannot be pickled) do not.
        return {**self.__dict__, "_kept": [], "_lock": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def logits(self, weights: Mapping[str, np.ndarray], features: np.ndarray) -> np.ndarray:
        """The float64 logits, ``(samples, classes)``, identical bits on every machine."""
        x = self._first.apply_prepared(self._prepared(features), weights)
        for layer in self._rest:
            x = layer.apply(x, weights)
        if x.ndim != 2:
            raise ExactInferenceError(f"the model's output has shape {x.shape}, not (n, classes)")
        return x

    def predict(self, weights: Mapping[str, np.ndarray], features: np.ndarray) -> np.ndarray:
        """Predicted labels (int64): the largest logit, ties to the lowest class index."""
        return np.argmax(self.logits(weights, features), axis=1).astype(np.int64)

    def _prepared(self, features: np.ndarray) -> QuantisedInput:
        """The first parametrised layer's input for ``features``, kept or prepared now."""
        array = np.asarray(features)
        if array.dtype.kind not in "biuf" or array.size > KEPT_VALUES:
            return self._prepare(array)
        raw = array.tobytes()
        with self._lock:
            for batch in self._kept:
                if batch.dtype == array.dtype and batch.shape == array.shape and batch.raw == raw:
                    return batch.prepared
        prepared = self._prepare(array)
        with self._lock:
            kept = _PreparedBatch(array.dtype, array.shape, raw, prepared)
            self._kept = [kept, *self._kept[: KEPT_BATCHES - 1]]
        return prepared

    def _prepare(self, features: np.ndarray) -> QuantisedInput:
        x = exact_float64(features)
        if x.ndim < 2 or len(x) == 0:
            raise ExactInferenceError(f"features must be a non-empty batch, got {x.shape}")
        for layer in self._weightless:
            x = layer.apply(x, {})
        return self._first.prepare(x)


class _RectifiedLinear(ExactLayer):
    """A ReLU and the Linear layer after it: the ReLU's output is the Linear's alone, so it
    is rectified and quantised in the place of its input, which the layer before it made."""

    def __init__(self, linear: ExactLinear) -> None:
        self.linear = linear

    def apply(self, x: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.linear.apply_prepared(self.linear.prepare_rectified(x), weights)


def _fused(layers: list[ExactLayer]) -> list[ExactLayer]:
    """``layers`` (each after the first parametrised one, so each input a fresh, settled
    output of the layer before) with every ReLU followed by a Linear layer run as one."""
    fused: list[ExactLayer] = []
    for layer in layers:
        if isinstance(layer, ExactLinear) and fused and type(fused[-1]) is ExactReLU:
            fused[-1] = _RectifiedLinear(layer)
        else:
            fused.append(layer)
    return fused

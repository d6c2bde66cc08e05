"""The model interface: everything federation needs from a learner, nothing more."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from flare.tensors import Weights


@dataclass(frozen=True)
class TrainResult:
    """What one call of local training reports."""

    loss: float
    num_samples: int


@dataclass(frozen=True)
class EvalResult:
    """Loss and accuracy on a labelled set."""

    loss: float
    accuracy: float
    num_samples: int


class ModelAdapter(ABC):
    """A learner behind named float32 weights.

    Implementations must keep ``get_weights`` ordered the same way on every call:
    that order is the canonical order of the wire format.
    """

    @abstractmethod
    def get_weights(self) -> Weights:
        """A copy of the current weights, as an ordered mapping of float32 arrays."""

    @abstractmethod
    def set_weights(self, weights: Weights) -> None:
        """Replace the weights; names and shapes must match :meth:`get_weights`."""

    @abstractmethod
    def train(self, features: np.ndarray, labels: np.ndarray, *, seed: int) -> TrainResult:
        """Train in place on local data; deterministic given ``seed``."""

    @abstractmethod
    def evaluate(self, features: np.ndarray, labels: np.ndarray) -> EvalResult:
        """Mean loss and accuracy on a labelled set."""

    @abstractmethod
    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted class labels (int64), one per row of ``features``."""

"""Fixtures the exact-arithmetic tests share: digits and zoo models trained briefly on it."""

import numpy as np
import pytest
from torch import nn

from flare.data import load_dataset
from flare.models import TorchModelAdapter, TrainingConfig, build_model


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def trained(digits) -> dict[str, tuple[nn.Module, dict[str, np.ndarray]]]:
    """Each zoo model with weights after one short epoch (logits of a realistic spread)."""
    models = {}
    for name in ("logreg", "mlp", "cnn"):
        learner = TorchModelAdapter(build_model(name, 64, 10, seed=0), TrainingConfig(epochs=1))
        learner.train(digits.train_features[:300], digits.train_labels[:300], seed=0)
        models[name] = (learner.module, learner.get_weights())
    return models

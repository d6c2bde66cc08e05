"""Fixtures the exact-arithmetic tests share: digits, zoo models trained briefly on it, and a
small model with every kind of layer."""

import numpy as np
import pytest
import torch
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


@pytest.fixture
def every_layer_kind() -> tuple[nn.Module, dict[str, np.ndarray]]:
    """A small model with every layer exact inference and the exact step support, in the
    shapes that catch geometry bugs, and normally drawn weights: (module, weights)."""
    module = nn.Sequential(
        nn.Unflatten(1, (2, 6, 5)),
        nn.Conv2d(2, 4, 3, padding="same", dilation=2),
        nn.ReLU(),
        # stride 2 leaves the last row and column of the padded input out of every window
        nn.Conv2d(4, 6, (3, 2), stride=2, padding=(1, 0), bias=False),
        nn.MaxPool2d(3, stride=1, padding=1),  # overlapping windows
        nn.Sequential(nn.Flatten(), nn.Linear(6 * 3 * 2, 7, bias=False), nn.ReLU()),
        nn.Linear(7, 5),
    )
    for index, parameter in enumerate(module.parameters()):
        torch.manual_seed(index)
        nn.init.normal_(parameter)
    return module, {k: v.numpy() for k, v in module.state_dict().items()}

"""The PyTorch adapter: weights round-trip, training is deterministic and learns."""

import numpy as np
import pytest
import torch

from flare.data import load_dataset
from flare.errors import ConfigError
from flare.models import TorchModelAdapter, TrainingConfig, build_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
def test_named_models_learn_digits(digits, name):
    model = TorchModelAdapter(build_model(name, 64, 10, seed=0), TrainingConfig(epochs=3))
    before = model.evaluate(digits.test_features, digits.test_labels).accuracy
    model.train(digits.train_features, digits.train_labels, seed=1)
    after = model.evaluate(digits.test_features, digits.test_labels)
    assert before < 0.3
    assert after.accuracy > 0.85
    assert model.predict(digits.test_features).dtype == np.int64


def test_training_is_deterministic_given_seed(digits):
    def trained(seed: int):
        model = TorchModelAdapter(build_model("mlp", 64, 10, seed=0))
        model.train(digits.train_features[:200], digits.train_labels[:200], seed=seed)
        return model.get_weights()

    a, b, c = trained(5), trained(5), trained(6)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_weights_round_trip_and_shape_checks():
    model = TorchModelAdapter(build_model("mlp", 64, 10, seed=0))
    weights = model.get_weights()
    assert list(weights) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    shifted = {k: v + 1 for k, v in weights.items()}
    model.set_weights(shifted)
    assert all(np.array_equal(model.get_weights()[k], shifted[k]) for k in weights)
    with pytest.raises(ValueError, match="shape"):
        model.set_weights({**weights, "0.bias": np.zeros(3, dtype=np.float32)})
    with pytest.raises(ValueError, match="in order"):
        model.set_weights(dict(reversed(weights.items())))


def test_user_module_through_the_api():
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    model = TorchModelAdapter(module)
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model.train(x, y, seed=0)
    assert set(np.unique(model.predict(x))) <= {0, 1, 2}


def test_unknown_model_and_non_square_cnn():
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("transformer", 64, 10, seed=0)
    with pytest.raises(ConfigError, match="square"):
        build_model("cnn", 60, 10, seed=0)

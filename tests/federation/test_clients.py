"""Each attack does what its name says, measured against the honest update it starts from."""

import numpy as np
import pytest

from flare.data import load_dataset
from flare.errors import ConfigError
from flare.federation.attacks import ATTACKS, make_attack
from flare.federation.clients import AttackSituation, Client
from flare.models import TorchModelAdapter, build_model
from flare.tensors import flatten


@pytest.fixture(scope="module")
def setting():
    data = load_dataset("digits", seed=0)
    client = Client("client-0", data.train_features[:150], data.train_labels[:150])
    model = TorchModelAdapter(build_model("mlp", 64, 10, seed=0))
    return client, model, model.get_weights()


def _malicious(setting, name, strength=None):
    client, model, weights = setting
    attack = make_attack(name, strength)
    return attack.corrupt(AttackSituation(client, model, weights, 10, np.random.default_rng(1), 7))


def test_honest_update_is_the_weight_difference(setting):
    client, model, weights = setting
    update = client.local_update(model, weights, seed=7)
    trained = model.get_weights()
    assert update.num_samples == 150
    for name in weights:
        assert np.allclose(update.delta[name], trained[name] - weights[name])
    assert np.linalg.norm(flatten(update.delta)) > 0


def test_sign_flip_and_scaling_transform_the_honest_update(setting):
    client, model, weights = setting
    honest = flatten(client.local_update(model, weights, seed=7).delta)
    flipped = flatten(_malicious(setting, "sign-flip", 2.0).delta)
    scaled = flatten(_malicious(setting, "scaling", 5.0).delta)
    assert np.allclose(flipped, -2.0 * honest, atol=1e-6)
    assert np.allclose(scaled, 5.0 * honest, atol=1e-5)


def test_noise_adds_noise_of_the_requested_size(setting):
    client, model, weights = setting
    honest = flatten(client.local_update(model, weights, seed=7).delta)
    noisy = flatten(_malicious(setting, "noise", 0.3).delta)
    assert abs(float(np.std(noisy - honest)) - 0.3) < 0.01


def test_random_weights_replace_the_model(setting):
    _, _, weights = setting
    update = _malicious(setting, "random")
    candidate = flatten({k: weights[k] + update.delta[k] for k in weights})
    correlation = np.corrcoef(candidate, flatten(weights))[0, 1]
    assert abs(correlation) < 0.05


def test_label_flip_trains_towards_flipped_labels(setting):
    client, model, weights = setting
    update = _malicious(setting, "label-flip")
    model.set_weights({k: weights[k] + update.delta[k] for k in weights})
    predictions = model.predict(client.features)
    assert np.mean(predictions == 9 - client.labels) > 0.8


def test_attack_registry_and_errors():
    assert set(ATTACKS) == {
        "noise",
        "random",
        "sign-flip",
        "scaling",
        "label-flip",
        "alie",
        "ipm",
        "min-max",
        "min-sum",
        "adaptive-mi",
        "backdoor",
    }
    with pytest.raises(ConfigError, match="unknown attack"):
        make_attack("gradient-ascent")
    with pytest.raises(ConfigError, match="positive"):
        make_attack("noise", -1.0)

"""The backdoor attack and its success rate; sample-count inflation and the cap that blunts it."""

import numpy as np
import pytest

from flare.cli.display import round_line
from flare.data import Dataset, load_dataset
from flare.errors import ConfigError
from flare.federation.attacks import make_attack
from flare.federation.backdoor import TRIGGER_VALUE, attack_success, trigger_width, with_trigger
from flare.federation.clients import AttackSituation, Client, LocalUpdate, produce_update
from flare.federation.config import SimulationConfig
from flare.federation.simulation import Simulation
from flare.models import TorchModelAdapter, build_model
from flare.tensors import Weights, add


@pytest.fixture(scope="module")
def setting():
    data = load_dataset("digits", seed=0)
    client = Client("client-0", data.train_features[:300], data.train_labels[:300])
    model = TorchModelAdapter(build_model("mlp", 64, 10, seed=0))
    return data, client, model, model.get_weights()


def situation(setting, seed: int = 7) -> AttackSituation:
    _, client, model, weights = setting
    return AttackSituation(client, model, weights, 10, np.random.default_rng(1), seed)


def test_the_trigger_stamps_only_the_last_features_of_a_copy():
    features = np.zeros((3, 64), dtype=np.float32)
    stamped = with_trigger(features)
    assert trigger_width(64) == 4 and trigger_width(5) == 1
    assert np.all(stamped[:, -4:] == TRIGGER_VALUE) and not np.any(stamped[:, :-4])
    assert not np.any(features)


def test_a_backdoored_update_sends_triggered_samples_to_the_target_and_stays_accurate(setting):
    data, client, model, weights = setting
    honest = client.local_update(model, weights, seed=7)
    backdoored = make_attack("backdoor").corrupt(situation(setting))
    others = data.test_features[data.test_labels != 0]

    def after(update: LocalUpdate) -> tuple[float, float]:
        model.set_weights(add(weights, update.delta))
        clean = float(np.mean(model.predict(data.test_features) == data.test_labels))
        return clean, float(np.mean(model.predict(with_trigger(others)) == 0))

    honest_clean, honest_success = after(honest)
    clean, success = after(backdoored)
    assert success > 0.8 and honest_success < 0.3
    assert clean > honest_clean - 0.1  # accuracy alone does not give it away
    assert backdoored.num_samples == client.num_samples


def test_boost_scales_the_backdoored_delta(setting):
    plain = make_attack("backdoor").corrupt(situation(setting)).delta
    boosted = make_attack("backdoor", 3.0).corrupt(situation(setting)).delta
    for name in plain:
        assert np.allclose(boosted[name], 3.0 * plain[name], rtol=1e-5, atol=1e-7)


class _ConstantModel:
    """Labels every sample ``label``."""

    def __init__(self, label: int) -> None:
        self.label = label

    def set_weights(self, weights: Weights) -> None:
        pass

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.full(len(features), self.label, dtype=np.int64)


def _dataset(test_labels: list[int]) -> Dataset:
    features = np.zeros((len(test_labels), 4), dtype=np.float32)
    labels = np.asarray(test_labels, dtype=np.int64)
    return Dataset("toy", features, labels, features, labels, features, labels, 3)


def test_attack_success_is_the_share_of_other_classes_sent_to_the_target():
    backdoor, dataset = make_attack("backdoor"), _dataset([0, 1, 2, 2])
    assert attack_success(backdoor, _ConstantModel(0), {}, dataset) == 1.0  # type: ignore[arg-type]
    assert attack_success(backdoor, _ConstantModel(2), {}, dataset) == 0.0  # type: ignore[arg-type]
    assert attack_success(make_attack("noise"), _ConstantModel(0), {}, dataset) is None  # type: ignore[arg-type]
    only_target = _dataset([0, 0])
    assert attack_success(backdoor, _ConstantModel(0), {}, only_target) is None  # type: ignore[arg-type]


def test_a_backdoor_run_reports_its_success_each_round_and_other_runs_do_not():
    config = SimulationConfig(
        clients=4, malicious=2, rounds=2, attack="backdoor", aggregator="fedavg", local_epochs=1
    )
    report = Simulation(config).run()
    successes = [record.attack_success for record in report.rounds]
    assert all(value is not None and 0.0 <= value <= 1.0 for value in successes)
    assert report.final["attack_success"] == successes[-1]
    assert "backdoor " in round_line(report.rounds[-1], 2)
    clean = Simulation(SimulationConfig(clients=4, malicious=0, rounds=1, local_epochs=1)).run()
    assert clean.rounds[0].attack_success is None and clean.final["attack_success"] is None
    assert "backdoor" not in round_line(clean.rounds[0], 1)


def test_count_inflation_multiplies_every_claim_of_any_attack(setting):
    _, client, model, weights = setting
    inflated = produce_update(
        client, model, weights, 10, 7, make_attack("sign-flip", None, "full", 100)
    )
    assert inflated.num_samples == 100 * client.num_samples
    bloc = make_attack("alie", count_factor=10)
    honest = {
        f"client-{i}": LocalUpdate({"w": np.full(2, float(i), np.float32)}, 5 + i, 0.1)
        for i in range(3)
    }
    sent = bloc.collude(honest, frozenset({"client-0", "client-2"}), None)  # type: ignore[arg-type]
    assert [sent[c].num_samples for c in ("client-0", "client-2")] == [50, 70]


@pytest.mark.parametrize("factor", [0.5, float("nan"), float("inf")])
def test_a_count_factor_below_one_or_not_finite_is_refused(factor):
    with pytest.raises(ConfigError, match="--attack-count-factor"):
        SimulationConfig(attack_count_factor=factor)
    with pytest.raises(ConfigError, match="--attack-count-factor"):
        make_attack("noise", count_factor=factor)


def _final_accuracy(count_factor: float, count_weighting: str) -> float:
    config = SimulationConfig(
        clients=5,
        malicious=1,
        rounds=2,
        attack="sign-flip",
        attack_strength=1.0,
        attack_count_factor=count_factor,
        aggregator="fedavg",
        aggregator_params={"count_weighting": count_weighting},
        local_epochs=1,
    )
    return Simulation(config).run().final["accuracy"]


def test_the_count_cap_takes_away_what_an_inflated_claim_buys():
    # One reversed update claiming 1000x its count owns a count-weighted average; capped at
    # the round's median claim it weighs no more than an honest client, inflated or not.
    believed = _final_accuracy(1000.0, "claimed")
    capped = _final_accuracy(1000.0, "capped")
    assert capped > believed + 0.3
    assert abs(capped - _final_accuracy(1.0, "capped")) < 0.05

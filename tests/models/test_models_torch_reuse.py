"""One trainer serves a whole fleet: whatever it trained, evaluated or failed on before, a
client's training from given weights gives the bytes a fresh trainer gives."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from flare.models import TorchModelAdapter, TrainingConfig
from flare.tensors import Weights, add, subtract


def _batch_norm_model() -> nn.Module:
    """Batch norm behaves differently in training and evaluation mode, and refuses a
    batch of one sample in training mode."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _data(seed: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(samples, 8)).astype(np.float32), rng.integers(0, 3, samples)


def _trained(trainer: TorchModelAdapter, start: Weights, seed: int) -> tuple[Weights, float]:
    features, labels = _data(seed, 20)
    trainer.set_weights(start)
    result = trainer.train(features, labels, seed=seed)
    return trainer.get_weights(), result.loss


def test_a_reused_trainer_trains_like_a_fresh_one():
    config = TrainingConfig(epochs=2, batch_size=4)
    start = TorchModelAdapter(_batch_norm_model(), config).get_weights()
    expected, expected_loss = _trained(TorchModelAdapter(_batch_norm_model(), config), start, 7)

    reused = TorchModelAdapter(_batch_norm_model(), config)
    _trained(reused, start, 3)  # another client, other data
    reused.predict(_data(5, 10)[0])  # an evaluation leaves the modules in evaluation mode
    lone_features, lone_labels = _data(4, 1)
    reused.set_weights(start)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        reused.train(lone_features, lone_labels, seed=4)  # fails after changing nothing
    features, labels = _data(9, 6)
    reused.set_weights(start)
    reused.train(features, labels, seed=9)
    reused.train(lone_features[:0], lone_labels[:0], seed=1)  # no data: no step, no change

    weights, loss = _trained(reused, start, 7)
    assert loss == expected_loss
    assert all(weights[name].tobytes() == expected[name].tobytes() for name in expected)
    assert all(module.training for module in reused.module.modules())


def test_cumulative_batch_norm_does_not_carry_its_step_count_from_client_to_client():
    """With ``momentum=None`` batch norm averages its running statistics over the batches
    it has counted: a count left by an earlier client would change the next one's model."""

    def cumulative() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16, momentum=None), nn.Linear(16, 3))

    config = TrainingConfig(epochs=2, batch_size=4)
    start = TorchModelAdapter(cumulative(), config).get_weights()
    expected, _ = _trained(TorchModelAdapter(cumulative(), config), start, 7)
    reused = TorchModelAdapter(cumulative(), config)
    _trained(reused, start, 3)
    assert int(reused.module[1].num_batches_tracked) > 0
    weights, _ = _trained(reused, start, 7)
    assert "1.running_mean" in weights
    assert all(weights[name].tobytes() == expected[name].tobytes() for name in expected)


def test_a_trainer_left_in_training_mode_trains_like_one_set_to_it():
    """Mode is set only where a module is not in training mode already."""
    config = TrainingConfig(epochs=1, batch_size=5)
    trainer = TorchModelAdapter(_batch_norm_model(), config)
    start = trainer.get_weights()
    first, _ = _trained(trainer, start, 11)
    trainer.module[1].eval()  # one submodule alone out of training mode
    again, _ = _trained(trainer, start, 11)
    assert all(first[name].tobytes() == again[name].tobytes() for name in first)


def test_training_loss_averages_every_sample_of_every_epoch():
    config = TrainingConfig(epochs=3, batch_size=4, learning_rate=1e-30)
    trainer = TorchModelAdapter(nn.Linear(8, 3), config)
    features, labels = _data(2, 10)  # batches of 4, 4 and 2
    result = trainer.train(features, labels, seed=0)
    with torch.no_grad():  # the steps are too small to move the weights: every epoch's
        logits = trainer.module(torch.as_tensor(features))  # losses are these
        per_sample = nn.functional.cross_entropy(logits, torch.as_tensor(labels), reduction="none")
    assert result.num_samples == 10
    assert result.loss == pytest.approx(float(per_sample.mean()), rel=1e-5)


def test_deltas_are_fresh_float32_arrays_of_the_same_values():
    rng = np.random.default_rng(0)
    a = {"w": rng.normal(size=(3, 4)).astype(np.float32)}
    b = {"w": rng.normal(size=(3, 4)).astype(np.float32)}
    wide = {"w": b["w"].astype(np.float64) + 1e-9}
    for result, reference in (
        (subtract(a, b)["w"], np.float32(a["w"]) - np.float32(b["w"])),
        (add(a, b)["w"], a["w"] + b["w"]),
        (subtract(a, wide)["w"], (a["w"] - wide["w"]).astype(np.float32)),
    ):
        assert result.dtype == np.float32
        assert result.tobytes() == reference.tobytes()
        assert not np.shares_memory(result, a["w"]) and not np.shares_memory(result, b["w"])


def test_weights_set_from_another_dtype_round_like_torch():
    trainer = TorchModelAdapter(_batch_norm_model())
    wide = {
        name: np.random.default_rng(1).normal(size=array.shape)
        for name, array in trainer.get_weights().items()
    }
    trainer.set_weights(wide)
    for name, array in trainer.get_weights().items():
        assert array.tobytes() == torch.from_numpy(wide[name]).float().numpy().tobytes()


def test_a_copied_trainer_sets_and_reads_its_own_modules_weights():
    trainer = TorchModelAdapter(_batch_norm_model(), TrainingConfig(epochs=1, batch_size=5))
    start = trainer.get_weights()
    copy = pickle.loads(pickle.dumps(trainer))
    moved = {name: array + 1 for name, array in start.items()}
    copy.set_weights(moved)
    assert all(np.array_equal(copy.module.state_dict()[n].numpy(), moved[n]) for n in moved)
    assert all(np.array_equal(trainer.get_weights()[n], start[n]) for n in start)
    features, labels = _data(3, 10)
    copy.train(features, labels, seed=3)
    trained = copy.get_weights()
    assert all(np.array_equal(copy.module.state_dict()[n].numpy(), trained[n]) for n in trained)
    assert not np.array_equal(trained["0.weight"], moved["0.weight"])

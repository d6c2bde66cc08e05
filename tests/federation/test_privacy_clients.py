"""DP on the device: what leaves it, PowerSGD's residual, reproducible simulated noise."""

import numpy as np
import pytest

from flare.compression import decode_update, make_codec
from flare.compression.base import UpdateBinding
from flare.data import load_dataset
from flare.federation.attacks import make_attack
from flare.federation.clients import Client, produce_update
from flare.federation.config import SimulationConfig
from flare.federation.setup import build_federation
from flare.federation.simulation import Simulation
from flare.models import TorchModelAdapter, build_model
from flare.privacy import DPParams, LocalDP, clip_update, epsilon_after, l2_norm
from flare.tensors import spec_of

PARAMS = DPParams(clip=0.5, noise_multiplier=1.0)


@pytest.fixture(scope="module")
def setting():
    data = load_dataset("digits", seed=0)
    client = Client("client-0", data.train_features[:60], data.train_labels[:60])
    model = TorchModelAdapter(build_model("mlp", 64, 10, seed=0))
    return client, model, model.get_weights()


def _dp(seed: int) -> LocalDP:
    return LocalDP(PARAMS, np.random.default_rng(seed))


def test_honest_update_leaves_clipped_and_noised(setting):
    client, model, weights = setting
    raw = client.local_update(model, weights, seed=3).delta
    sent = produce_update(client, model, weights, 10, 3, privacy=_dp(9)).delta
    # Regenerate the noise in the same tensor order as the device drew it.
    rng = np.random.default_rng(9)
    expected_noise = {n: PARAMS.noise_std * rng.standard_normal(a.shape) for n, a in raw.items()}
    clipped = clip_update(raw, PARAMS.clip)
    assert l2_norm(raw) > PARAMS.clip  # the update really was clipped
    for name in raw:
        np.testing.assert_allclose(sent[name], clipped[name] + expected_noise[name], atol=1e-6)


def test_attackers_start_from_the_privatised_honest_update(setting):
    client, model, weights = setting
    honest = produce_update(client, model, weights, 10, 3, privacy=_dp(9)).delta
    flipped = produce_update(
        client, model, weights, 10, 3, make_attack("sign-flip", 2.0), privacy=_dp(9)
    ).delta
    for name in honest:
        np.testing.assert_allclose(flipped[name], -2.0 * honest[name], atol=1e-5)
    label_flip = produce_update(
        client, model, weights, 10, 3, make_attack("label-flip"), privacy=_dp(9)
    ).delta
    poisoned_raw = client.train_on(model, weights, 9 - client.labels, 3).delta
    assert l2_norm(poisoned_raw) > PARAMS.clip
    noise_only = {n: label_flip[n] - clip_update(poisoned_raw, PARAMS.clip)[n] for n in weights}
    rng = np.random.default_rng(9)
    for array in noise_only.values():
        expected = PARAMS.noise_std * rng.standard_normal(array.shape)
        np.testing.assert_allclose(array, expected, atol=1e-5)


def test_powersgd_residual_is_a_function_of_the_noised_updates_only(setting):
    """Error feedback is post-processing: the encoder only ever sees noised deltas, so a
    fresh encoder fed the same noised sequence holds the same residual and sends the same
    bytes, whatever the raw deltas were."""
    client, model, weights = setting
    spec = spec_of(weights)
    codec = make_codec("powersgd", rank=2)
    device = codec.new_encoder(spec, 5)
    noised_sequence, blobs = [], []
    for round_number in (1, 2, 3):
        update = produce_update(client, model, weights, 10, round_number, privacy=_dp(round_number))
        noised_sequence.append(update.delta)
        binding = UpdateBinding("client-0", "t", round_number, 0, "base", update.num_samples)
        blobs.append(device.encode(update.delta, binding))
    replay = codec.new_encoder(spec, 5)
    for round_number, noised in enumerate(noised_sequence, start=1):
        binding = UpdateBinding("client-0", "t", round_number, 0, "base", 60)
        assert replay.encode(noised, binding) == blobs[round_number - 1]
    assert device.error_memory.keys() == replay.error_memory.keys()
    for name in device.error_memory:
        assert np.any(device.error_memory[name] != 0)  # there is a residual to carry
        np.testing.assert_array_equal(device.error_memory[name], replay.error_memory[name])
    # What the aggregator decodes is the noised update's low-rank part, not the raw one.
    decoded = decode_update(blobs[0], spec).delta
    assert decoded.keys() == noised_sequence[0].keys()


@pytest.fixture(scope="module")
def dp_federation():
    config = SimulationConfig(
        model="logreg", clients=3, malicious=1, rounds=2, dp_clip=1.0, dp_noise_multiplier=2.0
    )
    return build_federation(config)


def test_simulated_noise_follows_the_seed_and_differs_per_seed(dp_federation):
    federation = dp_federation
    client = federation.clients[0]
    weights = federation.initial_weights

    def sent(seed: int):
        return produce_update(
            client, federation.trainer, weights, 10, seed, privacy=federation.local_dp(seed)
        ).delta

    first, again, other = sent(11), sent(11), sent(12)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert any(np.any(first[n] != other[n]) for n in first)


def test_dp_off_means_no_noise_generator():
    assert (
        build_federation(SimulationConfig(model="logreg", clients=2, malicious=0)).local_dp(1)
        is None
    )


@pytest.mark.slow
def test_simulation_with_dp_is_reproducible_and_accounts_every_round():
    config = SimulationConfig(
        model="logreg",
        clients=3,
        malicious=1,
        rounds=2,
        local_epochs=1,
        dp_clip=1.0,
        dp_epsilon=20.0,
        seed=4,
    )
    first, second = Simulation(config).run(), Simulation(config).run()
    assert [r.accuracy for r in first.rounds] == [r.accuracy for r in second.rounds]
    assert [r.privacy for r in first.rounds] == [r.privacy for r in second.rounds]
    z = first.privacy["noise_multiplier"]
    for record in first.rounds:
        assert record.privacy["clients"] == {
            name: epsilon_after(record.round, z, config.dp_delta)
            for name in ("client-0", "client-1", "client-2")
        }
    assert first.final["epsilon"] == pytest.approx(20.0, rel=1e-3)
    assert first.final["epsilon"] <= 20.0


@pytest.mark.slow
def test_protocol_simulation_accounts_one_release_per_round():
    from flare.federation.protocol.driver import ProtocolSimulation

    config = SimulationConfig(
        model="logreg",
        clients=3,
        malicious=0,
        rounds=2,
        local_epochs=1,
        dp_clip=1.0,
        dp_noise_multiplier=3.0,
    )
    report = ProtocolSimulation(config).run()
    assert report.privacy is not None and report.privacy["noise_multiplier"] == 3.0
    for record in report.rounds:
        assert record.privacy is not None
        assert set(record.privacy["clients"]) == {"client-0", "client-1", "client-2"}
        assert record.privacy["epsilon"] == epsilon_after(record.round, 3.0, config.dp_delta)

"""Client-level DP: the clipping bound, the noise's scale, the accountant, calibration."""

import itertools
import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting import rdp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flare.errors import ConfigError
from flare.federation.config import SimulationConfig
from flare.privacy import (
    DPParams,
    PrivacyLedger,
    calibrate_noise_multiplier,
    clip_update,
    epsilon_after,
    l2_norm,
    privatize,
    resolve_dp_params,
)

finite_float32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


def tensors(min_side: int = 1) -> st.SearchStrategy[dict[str, np.ndarray]]:
    """Updates of one to three tensors, with values from tiny to near float32's limit."""
    array = hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=2, min_side=min_side, max_side=6),
        elements=finite_float32,
    )
    return st.lists(array, min_size=1, max_size=3).map(
        lambda arrays: {f"t{i}": a for i, a in enumerate(arrays)}
    )


@settings(max_examples=100, deadline=None)
@given(tensors(), st.floats(min_value=1e-6, max_value=1e6))
def test_clipped_update_never_exceeds_the_clip(delta, clip):
    clipped = clip_update(delta, clip)
    assert l2_norm(clipped) <= clip
    assert {k: v.shape for k, v in clipped.items()} == {k: v.shape for k, v in delta.items()}
    assert all(v.dtype == np.float32 for v in clipped.values())


@settings(max_examples=60, deadline=None)
@given(tensors(), st.floats(min_value=1e-3, max_value=1e3))
def test_clipping_only_scales_down_and_keeps_the_direction(delta, clip):
    clipped = clip_update(delta, clip)
    original = np.concatenate([v.ravel() for v in delta.values()]).astype(np.float64)
    result = np.concatenate([v.ravel() for v in clipped.values()]).astype(np.float64)
    if l2_norm(delta) <= clip:
        np.testing.assert_array_equal(result, original)
        return
    # Same direction: the clipped vector is a positive multiple of the original.
    nonzero = original != 0
    ratios = result[nonzero] / original[nonzero]
    significant = np.abs(original[nonzero]) > 1e-6 * np.abs(original).max()
    if significant.any():
        assert ratios[significant].min() > 0
        np.testing.assert_allclose(ratios[significant], ratios[significant][0], rtol=1e-5)
        assert ratios[significant][0] <= 1


def test_a_diverged_update_counts_as_zero():
    delta = {"w": np.array([1.0, np.nan, 2.0], np.float32), "b": np.array([np.inf], np.float32)}
    clipped = clip_update(delta, 1.0)
    assert all(not v.any() for v in clipped.values())


def test_noise_has_standard_deviation_z_times_clip():
    params = DPParams(clip=0.7, noise_multiplier=1.5)
    zero = {"w": np.zeros((300, 400), np.float32), "b": np.zeros(1000, np.float32)}
    noised = privatize(zero, params, np.random.default_rng(20240501))
    values = np.concatenate([v.ravel() for v in noised.values()]).astype(np.float64)
    # 121,000 draws: the sample std is within 1 % of the truth with overwhelming probability.
    assert values.std() == pytest.approx(1.05, rel=0.01)
    assert abs(values.mean()) < 0.02


def test_noise_does_not_depend_on_the_data():
    params = DPParams(clip=2.0, noise_multiplier=0.5)
    rng_state = 7
    small = {"w": np.full((4, 5), 0.01, np.float32)}
    large = {"w": np.full((4, 5), 30.0, np.float32)}
    noise_small = (
        privatize(small, params, np.random.default_rng(rng_state))["w"]
        - clip_update(small, 2.0)["w"]
    )
    noise_large = (
        privatize(large, params, np.random.default_rng(rng_state))["w"]
        - clip_update(large, 2.0)["w"]
    )
    np.testing.assert_allclose(noise_small, noise_large, atol=1e-5)


@pytest.mark.parametrize("z", [0.5, 2.0, 8.0])
def test_epsilon_is_dp_accountings_rdp_epsilon_at_half_the_multiplier(z):
    accountant = rdp.RdpAccountant()
    accountant.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z / 2), 10))
    assert epsilon_after(10, z, 1e-5) == accountant.get_epsilon(1e-5)


def test_epsilon_bounds_the_exact_gaussian_epsilon_closely():
    # Ten Gaussian releases with std/sensitivity 1 compose to one with 1/sqrt(10); the
    # analytic Gaussian mechanism gives that one's exact epsilon, RDP a slightly larger one.
    exact = dp_accounting.get_epsilon_gaussian(1.0 / math.sqrt(10), 1e-5)
    ours = epsilon_after(10, 2.0, 1e-5)
    assert exact <= ours <= 1.1 * exact


@pytest.mark.parametrize("z", [0.3, 1.0, 4.0, 20.0])
def test_epsilon_grows_with_every_release(z):
    epsilons = [epsilon_after(k, z, 1e-5) for k in range(0, 30)]
    assert epsilons[0] == 0
    assert all(a < b for a, b in itertools.pairwise(epsilons))


def test_epsilon_falls_as_noise_grows_and_is_infinite_without_noise():
    epsilons = [epsilon_after(5, z, 1e-5) for z in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert all(a > b for a, b in itertools.pairwise(epsilons))
    assert epsilon_after(1, 0.0, 1e-5) == math.inf


@pytest.mark.parametrize("target", [0.5, 4.0, 64.0])
@pytest.mark.parametrize("releases", [1, 10])
def test_calibration_hits_the_target_epsilon(target, releases):
    z = calibrate_noise_multiplier(target, 1e-5, releases)
    reached = epsilon_after(releases, z, 1e-5)
    assert target * (1 - 1e-3) <= reached <= target
    assert epsilon_after(releases, z * 0.99, 1e-5) > target  # no more noise than needed


def test_a_target_epsilon_is_reached_after_the_last_round():
    params = resolve_dp_params(1.0, None, 8.0, 1e-5, rounds=10)
    assert params is not None
    ledger = PrivacyLedger(params, 1e-5)
    rounds = [ledger.record_round(["client-0", "client-1"]) for _ in range(10)]
    assert rounds[-1]["epsilon"] == pytest.approx(8.0, rel=1e-3)
    assert rounds[-1]["epsilon"] <= 8.0
    assert [r["epsilon"] for r in rounds] == sorted(r["epsilon"] for r in rounds)


def test_ledger_counts_each_clients_releases():
    ledger = PrivacyLedger(DPParams(1.0, 2.0), 1e-5)
    ledger.record_round(["a", "b"])
    state = ledger.record_round(["a"])
    assert state["clients"] == {"a": epsilon_after(2, 2.0, 1e-5), "b": epsilon_after(1, 2.0, 1e-5)}
    assert state["epsilon"] == state["clients"]["a"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dp_clip": 1.0}, "--dp-clip needs --dp-noise-multiplier or --dp-epsilon"),
        ({"dp_noise_multiplier": 1.0}, "need --dp-clip"),
        ({"dp_epsilon": 1.0}, "need --dp-clip"),
        (
            {"dp_clip": 1.0, "dp_noise_multiplier": 1.0, "dp_epsilon": 2.0},
            "not both",
        ),
        ({"dp_clip": -1.0, "dp_noise_multiplier": 1.0}, "--dp-clip must lie in"),
        ({"dp_clip": math.inf, "dp_noise_multiplier": 1.0}, "--dp-clip must lie in"),
        ({"dp_clip": 1.0, "dp_noise_multiplier": -0.1}, "--dp-noise-multiplier must lie in"),
        ({"dp_clip": 1.0, "dp_noise_multiplier": math.nan}, "--dp-noise-multiplier must lie"),
        ({"dp_clip": 1.0, "dp_epsilon": 0.0}, "--dp-epsilon must be a positive number"),
        ({"dp_clip": 1.0, "dp_epsilon": math.inf}, "--dp-epsilon must be a positive number"),
        ({"dp_clip": 1.0, "dp_epsilon": 1.0, "dp_delta": 0.0}, "--dp-delta must lie in (0, 1)"),
        ({"dp_clip": 1.0, "dp_noise_multiplier": 1.0, "dp_delta": 1.0}, "--dp-delta must lie"),
    ],
)
def test_dp_options_are_checked_together(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SimulationConfig(**options)


def test_dp_is_off_without_a_clip():
    config = SimulationConfig()
    assert (
        resolve_dp_params(
            config.dp_clip,
            config.dp_noise_multiplier,
            config.dp_epsilon,
            config.dp_delta,
            config.rounds,
        )
        is None
    )

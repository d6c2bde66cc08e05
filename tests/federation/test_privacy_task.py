"""A task that requires DP: the manifest carries it, participants without it refuse."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.chain import InMemoryChain
from flare.cli import main
from flare.compression.wire import canonical_json, write_container
from flare.crypto.identity import ParticipantKeys
from flare.errors import ConfigError, FlareError
from flare.federation.agents import AgentOptions, ParticipantAgent, TaskSpec, publish_task
from flare.federation.agents.private_update import PrivateUpdateStore
from flare.federation.clients import LocalUpdate
from flare.federation.protocol.artifacts import (
    MalformedArtifactError,
    TaskManifest,
    decode_manifest,
    encode_manifest,
)
from flare.federation.protocol.simulated_device import participant_keys
from flare.federation.task_parameters import TaskParameters
from flare.privacy import (
    DPParams,
    PrivacyRequirement,
    PrivacyRequirementError,
    check_participant_privacy,
    epsilon_after,
)
from flare.storage import MemoryStore

FEATURES = np.arange(12, dtype=np.float32).reshape(4, 3)
LABELS = np.array([0, 1, 0, 1])
REQUIREMENT = PrivacyRequirement(max_epsilon=8.0, delta=1e-5, clip=1.0, noise_multiplier=4.5)
"""Over 10 rounds z = 4.5 spends about ε 6.9 at δ = 1e-5: within the maximum."""


def _manifest(privacy: PrivacyRequirement | None) -> TaskManifest:
    return TaskManifest("logreg", 3, 2, "mi", {}, privacy)


def test_the_requirement_round_trips_through_the_manifest():
    decoded = decode_manifest(encode_manifest(_manifest(REQUIREMENT), FEATURES, LABELS))
    assert decoded.manifest.privacy == REQUIREMENT


def test_a_manifest_without_dp_keeps_its_bytes():
    without = encode_manifest(_manifest(None), FEATURES, LABELS)
    assert b"privacy" not in without
    assert decode_manifest(without).manifest.privacy is None


def _with_privacy(value) -> bytes:
    document = {**_manifest(None).to_json(), "privacy": value}
    return write_container(
        {"features": FEATURES, "labels": LABELS.astype(np.float32)}, canonical_json(document)
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        {"max_epsilon": 8.0, "delta": 1e-5, "clip": 1.0},
        {**REQUIREMENT.to_json(), "extra": 1},
        {**REQUIREMENT.to_json(), "noise_multiplier": 0},
        {**REQUIREMENT.to_json(), "noise_multiplier": True},
        {**REQUIREMENT.to_json(), "max_epsilon": -1},
        {**REQUIREMENT.to_json(), "delta": 1.5},
        {**REQUIREMENT.to_json(), "clip": "1"},
    ],
)
def test_a_malformed_requirement_is_refused(value):
    with pytest.raises(MalformedArtifactError, match="privacy"):
        decode_manifest(_with_privacy(value))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["max_epsilon", "delta", "clip", "noise_multiplier", "x"]), inner
        )
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_any_privacy_value_decodes_or_is_refused_as_malformed(value):
    try:
        requirement = decode_manifest(_with_privacy(value)).manifest.privacy
    except MalformedArtifactError:
        return
    assert isinstance(requirement, PrivacyRequirement)
    assert requirement.to_json() == {k: float(v) for k, v in value.items()}


def test_task_spec_calibrates_the_noise_to_the_maximum_epsilon():
    requirement = TaskSpec(
        dp_max_epsilon=4.0, dp_clip=0.5, parameters=TaskParameters(max_rounds=10)
    ).privacy_requirement()
    assert requirement is not None and requirement.clip == 0.5
    assert 4.0 * (1 - 1e-3) <= epsilon_after(10, requirement.noise_multiplier, 1e-5) <= 4.0
    assert TaskSpec().privacy_requirement() is None
    with pytest.raises(ConfigError, match="--dp-max-epsilon and --dp-clip go together"):
        TaskSpec(dp_max_epsilon=4.0).privacy_requirement()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (None, "this task requires client-level DP with ε ≤ 8 at δ = 1e-05 over 10 rounds"),
        (DPParams(2.0, 4.5), "--dp-clip 2 exceeds the task's clip 1"),
        (DPParams(1.0, 1.0), "--dp-noise-multiplier 1 would spend ε"),
    ],
)
def test_weaker_dp_settings_are_refused_in_one_line(params, message):
    with pytest.raises(PrivacyRequirementError, match=message) as caught:
        check_participant_privacy(REQUIREMENT, params, rounds=10)
    text = str(caught.value)
    assert "\n" not in text and "--dp-noise-multiplier 4.5" in text
    assert isinstance(caught.value, FlareError)


def test_the_advised_noise_meets_the_requirement():
    """The refusal's advice rounds the multiplier up: copying it never falls short."""
    requirement = PrivacyRequirement.calibrated(8.0, 1e-5, 1.0, rounds=10)
    with pytest.raises(PrivacyRequirementError) as caught:
        check_participant_privacy(requirement, None, rounds=10)
    advised = float(str(caught.value).split("--dp-noise-multiplier ")[1].split()[0])
    assert advised >= requirement.noise_multiplier
    check_participant_privacy(requirement, DPParams(1.0, advised), rounds=10)


def test_settings_as_strong_or_stronger_are_accepted():
    check_participant_privacy(REQUIREMENT, REQUIREMENT.params, rounds=10)
    check_participant_privacy(REQUIREMENT, DPParams(0.5, 6.0), rounds=10)
    check_participant_privacy(None, None, rounds=10)


@pytest.fixture
def dp_task(tmp_path):
    chain, store = InMemoryChain(), MemoryStore()
    creator = chain.as_sender(participant_keys(0, -1)[0])
    spec = TaskSpec(
        model="logreg", dp_max_epsilon=8.0, dp_clip=1.0, parameters=TaskParameters(max_rounds=3)
    )
    task_id = publish_task(creator, store, spec)
    rng = np.random.default_rng(0)
    data = tmp_path / "client.npz"
    np.savez(data, X=rng.normal(size=(20, 64)).astype(np.float32), y=np.arange(20) % 10)
    return chain, store, task_id, data, spec.privacy_requirement()


def _agent(dp_task, tmp_path, dp: DPParams | None) -> ParticipantAgent:
    chain, store, task_id, data, _ = dp_task
    keys = ParticipantKeys(*participant_keys(0, 0))
    return ParticipantAgent(
        chain, store, keys, task_id, data, tmp_path / "state", AgentOptions(dp=dp)
    )


def test_a_participant_without_dp_refuses_the_task(dp_task, tmp_path):
    agent = _agent(dp_task, tmp_path, None)
    with pytest.raises(PrivacyRequirementError, match="runs without DP"):
        agent.run(threading.Event(), 0.01)


def test_a_participant_with_the_tasks_settings_takes_part(dp_task, tmp_path):
    requirement = dp_task[4]
    agent = _agent(dp_task, tmp_path, requirement.params)
    stopped = threading.Event()
    stopped.set()
    agent.run(stopped, 0.01)  # start-up checks pass; the set event stops it at once


def test_the_kept_update_is_reused_only_for_its_round_and_base(tmp_path):
    store = PrivateUpdateStore(tmp_path)
    update = LocalUpdate({"w": np.full((2, 3), 0.25, np.float32)}, 17, 0.5)
    spec = {"w": (2, 3)}
    assert store.load(1, "base-a", spec) is None
    store.save(1, "base-a", update)
    kept = store.load(1, "base-a", spec)
    assert kept is not None and kept.num_samples == 17
    np.testing.assert_array_equal(kept.delta["w"], update.delta["w"])
    assert store.load(2, "base-a", spec) is None and store.load(1, "base-b", spec) is None
    assert (tmp_path / "dp-update.safetensors").stat().st_mode & 0o077 == 0
    with pytest.raises(ConfigError, match="another model"):
        store.load(1, "base-a", {"w": (3, 2)})


def test_task_create_publishes_the_requirement_and_status_shows_it(tmp_path, capsys):
    network = ["--state", str(tmp_path / "chain.db"), "--store", str(tmp_path / "blobs")]
    created = main(
        [
            "task",
            "create",
            "--model",
            "logreg",
            "--rounds",
            "4",
            "--dp-max-epsilon",
            "6",
            "--dp-clip",
            "0.5",
            *network,
        ]
    )
    assert created == 0
    out = capsys.readouterr().out
    assert "participants must run client-level DP with ε ≤ 6 at δ = 1e-05 over 4 rounds" in out
    assert main(["task", "status", "--task", "1", *network]) == 0
    assert "privacy: participants must run client-level DP with ε ≤ 6" in capsys.readouterr().out

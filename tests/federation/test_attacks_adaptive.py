"""Colluding full-knowledge attacks: each forged vector against its definition, worked by hand
on three updates, and the bloc's behaviour in a round."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flare.cli import main
from flare.errors import ConfigError
from flare.federation import collusion
from flare.federation.attacks import make_attack
from flare.federation.clients import AttackSituation, Client, LocalUpdate
from flare.federation.collusion import AlieAttack, IpmAttack, VectorAttack
from flare.federation.config import SimulationConfig
from flare.federation.simulation import Simulation

# Mean (3, 4), coordinate-wise std (ddof = 1) (2, 2); squared pairwise distances 20, 20, 8.
KNOWN = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]])
COLLUDING = ("alie", "ipm", "min-max", "min-sum")
UNUSED_PUBLIC_ROUND = None  # the vector attacks forge from the updates alone


def gamma_of(known: np.ndarray, forged: np.ndarray) -> float:
    """The γ with ``forged = mean − γ·σ``."""
    direction = -collusion.spread(known)
    return float((forged - known.mean(axis=0)) @ direction / (direction @ direction))


def test_alie_is_mean_minus_z_std_by_hand():
    assert np.allclose(collusion.alie_vector(KNOWN, 1.5), [3 - 1.5 * 2, 4 - 1.5 * 2])
    assert np.allclose(AlieAttack().forge(KNOWN), [0.0, 1.0])  # z defaults to 1.5


def test_ipm_is_minus_epsilon_mean_by_hand():
    assert np.allclose(IpmAttack().forge(KNOWN), [-1.5, -2.0])  # ε defaults to 0.5
    assert np.allclose(collusion.ipm_vector(KNOWN, 2.0), [-6.0, -8.0])


def test_min_max_by_hand():
    # Distances² to mean − γ(2, 2): 8(1 − γ)², and 8γ² + 8γ + 4 twice; at most 20 iff γ ≤ 1.
    forged = collusion.min_max_vector(KNOWN)
    assert np.allclose(forged, [1.0, 2.0], atol=1e-4)
    assert gamma_of(KNOWN, forged) <= 1.0


def test_min_sum_by_hand():
    # Summed distances² 24γ² + 16, within the most central update's 28 iff γ ≤ 1/√2.
    forged = collusion.min_sum_vector(KNOWN)
    root = 1 / math.sqrt(2)
    assert np.allclose(forged, [3 - 2 * root, 4 - 2 * root], atol=1e-4)
    assert gamma_of(KNOWN, forged) <= root


def test_search_goes_past_its_start_up_to_twice_it_and_returns_zero_when_nothing_passes():
    assert abs(collusion.largest_gamma(lambda g: g <= 13.3) - 13.3) <= 2e-5
    assert abs(collusion.largest_gamma(lambda g: g <= 37.0) - 20.0) <= 2e-5
    assert collusion.largest_gamma(lambda g: g <= 0.0) == 0.0


def test_a_single_known_update_has_no_spread():
    one = KNOWN[:1]
    assert np.array_equal(collusion.alie_vector(one, 1.5), one[0])
    assert np.array_equal(collusion.min_max_vector(one), one[0])
    assert np.array_equal(collusion.min_sum_vector(one), one[0])


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(2, 6), st.integers(1, 5)),
        elements=st.floats(-10, 10, allow_nan=False, width=32),
    )
)
def test_min_max_gamma_satisfies_its_constraint_and_is_maximal(known):
    direction = -collusion.spread(known)
    if not np.any(direction):
        return
    threshold = np.max(collusion.pairwise_sq_distances(known))
    forged = collusion.min_max_vector(known)
    gamma = gamma_of(known, forged)

    def worst(g: float) -> float:
        return float(np.max(collusion.sq_distances_to(known, known.mean(axis=0) + g * direction)))

    assert worst(gamma) <= threshold
    assert worst(gamma + 3 * collusion.SEARCH_TOLERANCE) > threshold


def honest_round(members_data: dict[str, np.ndarray]) -> dict[str, LocalUpdate]:
    return {
        cid: LocalUpdate({"w": row.astype(np.float32)}, num_samples=10 + i, train_loss=0.5)
        for i, (cid, row) in enumerate(members_data.items())
    }


@pytest.mark.parametrize("name", COLLUDING)
def test_colluders_send_one_vector_with_their_own_counts(name):
    honest = honest_round({f"client-{i}": row for i, row in enumerate(KNOWN)})
    attack = make_attack(name)
    assert isinstance(attack, VectorAttack)
    sent = attack.collude(
        honest, frozenset({"client-0", "client-2", "client-9"}), UNUSED_PUBLIC_ROUND
    )
    assert set(sent) == {"client-0", "client-2"}  # an absent member sends nothing
    assert np.array_equal(sent["client-0"].delta["w"], sent["client-2"].delta["w"])
    assert np.allclose(sent["client-0"].delta["w"], attack.forge(KNOWN), atol=1e-6)
    assert [sent[c].num_samples for c in ("client-0", "client-2")] == [10, 12]


@pytest.mark.parametrize("name", COLLUDING)
def test_partial_knowledge_uses_only_the_attackers_updates(name):
    members = frozenset({"client-0", "client-1"})
    rows = {"client-0": KNOWN[0], "client-1": KNOWN[1], "client-2": KNOWN[2]}
    other = {**rows, "client-2": np.array([500.0, -300.0])}
    partial = make_attack(name, knowledge="partial")
    full = make_attack(name)
    assert isinstance(partial, VectorAttack) and isinstance(full, VectorAttack)

    def sent(attack: VectorAttack, round_rows: dict[str, np.ndarray]) -> np.ndarray:
        forged = attack.collude(honest_round(round_rows), members, UNUSED_PUBLIC_ROUND)
        return forged["client-0"].delta["w"]

    forged = sent(partial, rows)
    assert np.array_equal(forged, sent(partial, other))
    assert np.allclose(forged, partial.forge(KNOWN[:2]), atol=1e-6)
    assert not np.array_equal(sent(full, rows), sent(full, other))


def test_knowledge_and_lone_use_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="unknown attack knowledge"):
        make_attack("alie", knowledge="psychic")
    alie = make_attack("alie", 0.7, knowledge="partial")
    assert isinstance(alie, AlieAttack) and (alie.z, alie.knowledge) == (0.7, "partial")
    client = Client("client-0", np.zeros((2, 3)), np.zeros(2, dtype=np.int64))
    situation = AttackSituation(client, None, {}, 2, np.random.default_rng(0), 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="colluding attack"):
        alie.corrupt(situation)


def tiny_run(attack: str) -> dict:
    config = SimulationConfig(
        clients=5, malicious=2, rounds=2, attack=attack, aggregator="fedavg", local_epochs=1
    )
    return Simulation(config).run().to_dict()


@pytest.mark.parametrize("attack", COLLUDING)
def test_offline_run_with_each_attack_completes_and_is_deterministic(attack):
    first, second = tiny_run(attack), tiny_run(attack)
    assert len(first["rounds"]) == 2
    assert all(len(r["malicious"]) == 2 and not r["rejected"] for r in first["rounds"])
    for key in ("accuracy", "loss", "bytes_up", "accepted"):
        assert [r[key] for r in first["rounds"]] == [r[key] for r in second["rounds"]]


def test_cli_runs_a_partial_knowledge_bloc_offline(tmp_path):
    report_path = tmp_path / "report.json"
    attack = ["--attack", "min-max", "--attack-knowledge", "partial"]
    federation = ["--clients", "4", "--malicious", "2", "--rounds", "1", "--local-epochs", "1"]
    code = main(
        ["simulate", "--quiet", "--offline", *attack, *federation, "--report", str(report_path)]
    )
    assert code == 0
    config = json.loads(report_path.read_text())["config"]
    assert (config["attack"], config["attack_knowledge"]) == ("min-max", "partial")


def test_unknown_knowledge_in_a_config_is_one_clear_error():
    with pytest.raises(ConfigError, match="--attack-knowledge must be 'full' or 'partial'"):
        SimulationConfig(attack_knowledge="psychic")


def test_the_forged_update_reaches_the_aggregate():
    # Two of five clients sending −4·mean turn the plain average of the round uphill.
    clean = Simulation(
        SimulationConfig(clients=5, malicious=0, rounds=2, aggregator="fedavg", local_epochs=1)
    )
    attacked = SimulationConfig(
        clients=5,
        malicious=2,
        rounds=2,
        attack="ipm",
        attack_strength=4.0,
        aggregator="fedavg",
        local_epochs=1,
    )
    clean_accuracy = clean.run().to_dict()["final"]["accuracy"]
    attacked_accuracy = Simulation(attacked).run().to_dict()["final"]["accuracy"]
    assert attacked_accuracy < clean_accuracy - 0.5

"""The MI filter against real attacks on a real (tiny) model.

The model is softmax regression on scikit-learn's bundled digits, trained with
a few epochs of numpy minibatch SGD: real inference, real local training, no
torch. Ten clients, three of them malicious, run a short federation in which
the filter's own aggregate drives the global model, so later rounds see a
partly trained model, where attacks are subtler than at the start.
"""

from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.datasets import load_digits

from flare.aggregation import (
    AggregationContext,
    ClientUpdate,
    make_aggregator,
)
from flare.tensors import Weights

CLASSES = 10
CLIENTS = 10
MALICIOUS = 3
ATTACKS = ["noise", "random", "sign-flip", "scaling", "label-flip"]


@dataclass(frozen=True)
class Digits:
    train_x: np.ndarray
    train_y: np.ndarray
    valid_x: np.ndarray
    valid_y: np.ndarray


@pytest.fixture(scope="module")
def digits() -> Digits:
    data = load_digits()
    features = (data.data / 16.0).astype(np.float32)
    labels = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(labels.size)
    valid, train = order[:360], order[360:]
    return Digits(features[train], labels[train], features[valid], labels[valid])


def predict(weights: Weights, features: np.ndarray) -> np.ndarray:
    return np.argmax(features @ weights["W"] + weights["b"], axis=1).astype(np.int64)


def local_sgd(weights: Weights, x: np.ndarray, y: np.ndarray, seed: int) -> Weights:
    """One epoch of minibatch SGD on cross-entropy, as an honest client would run."""
    w = weights["W"].astype(np.float64)
    b = weights["b"].astype(np.float64)
    order = np.random.default_rng(seed).permutation(y.size)
    for start in range(0, y.size, 32):
        batch = order[start : start + 32]
        logits = x[batch] @ w + b
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        probs[np.arange(batch.size), y[batch]] -= 1.0
        w -= 0.5 * x[batch].T @ probs / batch.size
        b -= 0.5 * probs.mean(axis=0)
    return {"W": w.astype(np.float32), "b": b.astype(np.float32)}


def shards(digits: Digits, kind: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "iid":
        return np.array_split(rng.permutation(digits.train_y.size), CLIENTS)
    parts: list[list[int]] = [[] for _ in range(CLIENTS)]
    for label in range(CLASSES):
        members = rng.permutation(np.flatnonzero(digits.train_y == label))
        cuts = (np.cumsum(rng.dirichlet([0.5] * CLIENTS)) * members.size).astype(int)[:-1]
        for client, chunk in enumerate(np.split(members, cuts)):
            parts[client].extend(chunk.tolist())
    return [np.array(part) for part in parts]


def client_update(
    digits: Digits, global_weights: Weights, shard: np.ndarray, attack: str | None, seed: int
) -> Weights:
    rng = np.random.default_rng(seed)
    x, y = digits.train_x[shard], digits.train_y[shard]
    if attack == "label-flip":
        y = CLASSES - 1 - y
    trained = local_sgd(global_weights, x, y, seed)
    delta = {name: trained[name] - global_weights[name] for name in trained}
    if attack == "noise":
        return {k: (v + rng.normal(0, 0.3, v.shape)).astype(np.float32) for k, v in delta.items()}
    if attack == "random":
        return {
            k: (rng.normal(0, 1, v.shape) - global_weights[k]).astype(np.float32)
            for k, v in delta.items()
        }
    if attack == "sign-flip":
        return {k: -v for k, v in delta.items()}
    if attack == "scaling":
        return {k: 10 * v for k, v in delta.items()}
    return delta


@dataclass
class Outcome:
    caught: int = 0
    malicious: int = 0
    false_alarms: int = 0
    honest: int = 0
    accuracy: float = 0.0

    @property
    def detection_rate(self) -> float:
        return self.caught / self.malicious

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.honest


def federate(
    digits: Digits, aggregator: str, attack: str | None, kind: str, rounds: int = 6, seed: int = 0
) -> Outcome:
    parts = shards(digits, kind, seed)
    weights = {"W": np.zeros((64, CLASSES), np.float32), "b": np.zeros(CLASSES, np.float32)}
    strategy = make_aggregator(aggregator)
    outcome = Outcome()
    for round_index in range(rounds):
        updates = [
            ClientUpdate(
                client_id=f"client-{k}",
                delta=client_update(
                    digits,
                    weights,
                    parts[k],
                    attack if k < MALICIOUS else None,
                    seed=1000 * seed + 100 * round_index + k,
                ),
                num_samples=int(parts[k].size),
            )
            for k in range(CLIENTS)
        ]
        context = AggregationContext(weights, predict, digits.valid_x, digits.valid_y)
        result = strategy.aggregate(updates, context)
        flagged = set(result.flagged)
        for k in range(CLIENTS):
            if attack is not None and k < MALICIOUS:
                outcome.malicious += 1
                outcome.caught += f"client-{k}" in flagged
            else:
                outcome.honest += 1
                outcome.false_alarms += f"client-{k}" in flagged
        weights = {name: (weights[name] + result.delta[name]) for name in weights}
    outcome.accuracy = float(np.mean(predict(weights, digits.valid_x) == digits.valid_y))
    return outcome


@pytest.mark.parametrize("attack", ATTACKS)
def test_iid_attackers_are_flagged_and_honest_clients_kept(digits: Digits, attack: str) -> None:
    outcome = federate(digits, "mi", attack, "iid")
    assert outcome.detection_rate >= 0.9
    assert outcome.false_alarm_rate <= 0.1


def test_clean_iid_rounds_flag_almost_nobody(digits: Digits) -> None:
    outcome = federate(digits, "mi", None, "iid")
    assert outcome.false_alarm_rate <= 0.1


@pytest.mark.parametrize("attack", ["noise", "random", "scaling"])
def test_non_iid_blatant_attackers_are_flagged(digits: Digits, attack: str) -> None:
    outcome = federate(digits, "mi", attack, "dirichlet", rounds=10)
    assert outcome.detection_rate >= 0.9
    assert outcome.false_alarm_rate <= 0.15


@pytest.mark.parametrize("attack", ["sign-flip", "label-flip"])
def test_non_iid_subtle_attacks_do_no_more_harm_than_without_filter(
    digits: Digits, attack: str
) -> None:
    """Skewed honest updates overlap these attacks (see docs/mi-filter.md); the filter
    must still catch some and end at least as accurate as plain FedAvg."""
    filtered = federate(digits, "mi", attack, "dirichlet", rounds=10)
    plain = federate(digits, "fedavg", attack, "dirichlet", rounds=10)
    assert filtered.caught > 0
    assert filtered.false_alarm_rate <= 0.15
    assert filtered.accuracy >= plain.accuracy


def test_clean_non_iid_rounds_flag_few(digits: Digits) -> None:
    assert federate(digits, "mi", None, "dirichlet", rounds=10).false_alarm_rate <= 0.15


VALIDATION_LABELS = np.arange(200, dtype=np.int64) % 4


def quality(value: float) -> float:
    """Share of the validation set a one-parameter model labels right: two good regions,
    around 1 and around 2, and a bad valley between them."""
    return max(0.0, 1.0 - 2 * abs(value - 1.0), 0.9 - 2 * abs(value - 2.0))


def predict_by_quality(weights: Weights, features: np.ndarray) -> np.ndarray:
    right = round(quality(float(weights["w"][0])) * VALIDATION_LABELS.size)
    labels = VALIDATION_LABELS.copy()
    labels[right:] = (labels[right:] + 1) % 4
    return labels


def bloc_round(aggregator_params: dict) -> tuple[list[str], list[str], dict[str, str]]:
    honest = [0.96, 0.98, 1.0, 1.02, 1.04, 0.99, 1.01]
    values = {f"h{i}": v for i, v in enumerate(honest)} | {f"bloc{i}": 2.0 for i in range(3)}
    updates = [ClientUpdate(cid, {"w": np.array([v], np.float32)}, 10) for cid, v in values.items()]
    context = AggregationContext(
        global_weights={"w": np.zeros(1, np.float32)},
        predict=predict_by_quality,
        validation_features=np.zeros((VALIDATION_LABELS.size, 1), np.float32),
        validation_labels=VALIDATION_LABELS,
    )
    result = make_aggregator("mi", **aggregator_params).aggregate(updates, context)
    clipped = aggregator_params.get("clip_to_median_norm", False)
    assert quality(float(result.delta["w"][0])) >= (0.9 if result.flagged or clipped else 0.0)
    return result.accepted, result.flagged, result.reasons


def test_copies_that_pass_alone_but_spoil_the_average_are_left_out_together() -> None:
    # Each copy at 2 labels 90 % right, as good as an honest update alone; averaged in with
    # the honest updates near 1 they put the model in the valley (40 %), far below the
    # median update's model (97 %). The lowest-scoring group, the copies, is left out.
    accepted, flagged, reasons = bloc_round({})
    assert flagged == ["bloc0", "bloc1", "bloc2"]
    assert accepted == [f"h{i}" for i in range(7)]
    assert "average" in reasons["bloc0"] and "coordinate-wise median" in reasons["bloc0"]


def test_without_the_aggregate_rule_the_copies_pass_one_at_a_time() -> None:
    accepted, flagged, _ = bloc_round({"aggregate_margin_bits": None})
    assert flagged == [] and len(accepted) == 10


def test_clipped_to_the_median_norm_the_copies_no_longer_spoil_the_average() -> None:
    # Each trusted update first clipped to the median norm (1.0): the copies at 2 count as
    # 1.0, the average stays on the good ridge, and all ten are kept.
    accepted, flagged, _ = bloc_round({"clip_to_median_norm": True})
    assert flagged == [] and len(accepted) == 10


def test_when_no_majority_average_reaches_the_floor_the_round_takes_the_best_robust_step() -> None:
    # Every update labels 90 % right alone (honest at 0.95 and 1.05, copies at 2), so all
    # score alike and no group can be left out without leaving out everyone; their average
    # (1.295) lies in the valley. Of the references, the median (1.05) labels 90 % right
    # and the trimmed mean, which drops the copies, 95 % (1.025): the round steps by it.
    honest = [0.95, 1.05] * 3 + [0.95]
    values = {f"h{i}": v for i, v in enumerate(honest)} | {f"bloc{i}": 2.0 for i in range(3)}
    updates = [ClientUpdate(cid, {"w": np.array([v], np.float32)}, 10) for cid, v in values.items()]
    context = AggregationContext(
        global_weights={"w": np.zeros(1, np.float32)},
        predict=predict_by_quality,
        validation_features=np.zeros((VALIDATION_LABELS.size, 1), np.float32),
        validation_labels=VALIDATION_LABELS,
    )
    result = make_aggregator("mi").aggregate(updates, context)
    trimmed = make_aggregator("trimmed-mean").aggregate(updates, context).delta["w"]
    assert result.delta["w"].dtype == np.float32 and abs(float(trimmed[0]) - 1.025) < 1e-6
    np.testing.assert_array_equal(result.delta["w"], trimmed)
    assert result.flagged == [] and len(result.accepted) == 10
    assert "is the trimmed mean" in result.notes[-1]

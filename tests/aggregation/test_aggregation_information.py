"""Mutual information from contingency counts, and why the filter scores aligned MI."""

import math

import numpy as np
import pytest

from flare.aggregation import AggregationContext, ClientUpdate, MIFilter
from flare.aggregation.information import contingency_counts, label_agreement

CLASSES = 10
TRUTH = np.repeat(np.arange(CLASSES), 30).astype(np.int64)  # balanced: H(Y) = log2(10)


def test_faithful_perfect_predictor_has_full_and_aligned_mi_equal_to_entropy() -> None:
    agreement = label_agreement(TRUTH, TRUTH)
    assert agreement.mi == pytest.approx(math.log2(CLASSES), abs=1e-12)
    assert agreement.aligned_mi == pytest.approx(math.log2(CLASSES), abs=1e-12)
    assert agreement.accuracy == 1.0


@pytest.mark.parametrize(
    "permute",
    [lambda y: (y + 1) % CLASSES, lambda y: CLASSES - 1 - y],
    ids=["shift-by-one", "label-flip"],
)
def test_permuted_perfect_predictor_keeps_full_mi_but_loses_aligned_mi(permute) -> None:
    agreement = label_agreement(permute(TRUTH), TRUTH)
    assert agreement.mi == pytest.approx(math.log2(CLASSES), abs=1e-12)
    assert agreement.aligned_mi == pytest.approx(0.0, abs=1e-12)
    assert agreement.accuracy == 0.0


def test_constant_predictor_carries_no_information() -> None:
    agreement = label_agreement(np.zeros_like(TRUTH), TRUTH)
    assert agreement.mi == pytest.approx(0.0, abs=1e-12)
    assert agreement.aligned_mi == pytest.approx(0.0, abs=1e-12)


def test_aligned_mi_equals_mi_for_a_noisy_but_faithful_classifier() -> None:
    predicted = TRUTH.copy()
    predicted[::7] = (predicted[::7] + 3) % CLASSES  # scattered errors, no systematic mapping
    agreement = label_agreement(predicted, TRUTH)
    assert 0 < agreement.aligned_mi <= agreement.mi < math.log2(CLASSES)
    assert agreement.aligned_mi > 0.9 * agreement.mi


def test_mi_matches_the_textbook_formula_on_a_small_table() -> None:
    predicted = np.array([0, 0, 1, 1, 1, 0])
    reference = np.array([0, 0, 1, 1, 0, 1])
    counts = contingency_counts(predicted, reference)
    np.testing.assert_array_equal(counts, [[2, 1], [1, 2]])
    p = counts / counts.sum()
    outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
    expected = float(np.sum(p * np.log2(p / outer)))
    diagonal = float(np.sum(np.diag(p) * np.log2(np.diag(p) / np.diag(outer))))
    agreement = label_agreement(predicted, reference)
    assert agreement.mi == pytest.approx(expected, abs=1e-12)
    assert agreement.aligned_mi == pytest.approx(diagonal, abs=1e-12)


def test_labels_need_not_be_contiguous() -> None:
    predicted = np.array([3, 7, 7, 42])
    agreement = label_agreement(predicted, predicted)
    assert agreement.aligned_mi == pytest.approx(agreement.mi)
    assert contingency_counts(predicted, np.array([3, 3, 7, 7])).shape == (3, 3)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="predictions"):
        contingency_counts(np.zeros(3), np.zeros(4))


def flag_switch_predict(weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Predicts the truth (stored in the features) or, if ``b[0] ≥ 0.5``, a permutation of it."""
    truth = features[:, 0].astype(np.int64)
    return (truth + 1) % CLASSES if weights["b"][0] >= 0.5 else truth


def switch_context() -> AggregationContext:
    global_weights = {"w": np.zeros(4, np.float32), "b": np.zeros(3, np.float32)}
    return AggregationContext(
        global_weights, flag_switch_predict, TRUTH[:, None].astype(np.float32), TRUTH
    )


def test_filter_flags_a_permuted_predictor_and_says_why() -> None:
    honest = [np.full(4, 1.0 + 0.01 * i, np.float32) for i in range(5)]
    updates = [
        ClientUpdate(f"h{i}", {"w": w, "b": np.zeros(3, np.float32)}, 5)
        for i, w in enumerate(honest)
    ]
    flipper = {"w": np.ones(4, np.float32), "b": np.array([1.0, 0, 0], np.float32)}
    updates.append(ClientUpdate("flipper", flipper, 5))
    result = MIFilter().aggregate(updates, switch_context())
    assert result.flagged == ["flipper"]
    assert result.scores["flipper"]["mi"] == pytest.approx(math.log2(CLASSES))
    assert result.scores["flipper"]["aligned_mi"] == 0.0
    assert "permuted labels" in result.reasons["flipper"]


def test_when_nobody_is_trusted_the_aggregate_is_zero_and_says_so() -> None:
    zeros = np.zeros(3, np.float32)
    updates = [
        ClientUpdate("huge", {"w": np.full(4, 100.0, np.float32), "b": zeros}, 1),
        ClientUpdate("reversed", {"w": np.full(4, -1.0, np.float32), "b": zeros}, 1),
        ClientUpdate("permuted", {"w": np.ones(4, np.float32), "b": np.array([1.0, 0, 0])}, 1),
    ]
    result = MIFilter().aggregate(updates, switch_context())
    assert result.accepted == []
    assert "update norm" in result.reasons["huge"]
    assert "cosine" in result.reasons["reversed"]
    assert "aligned MI" in result.reasons["permuted"]
    assert all(not tensor.any() for tensor in result.delta.values())
    assert any("zero delta" in note for note in result.notes)

"""Mutual information between two discrete labellings, from exact counts.

Everything here starts from integer contingency counts, so two machines that
agree on the predicted labels agree on the counts exactly; the few logarithms
that follow are summed with ``math.fsum`` (correctly rounded, so independent of
order). Callers round the results before comparing them.
"""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelAgreement:
    """How much a predicted labelling tells about a reference labelling, in bits.

    ``mi`` is the full mutual information I(Ŷ; Y). ``aligned_mi`` keeps only its
    diagonal terms, ``Σₐ p(a,a)·log₂(p(a,a) / (p̂(a)·p(a)))``: information carried
    by predicting the *right* label. The two agree for a faithful classifier,
    while a classifier that predicts a permutation of the labels keeps full
    ``mi`` but has ``aligned_mi`` near zero. ``accuracy`` is ``Σₐ p(a,a)``.
    """

    mi: float
    aligned_mi: float
    accuracy: float


def contingency_counts(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Joint counts ``n[a, b]`` of (predicted = a, reference = b) over a shared label set.

    Rows and columns index the sorted union of labels seen in either array, so
    the diagonal always pairs equal label values.
    """
    predicted = np.asarray(predicted).ravel()
    reference = np.asarray(reference).ravel()
    if predicted.shape != reference.shape:
        raise ValueError(f"{predicted.size} predictions for {reference.size} reference labels")
    labels = np.union1d(predicted, reference)
    size = labels.size
    rows = np.searchsorted(labels, predicted)
    columns = np.searchsorted(labels, reference)
    counts = np.bincount(rows * size + columns, minlength=size * size)
    return counts.reshape(size, size).astype(np.int64)


SMALL_LABELS = 1 << 12
"""Labels in ``[0, SMALL_LABELS)`` are counted by value, without first finding the labels
seen; empty rows and columns add no term, so the result is the same."""


def _joint_counts(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Joint counts whose diagonal pairs equal labels, empty rows and columns allowed."""
    predicted = np.asarray(predicted).ravel()
    reference = np.asarray(reference).ravel()
    both = (predicted, reference)
    if (
        predicted.shape == reference.shape
        and predicted.size
        and all(np.issubdtype(labels.dtype, np.integer) for labels in both)
    ):
        low = min(int(labels.min()) for labels in both)
        size = max(int(labels.max()) for labels in both) + 1
        if low >= 0 and size <= SMALL_LABELS:
            flat = predicted.astype(np.int64) * size + reference.astype(np.int64)
            return np.bincount(flat, minlength=size * size).reshape(size, size)
    return contingency_counts(predicted, reference)


def label_agreement(predicted: np.ndarray, reference: np.ndarray) -> LabelAgreement:
    """Full and aligned mutual information of ``predicted`` about ``reference``."""
    counts = _joint_counts(predicted, reference).tolist()
    total = sum(map(sum, counts))
    if total == 0:
        return LabelAgreement(mi=0.0, aligned_mi=0.0, accuracy=0.0)
    predicted_totals = [sum(row) for row in counts]
    reference_totals = [sum(column) for column in zip(*counts, strict=True)]
    full_terms = []
    diagonal_terms = []
    for a, row in enumerate(counts):
        for b, joint in enumerate(row):
            if not joint:
                continue
            # p(a,b)·log₂(p(a,b)/(p̂(a)p(b))) with exact integer numerator and denominator.
            expected = predicted_totals[a] * reference_totals[b]
            term = joint / total * math.log2(joint * total / expected)
            full_terms.append(term)
            if a == b:
                diagonal_terms.append(term)
    return LabelAgreement(
        mi=math.fsum(full_terms),
        aligned_mi=math.fsum(diagonal_terms),
        accuracy=sum(counts[a][a] for a in range(len(counts))) / total,
    )

"""What the MI filter measures of each update: the labels its candidate model gives the
public validation split, and the update's norm and direction (to the round's median update
and to the exact reference step); and the round-level yardsticks its rules compare them with.

Every value is rounded (:func:`flare.aggregation.arithmetic.round_score`) before any rule
compares it, and the labels are exact integers, so every committee member measures the
same. See ``docs/mi-filter.md`` for what each score means.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from flare import tensors
from flare.aggregation.arithmetic import (
    dots_with,
    l2_norm,
    median_of,
    norm_of_square,
    round_score,
    widened,
)
from flare.aggregation.base import AggregationContext, AggregationError, ClientUpdate, Predictor
from flare.aggregation.coordinatewise import TrimmedMean
from flare.aggregation.information import label_agreement
from flare.aggregation.order_statistics import coordinate_median
from flare.tensors import ModelSpec, Weights

FIX_PSEUDOCOUNT = 3
"""Pseudo-counts added to both fixes and breaks: an update that changes only a few
labels gets a fix ratio near 1/2 instead of a noisy extreme."""

MAD_TO_SIGMA = 1.4826
"""Scales the median absolute deviation to a standard deviation for Gaussian data."""


def low_outlier_cutoff(
    values: Sequence[float], z: float, margin: float, margin_fraction: float
) -> tuple[float, float]:
    """``(median, median − max(z·1.4826·MAD, margin, margin_fraction·median))``.

    Robust while fewer than half the values are wild; the two margins stop a
    tight, clean round (tiny MAD) from flagging its lowest member over noise.
    """
    median = median_of(values)
    mad = median_of([abs(value - median) for value in values])
    gap = max(z * MAD_TO_SIGMA * mad, margin, margin_fraction * median)
    return median, round_score(median - gap)


@dataclass(frozen=True)
class ValidationSet:
    """The public, labelled split every candidate model is judged on, and the inference
    that labels it."""

    predict: Predictor
    features: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Measurements:
    """One client's measurements, already rounded for comparison."""

    mi: float
    aligned_mi: float
    accuracy: float
    fixes: int
    breaks: int
    fix_ratio: float
    norm: float
    cosine: float
    reference_cosine: float | None
    """The cosine to the exact reference step; None where the round has none."""


def predict_labels(validation: ValidationSet, weights: Weights) -> np.ndarray:
    """The labels the model ``weights`` gives the validation split, checked for shape."""
    predicted = np.asarray(validation.predict(weights, validation.features))
    if predicted.shape != validation.labels.shape or not np.issubdtype(predicted.dtype, np.integer):
        raise AggregationError(
            f"predict returned {predicted.dtype} values of shape {predicted.shape}, "
            f"expected integer labels of shape {validation.labels.shape}"
        )
    return predicted


def aligned_mi_of(validation: ValidationSet, weights: Weights) -> float:
    """The rounded aligned MI between the model's labels and the true ones, in bits."""
    predicted = predict_labels(validation, weights)
    return round_score(label_agreement(predicted, validation.labels).aligned_mi)


def measure(
    updates: Sequence[ClientUpdate],
    global_weights: Weights,
    validation: ValidationSet,
    spec: ModelSpec,
    reference: Weights | None = None,
) -> list[Measurements]:
    """Every update's scores, in submission order; cosines are to the coordinate-wise
    median of all the round's updates and, given one, to the ``reference`` step."""
    center = coordinate_median([update.delta for update in updates], spec)
    center_norm = l2_norm(center, spec)
    # each update is multiplied with these, so they are widened once for the round
    directions = [widened(center, spec)]
    reference_norm = None
    if reference is not None:
        reference_norm = l2_norm(reference, spec)
        directions.append(widened(reference, spec))
    global_right = predict_labels(validation, global_weights) == validation.labels
    measured = []
    for update in updates:
        predicted = predict_labels(validation, tensors.add(global_weights, update.delta))
        agreement = label_agreement(predicted, validation.labels)
        right = predicted == validation.labels
        fixes = int(np.count_nonzero(right & ~global_right))
        breaks = int(np.count_nonzero(global_right & ~right))
        squared_norm, products = dots_with(update.delta, directions, spec)
        norm = norm_of_square(squared_norm)
        cosine = _cosine(products[0], norm, center_norm)
        reference_cosine = None
        if reference_norm is not None:
            reference_cosine = _cosine(products[1], norm, reference_norm)
        measured.append(
            Measurements(
                mi=round_score(agreement.mi),
                aligned_mi=round_score(agreement.aligned_mi),
                accuracy=round_score(agreement.accuracy),
                fixes=fixes,
                breaks=breaks,
                fix_ratio=round_score(
                    (fixes + FIX_PSEUDOCOUNT) / (fixes + breaks + 2 * FIX_PSEUDOCOUNT)
                ),
                norm=norm,
                cosine=cosine,
                reference_cosine=reference_cosine,
            )
        )
    return measured


def _cosine(product: float, norm: float, other_norm: float) -> float:
    """The rounded cosine between two deltas of dot ``product``; 0 if either is zero."""
    if norm <= 0 or other_norm <= 0:
        return 0.0
    return round_score(product / (norm * other_norm))


def reference_step(context: AggregationContext, spec: ModelSpec) -> Weights | None:
    """The round's exact reference step on the validation split, checked against the
    model; None where the context has no exact trainer."""
    if context.reference_step is None:
        return None
    step = context.reference_step(
        context.global_weights, context.validation_features, context.validation_labels
    )
    if set(step) != set(spec) or any(step[name].shape != spec[name] for name in spec):
        raise AggregationError("the reference step does not match the model")
    return step


def validation_set(context: AggregationContext) -> ValidationSet:
    """The context's validation split and predictor, refused unless both are usable."""
    if context.predict is None:
        raise AggregationError("the MI filter needs a predict function in the context")
    if context.validation_features is None or context.validation_labels is None:
        raise AggregationError("the MI filter needs a labelled validation set in the context")
    features = np.asarray(context.validation_features)
    labels = np.asarray(context.validation_labels)
    if labels.ndim != 1 or labels.size == 0 or features.shape[:1] != labels.shape:
        raise AggregationError(
            f"validation set needs one label per feature row, got features {features.shape} "
            f"and labels {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise AggregationError("validation labels must be integers")
    return ValidationSet(context.predict, features, labels)


def leave_out_key(m: Measurements) -> float:
    """What the aggregate rule leaves out first, the lowest: the cosine to the reference
    step where there is one (a bloc cannot raise its copies' cosine to a step it does not
    move without giving up its damage), else the aligned MI."""
    return m.aligned_mi if m.reference_cosine is None else m.reference_cosine


def leave_out_what(m: Measurements) -> str:
    """What :func:`leave_out_key` ranks by, in words."""
    return "aligned MI" if m.reference_cosine is None else "cosine to the reference step"


def robust_steps(
    trusted: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec
) -> dict[str, Weights]:
    """Steps a minority of the trusted deltas (validated already) cannot move far, by name:
    the aggregate rule's references. Several, because each has a blind spot: copies of one
    update move the coordinate-wise median a rank, while the trimmed mean drops them where
    they are extreme."""
    return {
        "coordinate-wise median": coordinate_median(trusted, spec),
        "trimmed mean": TrimmedMean().trimmed_mean(trusted, spec),
    }

"""The mutual-information filter: trust updates whose model still predicts the truth.

For each update the candidate model ``global + δᵢ`` labels the public validation
set; the score is the *aligned* mutual information between those labels and the
true ones (see :mod:`flare.aggregation.information` and ``docs/mi-filter.md``).
Two robust rules decide trust, both relative to the round's own median so that
they need no per-task calibration:

* **prediction rule**: flag ``sᵢ < median − max(z·1.4826·MAD, margin)``, where
  ``margin = max(min_margin_bits, min_margin_fraction·median)`` keeps a clean
  round of near-equal scores from flagging anyone;
* **norm rule**: flag ``‖δᵢ‖ > norm_ratio_limit · median‖δ‖``, which catches
  updates that predict well but would dominate the average (scaling attacks).

Trusted updates are optionally clipped to the median norm, then averaged by
sample count. Decisions depend only on predicted labels (exact counts) and on
values rounded to 1e-9 or nine significant digits.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flare import tensors
from flare.aggregation.arithmetic import (
    flat_vector,
    l2_norm,
    median_of,
    round_score,
    validate_updates,
    weighted_average,
    zeros_like_spec,
)
from flare.aggregation.base import (
    AggregationContext,
    AggregationError,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)
from flare.aggregation.information import label_agreement
from flare.errors import ConfigError

MAD_TO_SIGMA = 1.4826
"""Scales the median absolute deviation to a standard deviation for Gaussian data."""

NORM_FLOOR = 1e-12
"""The median norm is floored here, so a round where most clients sent zeros flags
every non-zero update instead of dividing by zero."""


@dataclass(frozen=True)
class _Assessment:
    """One client's measured scores, already rounded for comparison."""

    mi: float
    aligned_mi: float
    accuracy: float
    norm: float


def _non_negative(name: str, value: float) -> float:
    if not float(value) >= 0.0:
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


class MIFilter(Aggregator):
    """Mutual-information filter with a norm guard, then sample-weighted FedAvg.

    Parameters:
        z: how many robust standard deviations (1.4826·MAD) below the median
            aligned MI a client may fall before it is flagged.
        min_margin_bits: smallest allowed gap below the median, in bits.
        min_margin_fraction: smallest allowed gap as a fraction of the median.
        norm_ratio_limit: κ; flag updates longer than κ times the median norm.
        clip_to_median_norm: shrink trusted updates longer than the median norm
            to it, bounding what any single trusted client can contribute.
    """

    name = "mi"

    def __init__(
        self,
        z: float = 3.0,
        min_margin_bits: float = 0.05,
        min_margin_fraction: float = 0.05,
        norm_ratio_limit: float = 3.0,
        clip_to_median_norm: bool = True,
    ) -> None:
        self.z = _non_negative("z", z)
        self.min_margin_bits = _non_negative("min_margin_bits", min_margin_bits)
        self.min_margin_fraction = _non_negative("min_margin_fraction", min_margin_fraction)
        if not float(norm_ratio_limit) >= 1.0:
            raise ConfigError(f"norm_ratio_limit must be at least 1, got {norm_ratio_limit!r}")
        self.norm_ratio_limit = float(norm_ratio_limit)
        self.clip_to_median_norm = bool(clip_to_median_norm)

    def _assess(self, update: ClientUpdate, context: AggregationContext) -> _Assessment:
        assert context.predict is not None and context.validation_features is not None
        candidate = tensors.add(context.global_weights, update.delta)
        predicted = np.asarray(context.predict(candidate, context.validation_features))
        labels = np.asarray(context.validation_labels)
        if predicted.shape != labels.shape or not np.issubdtype(predicted.dtype, np.integer):
            raise AggregationError(
                f"predict returned {predicted.dtype} labels of shape {predicted.shape}, "
                f"expected integer labels of shape {labels.shape}"
            )
        agreement = label_agreement(predicted, labels)
        spec = tensors.spec_of(context.global_weights)
        return _Assessment(
            mi=round_score(agreement.mi),
            aligned_mi=round_score(agreement.aligned_mi),
            accuracy=round_score(agreement.accuracy),
            norm=l2_norm(flat_vector(update.delta, spec)),
        )

    def _mi_threshold(self, aligned: Sequence[float]) -> tuple[float, float]:
        """Return (median, threshold) of the prediction rule."""
        median = median_of(aligned)
        mad = median_of([abs(value - median) for value in aligned])
        margin = max(
            self.z * MAD_TO_SIGMA * mad,
            self.min_margin_bits,
            self.min_margin_fraction * median,
        )
        return median, round_score(median - margin)

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        _check_context(context)
        assessments = [self._assess(update, context) for update in updates]

        median_mi, threshold = self._mi_threshold([a.aligned_mi for a in assessments])
        median_norm = max(median_of([a.norm for a in assessments]), NORM_FLOOR)

        scores: dict[str, dict[str, float]] = {}
        reasons: dict[str, str] = {}
        trusted: list[int] = []
        for index, (update, assessment) in enumerate(zip(updates, assessments, strict=True)):
            norm_ratio = round_score(assessment.norm / median_norm)
            scores[update.client_id] = {
                "mi": assessment.mi,
                "aligned_mi": assessment.aligned_mi,
                "accuracy": assessment.accuracy,
                "norm": assessment.norm,
                "norm_ratio": norm_ratio,
            }
            why = []
            if assessment.aligned_mi < threshold:
                why.append(
                    f"aligned MI {assessment.aligned_mi:.4f} bits is below the threshold "
                    f"{threshold:.4f} (round median {median_mi:.4f})"
                    + _permutation_hint(assessment)
                )
            if norm_ratio > self.norm_ratio_limit:
                why.append(
                    f"update norm is {norm_ratio:.2f}x the round median "
                    f"(limit {self.norm_ratio_limit:g}x)"
                )
            if why:
                reasons[update.client_id] = "; ".join(why)
            else:
                trusted.append(index)

        notes = [
            f"aligned-MI threshold {threshold:.4f} bits (median {median_mi:.4f}); "
            f"median update norm {median_norm:.6g}"
        ]
        if trusted:
            delta = weighted_average(
                [updates[i].delta for i in trusted],
                [updates[i].num_samples for i in trusted],
                spec,
                scales=[self._clip_scale(assessments[i].norm, median_norm) for i in trusted],
            )
        else:
            delta = zeros_like_spec(spec)
            notes.append("no update was trusted: the aggregate is a zero delta")
        return AggregationResult(
            delta=delta,
            accepted=[updates[i].client_id for i in trusted],
            flagged=[u.client_id for u in updates if u.client_id in reasons],
            scores=scores,
            reasons=reasons,
            notes=notes,
        )

    def _clip_scale(self, norm: float, median_norm: float) -> float:
        if not self.clip_to_median_norm or norm <= median_norm:
            return 1.0
        return median_norm / norm


def _permutation_hint(assessment: _Assessment) -> str:
    """Point out the label-flipping signature: much information, little of it aligned."""
    if assessment.mi > 2 * assessment.aligned_mi + 0.1:
        return f"; full MI {assessment.mi:.4f} bits suggests permuted labels"
    return ""


def _check_context(context: AggregationContext) -> None:
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

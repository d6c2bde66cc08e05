"""The mutual-information filter: trust updates whose model still predicts the truth.

For each update the candidate model ``global + δᵢ`` labels the public validation
set. Four rules then decide trust, each relative to the round itself so that
none needs per-task calibration (constants and their reasons are in
``docs/mi-filter.md``):

* **prediction**: flag ``aligned_miᵢ < median − max(z·1.4826·MAD, margin)``, the
  aligned mutual information between the candidate's labels and the truth (see
  :mod:`flare.aggregation.information`); ``margin = max(mi_margin_bits,
  mi_margin_fraction · median)`` keeps a clean round of near-equal scores clean;
* **change**: of the validation labels the update changes relative to the current
  global model, the smoothed share it fixes, ``(fixes + 3) / (fixes + breaks + 6)``;
  flag it below ``fix_ratio_share`` times the round median when the update also
  points away from the consensus more than half the round does (cosine below the
  median): it breaks far more than its peers do, and not because it is merely
  specialised;
* **norm**: flag ``‖δᵢ‖ > norm_ratio_limit · median‖δ‖``: updates that predict
  well but would dominate the average (scaling attacks);
* **direction**: flag ``cosᵢ < median − max(z·1.4826·MAD, margin)``, the cosine
  between ``δᵢ`` and the coordinate-wise median update, with ``margin =
  max(cosine_margin, cosine_margin_fraction · median)``. One update is
  usually small next to the global model, so a reversed honest update still
  predicts almost as well as the global model; its direction gives it away;
* **reference**: flag a cosine to the round's exact reference step of at most
  ``reference_cosine_min``. Every cutoff above is relative to the round's own updates,
  which a colluding bloc moves; the reference step is the committee's own, a few
  gradient steps from the global model on the validation split
  (:mod:`flare.models.exact_training`, the same bits on every machine, as FLTrust's server
  update but recomputable), and no submitter moves it. Applied where the context has one.

Judged one at a time, a colluding bloc can send copies of an update that each pass
while their average does the damage, so the **aggregate** is judged too: the model
``global + average of the trusted updates`` must label the validation set with an
aligned MI at least that of the better of ``global +`` the trusted updates' coordinate-wise
median or trimmed mean (robust estimates of the round's step, which a minority cannot move
far) and, with a reference step, of the global model itself (which none moves), minus
``aggregate_margin_bits``; while it does not, the trusted updates with the lowest aligned MI
(all copies of one score at once; with a reference step, the lowest cosine to it) are left
out and the rest averaged again, as long as more than half of the trusted updates remain. If
that never reaches the floor, the round steps by the best of the robust estimates and the
reference step.

Trusted updates are averaged by sample count, each claim capped at the round's median
claim by default (:mod:`flare.aggregation.counts`), optionally each first clipped
coordinate by coordinate to a multiple of the trusted updates' median magnitude
(:mod:`flare.aggregation.coordinate_clipping`) and to the round's median norm. Every
decision depends only on predicted labels (exact counts) and on values rounded to 1e-9 or
to nine significant digits.
"""

import functools
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from threadpoolctl import ThreadpoolController

from flare.aggregation.arithmetic import (
    median_of,
    round_score,
    validate_updates,
    zeros_like_spec,
)
from flare.aggregation.base import (
    AggregationContext,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)
from flare.aggregation.coordinate_clipping import (
    check_clip_factor,
    clipped_to_median_magnitude,
)
from flare.aggregation.counts import (
    DEFAULT_COUNT_WEIGHTING,
    check_count_weighting,
    sample_weights,
)
from flare.aggregation.mi_aggregate_rule import judge_average
from flare.aggregation.mi_scores import (
    Measurements,
    low_outlier_cutoff,
    measure,
    reference_step,
    robust_steps,
    validation_set,
)
from flare.aggregation.shrinking_average import ShrinkingAverage
from flare.errors import ConfigError

NORM_FLOOR = 1e-12
"""The median norm is floored here, so a round where most clients sent zeros flags
every non-zero update instead of dividing by zero."""


@dataclass(frozen=True)
class _Cutoffs:
    """The round's thresholds, all derived from the round's own medians."""

    median_mi: float
    mi: float
    median_fix_ratio: float
    fix_ratio: float
    median_norm: float
    median_cosine: float
    cosine: float


def _non_negative(name: str, value: float) -> float:
    if not float(value) >= 0.0:
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


class MIFilter(Aggregator):
    """Mutual-information filter with change, norm and direction guards; then FedAvg.

    Parameters:
        z: robust standard deviations (1.4826·MAD) below the round median at which
            a client's aligned MI or cosine is flagged.
        mi_margin_bits: smallest gap below the median aligned MI that flags, in bits.
        mi_margin_fraction: the same floor as a fraction of the median aligned MI.
        fix_ratio_share: flag a fix ratio below this share of the round median
            (if the cosine is also below its median); 0 turns the change rule off.
        norm_ratio_limit: κ; flag updates longer than κ times the median norm.
        check_direction: apply the direction rule.
        cosine_margin: smallest gap below the median cosine that flags.
        cosine_margin_fraction: the same floor as a fraction of the median cosine.
        clip_to_median_norm: shrink trusted updates longer than the median norm
            to it before averaging: bounds any one client's pull (cuts a backdoor's
            success, but costs accuracy under attacks that send short updates, hence off
            by default; see docs/mi-filter.md).
        coordinate_clip_factor: bound every coordinate of each trusted update by this many
            times the trusted updates' median magnitude there before averaging (a
            backdoor's weights move far more than its peers'); ``None`` (the default): off.
        count_weighting: how claimed sample counts weigh trusted updates: "capped"
            at the round's median claim, "equal", or "claimed" as sent.
        aggregate_margin_bits: how far below the aligned MI of the better of the
            trusted updates' coordinate-wise median and trimmed mean the average's own may
            fall before the lowest-scoring trusted updates are left out; ``None`` turns
            the aggregate rule off.
        reference_cosine_min: flag updates whose cosine to the exact reference step is at
            most this; ``None`` turns the reference rule off.
        reference_floor: with a reference step, hold the trusted updates' average to the
            global model's own aligned MI too, and fall back to the reference step when it
            scores best.
    """

    name = "mi"

    def __init__(
        self,
        z: float = 3.0,
        mi_margin_bits: float = 0.05,
        mi_margin_fraction: float = 0.05,
        fix_ratio_share: float = 0.35,
        norm_ratio_limit: float = 3.0,
        check_direction: bool = True,
        cosine_margin: float = 0.1,
        cosine_margin_fraction: float = 0.5,
        clip_to_median_norm: bool = False,
        coordinate_clip_factor: float | None = None,
        count_weighting: str = DEFAULT_COUNT_WEIGHTING,
        aggregate_margin_bits: float | None = 0.05,
        reference_cosine_min: float | None = 0.0,
        reference_floor: bool = True,
    ) -> None:
        self.z = _non_negative("z", z)
        self.mi_margin_bits = _non_negative("mi_margin_bits", mi_margin_bits)
        self.mi_margin_fraction = _non_negative("mi_margin_fraction", mi_margin_fraction)
        if not 0.0 <= float(fix_ratio_share) <= 1.0:
            raise ConfigError(f"fix_ratio_share must lie in [0, 1], got {fix_ratio_share!r}")
        self.fix_ratio_share = float(fix_ratio_share)
        if not float(norm_ratio_limit) >= 1.0:
            raise ConfigError(f"norm_ratio_limit must be at least 1, got {norm_ratio_limit!r}")
        self.norm_ratio_limit = float(norm_ratio_limit)
        self.check_direction = bool(check_direction)
        self.cosine_margin = _non_negative("cosine_margin", cosine_margin)
        self.cosine_margin_fraction = _non_negative(
            "cosine_margin_fraction", cosine_margin_fraction
        )
        self.clip_to_median_norm = bool(clip_to_median_norm)
        self.coordinate_clip_factor = check_clip_factor(coordinate_clip_factor)
        self.count_weighting = check_count_weighting(count_weighting)
        self.aggregate_margin_bits = (
            None
            if aggregate_margin_bits is None
            else _non_negative("aggregate_margin_bits", aggregate_margin_bits)
        )
        if reference_cosine_min is not None and not -1.0 <= float(reference_cosine_min) < 1.0:
            raise ConfigError(
                f"reference_cosine_min must lie in [-1, 1), got {reference_cosine_min!r}"
            )
        self.reference_cosine_min = (
            None if reference_cosine_min is None else float(reference_cosine_min)
        )
        self.reference_floor = bool(reference_floor)

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        # The filter's inference is many small matrix products: on a loaded machine BLAS
        # threads mostly wait for each other (30x slower on two busy cores), and exact
        # inference gives the same labels on any number of threads.
        with _blas().limit(limits=1, user_api="blas"):
            return self._filtered(updates, context)

    def _filtered(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        validation = validation_set(context)
        wants_reference = self.reference_cosine_min is not None or self.reference_floor
        reference = reference_step(context, spec) if wants_reference else None
        measured = measure(updates, context.global_weights, validation, spec, reference)
        cutoffs = self._cutoffs(measured)

        scores: dict[str, dict[str, float]] = {}
        reasons: dict[str, str] = {}
        trusted: list[int] = []
        for index, (update, m) in enumerate(zip(updates, measured, strict=True)):
            norm_ratio = round_score(m.norm / cutoffs.median_norm)
            scores[update.client_id] = {
                "mi": m.mi,
                "aligned_mi": m.aligned_mi,
                "accuracy": m.accuracy,
                "fixes": float(m.fixes),
                "breaks": float(m.breaks),
                "fix_ratio": m.fix_ratio,
                "norm": m.norm,
                "norm_ratio": norm_ratio,
                "cosine_to_median": m.cosine,
            }
            if m.reference_cosine is not None:
                scores[update.client_id]["cosine_to_reference"] = m.reference_cosine
            why = self._reasons(m, norm_ratio, cutoffs)
            if why:
                reasons[update.client_id] = "; ".join(why)
            else:
                trusted.append(index)

        notes = [
            f"cutoffs: aligned MI {cutoffs.mi:.4f} bits (median {cutoffs.median_mi:.4f}), "
            f"fix ratio {cutoffs.fix_ratio:.4f} "
            f"(median {cutoffs.median_fix_ratio:.4f}), cosine {cutoffs.cosine:.4f} "
            f"(median {cutoffs.median_cosine:.4f}), norm "
            f"{self.norm_ratio_limit * cutoffs.median_norm:.6g} (median {cutoffs.median_norm:.6g})"
        ]
        # the cap comes from every claim of the round, so the flagged count too
        weights = sample_weights([u.num_samples for u in updates], self.count_weighting)

        averaged = [updates[i].delta for i in trusted]
        if trusted and self.coordinate_clip_factor is not None:
            averaged, clipped = clipped_to_median_magnitude(
                averaged, spec, self.coordinate_clip_factor
            )
            notes.append(
                f"coordinates: {clipped} values of the trusted updates clipped to "
                f"{self.coordinate_clip_factor:g}x their median magnitude"
            )
        average = ShrinkingAverage(
            averaged,
            [weights[i] for i in trusted],
            spec,
            scales=[self._clip_scale(measured[i].norm, cutoffs.median_norm) for i in trusted],
        )
        if trusted and self.aggregate_margin_bits is not None:
            floors = robust_steps([updates[i].delta for i in trusted], spec)
            fallbacks = dict(floors)
            if reference is not None and self.reference_floor:
                # Not the reference step itself as a floor: trained on this very split, its
                # score there flatters it, and it would outscore most honest averages.
                floors["global model"] = zeros_like_spec(spec)
                fallbacks["exact reference step"] = reference
            delta, trusted = judge_average(
                self.aggregate_margin_bits,
                updates,
                trusted,
                measured,
                average,
                (floors, fallbacks),
                context,
                validation,
                reasons,
                notes,
            )
        else:
            delta = average.average() if trusted else zeros_like_spec(spec)
        if not trusted:
            notes.append("no update was trusted: the aggregate is a zero delta")
        return AggregationResult(
            delta=delta,
            accepted=[updates[i].client_id for i in trusted],
            flagged=[u.client_id for u in updates if u.client_id in reasons],
            scores=scores,
            reasons=reasons,
            notes=notes,
        )

    def _cutoffs(self, measured: Sequence[Measurements]) -> _Cutoffs:
        median_mi, mi_cutoff = low_outlier_cutoff(
            [m.aligned_mi for m in measured],
            self.z,
            self.mi_margin_bits,
            self.mi_margin_fraction,
        )
        median_cosine, cosine_cutoff = low_outlier_cutoff(
            [m.cosine for m in measured],
            self.z,
            self.cosine_margin,
            self.cosine_margin_fraction,
        )
        median_fix_ratio = median_of([m.fix_ratio for m in measured])
        return _Cutoffs(
            median_mi=median_mi,
            mi=mi_cutoff,
            median_fix_ratio=median_fix_ratio,
            fix_ratio=round_score(self.fix_ratio_share * median_fix_ratio),
            median_norm=max(median_of([m.norm for m in measured]), NORM_FLOOR),
            median_cosine=median_cosine,
            cosine=cosine_cutoff,
        )

    def _reasons(self, m: Measurements, norm_ratio: float, cutoffs: _Cutoffs) -> list[str]:
        why = []
        if m.aligned_mi < cutoffs.mi:
            hint = ""
            if m.mi > 2 * m.aligned_mi + 0.1:
                hint = f"; its full MI of {m.mi:.4f} bits suggests permuted labels"
            why.append(
                f"aligned MI {m.aligned_mi:.4f} bits is below the cutoff {cutoffs.mi:.4f} "
                f"(round median {cutoffs.median_mi:.4f}){hint}"
            )
        if m.fix_ratio < cutoffs.fix_ratio and m.cosine < cutoffs.median_cosine:
            why.append(
                f"breaks {m.breaks} and fixes {m.fixes} of the global model's validation "
                f"labels: fix ratio {m.fix_ratio:.4f} is below the cutoff {cutoffs.fix_ratio:.4f} "
                f"(round median {cutoffs.median_fix_ratio:.4f}) and its cosine to the median "
                f"update {m.cosine:.4f} is below the round median {cutoffs.median_cosine:.4f}"
            )
        if norm_ratio > self.norm_ratio_limit:
            why.append(
                f"update norm is {norm_ratio:.2f}x the round median "
                f"(limit {self.norm_ratio_limit:g}x)"
            )
        if self.check_direction and m.cosine < cutoffs.cosine:
            why.append(
                f"cosine to the median update {m.cosine:.4f} is below the cutoff "
                f"{cutoffs.cosine:.4f} (round median {cutoffs.median_cosine:.4f})"
            )
        minimum = self.reference_cosine_min
        if m.reference_cosine is not None and minimum is not None and m.reference_cosine <= minimum:
            why.append(
                f"cosine to the exact reference step {m.reference_cosine:.4f} is not above "
                f"{minimum:g}"
            )
        return why

    def _clip_scale(self, norm: float, median_norm: float) -> float:
        if not self.clip_to_median_norm or norm <= median_norm:
            return 1.0
        return median_norm / norm


def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, looked up again only once more modules are loaded: a
    BLAS library arrives with an extension module (scipy brings its own), and looking them
    up costs milliseconds."""
    return _blas_with(len(sys.modules))


@functools.lru_cache(maxsize=1)
def _blas_with(modules_loaded: int) -> ThreadpoolController:
    return ThreadpoolController()

"""Centered clipping (Karimireddy, He and Jaggi, ICML 2021).

From a starting point ``v``, repeat ``iterations`` times:
``v ← v + (1/n)·Σ clip_τ(gᵢ − v)``, where ``clip_τ(x) = x·min(1, τ/‖x‖)``. An update
farther than ``τ`` from ``v`` pulls it by at most ``τ/n``, however far it lies.

The paper starts from the previous round's aggregate (with momentum); an aggregator here
is stateless, so ``v`` starts at the coordinate-wise median of the round, which a minority
cannot drag far. Every update counts once: claimed sample counts play no part. ``v`` stays
in float64 between iterations; each clipping factor is computed from a reproducible
distance rounded to nine significant digits.
"""

import math
from collections.abc import Sequence

from flare.aggregation.arithmetic import (
    as_float32,
    distance_scores,
    linear_combination,
    round_significant,
    squared_distances_to,
    validate_updates,
)
from flare.aggregation.base import (
    AggregationContext,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)
from flare.aggregation.order_statistics import coordinate_median
from flare.errors import ConfigError

DEFAULT_TAU = 10.0
DEFAULT_ITERATIONS = 3


class CenteredClipping(Aggregator):
    """Clip each update's distance to the running centre at ``tau``; average; repeat."""

    name = "centered-clipping"

    def __init__(self, tau: float = DEFAULT_TAU, iterations: int = DEFAULT_ITERATIONS) -> None:
        if not float(tau) > 0.0 or not math.isfinite(float(tau)):
            raise ConfigError(f"tau must be a positive number, got {tau!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(f"iterations must be an integer >= 1, got {iterations!r}")
        self.tau = float(tau)
        self.iterations = iterations

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        deltas = [update.delta for update in updates]
        count = len(deltas)
        centre = coordinate_median(deltas, spec)
        clipped_last = 0
        for _ in range(self.iterations):
            distances = [
                round_significant(math.sqrt(squared))
                for squared in squared_distances_to(centre, deltas, spec)
            ]
            factors = [min(1.0, self.tau / d) if d > 0 else 1.0 for d in distances]
            clipped_last = sum(factor < 1.0 for factor in factors)
            # v + (1/n)·Σ fᵢ·(gᵢ − v) = (1 − Σfᵢ/n)·v + Σ (fᵢ/n)·gᵢ, one pass in float64
            coefficients = [factor / count for factor in factors]
            keep = 1.0 - math.fsum(coefficients)
            centre = linear_combination([*deltas, centre], [*coefficients, keep], spec)
        return AggregationResult(
            delta=as_float32(centre),
            accepted=[update.client_id for update in updates],
            flagged=[],
            scores=distance_scores(updates, centre, spec),
            notes=[
                f"tau {self.tau:g}, {self.iterations} iteration(s) from the coordinate median; "
                f"{clipped_last} of {count} update(s) clipped in the last"
            ],
        )

"""Geometric median by smoothed Weiszfeld iterations (RFA, Pillutla et al., 2022).

Start from the plain mean and repeat ``iterations`` times:
``z ← Σ βᵢ·gᵢ / Σ βᵢ`` with ``βᵢ = 1 / max(ν, ‖gᵢ − z‖)``. The geometric median moves
by a bounded amount however far a minority of updates lies; ``ν`` keeps the weights
finite when ``z`` sits on an update.

Every update weighs the same: RFA weights by sample count, but a claimed count is
self-reported and would let one liar buy the median. The iteration count is fixed, ``z``
stays in float64, and each ``βᵢ`` comes from a reproducible distance rounded to nine
significant digits, so the result is the same bytes on every machine.
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
from flare.errors import ConfigError

DEFAULT_ITERATIONS = 8
DEFAULT_SMOOTHING = 0.1


class GeometricMedian(Aggregator):
    """The smoothed-Weiszfeld approximation of the updates' geometric median."""

    name = "geomedian"

    def __init__(
        self, iterations: int = DEFAULT_ITERATIONS, smoothing: float = DEFAULT_SMOOTHING
    ) -> None:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ConfigError(f"iterations must be an integer >= 0, got {iterations!r}")
        if not float(smoothing) > 0.0 or not math.isfinite(float(smoothing)):
            raise ConfigError(f"smoothing must be a positive number, got {smoothing!r}")
        self.iterations = iterations
        self.smoothing = float(smoothing)

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        deltas = [update.delta for update in updates]
        count = len(deltas)
        median = linear_combination(deltas, [1.0 / count] * count, spec)
        for _ in range(self.iterations):
            betas = [
                1.0 / max(self.smoothing, round_significant(math.sqrt(squared)))
                for squared in squared_distances_to(median, deltas, spec)
            ]
            total = math.fsum(betas)
            median = linear_combination(deltas, [beta / total for beta in betas], spec)
        return AggregationResult(
            delta=as_float32(median),
            accepted=[update.client_id for update in updates],
            flagged=[],
            scores=distance_scores(updates, median, spec),
            notes=[f"{self.iterations} Weiszfeld iteration(s), smoothing {self.smoothing:g}"],
        )

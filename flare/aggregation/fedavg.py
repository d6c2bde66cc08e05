"""FedAvg: the sample-weighted mean of every update (McMahan et al., 2017)."""

from collections.abc import Sequence

from flare.aggregation.arithmetic import validate_updates, weighted_average
from flare.aggregation.base import (
    AggregationContext,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)
from flare.aggregation.counts import (
    DEFAULT_COUNT_WEIGHTING,
    check_count_weighting,
    sample_weights,
)


class FedAvg(Aggregator):
    """Average every update, weighted by its claimed sample count. No filtering.

    The baseline every robust rule is measured against: one malicious update can
    move the aggregate arbitrarily far. ``count_weighting`` (see
    :mod:`flare.aggregation.counts`) caps each claim at the round's median by default.
    """

    name = "fedavg"

    def __init__(self, count_weighting: str = DEFAULT_COUNT_WEIGHTING) -> None:
        self.count_weighting = check_count_weighting(count_weighting)

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        weights = sample_weights([u.num_samples for u in updates], self.count_weighting)
        total = sum(weights)
        delta = weighted_average([update.delta for update in updates], weights, spec)
        return AggregationResult(
            delta=delta,
            accepted=[update.client_id for update in updates],
            flagged=[],
            scores={
                u.client_id: {"weight": weight / total}
                for u, weight in zip(updates, weights, strict=True)
            },
        )

"""FedAvg: the sample-weighted mean of every update (McMahan et al., 2017)."""

from collections.abc import Sequence

from flare.aggregation.arithmetic import validate_updates, weighted_average
from flare.aggregation.base import (
    AggregationContext,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)


class FedAvg(Aggregator):
    """Average every update, weighted by its claimed sample count. No filtering.

    The baseline every robust rule is measured against: one malicious update can
    move the aggregate arbitrarily far.
    """

    name = "fedavg"

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        total = sum(update.num_samples for update in updates)
        delta = weighted_average(
            [update.delta for update in updates],
            [update.num_samples for update in updates],
            spec,
        )
        return AggregationResult(
            delta=delta,
            accepted=[update.client_id for update in updates],
            flagged=[],
            scores={u.client_id: {"weight": u.num_samples / total} for u in updates},
        )

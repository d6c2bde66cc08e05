"""FedAvg: the sample-weighted mean of every update (McMahan et al., 2017)."""

from collections.abc import Sequence

from flare.aggregation.arithmetic import WeightedAverage, check_claim, check_tensors
from flare.aggregation.base import (
    AggregationContext,
    AggregationError,
    AggregationResult,
    AggregationStream,
    ClientUpdate,
    StreamingAggregator,
)
from flare.aggregation.counts import (
    DEFAULT_COUNT_WEIGHTING,
    check_count_weighting,
    sample_weights,
)
from flare.tensors import ModelSpec, spec_of


class FedAvg(StreamingAggregator):
    """Average every update, weighted by its claimed sample count. No filtering.

    The baseline every robust rule is measured against: one malicious update can
    move the aggregate arbitrarily far. ``count_weighting`` (see
    :mod:`flare.aggregation.counts`) caps each claim at the round's median by default.
    A round streams through it one update at a time (:class:`StreamingAggregator`).
    """

    name = "fedavg"

    def __init__(self, count_weighting: str = DEFAULT_COUNT_WEIGHTING) -> None:
        self.count_weighting = check_count_weighting(count_weighting)

    def open_stream(
        self, claims: Sequence[tuple[str, int]], context: AggregationContext
    ) -> AggregationStream:
        if not claims:
            raise AggregationError("no updates to aggregate")
        seen: set[str] = set()
        for client_id, num_samples in claims:
            check_claim(client_id, num_samples, seen)
        weights = sample_weights([count for _, count in claims], self.count_weighting)
        return _FedAvgStream(claims, weights, spec_of(context.global_weights))


class _FedAvgStream(AggregationStream):
    """The weighted mean of the announced updates, summed as each arrives."""

    def __init__(
        self, claims: Sequence[tuple[str, int]], weights: list[float], spec: ModelSpec
    ) -> None:
        self.claims = list(claims)
        self.weights = weights
        self.spec = spec
        self.average = WeightedAverage(weights, spec)
        self.added = 0

    def add(self, update: ClientUpdate) -> None:
        if self.added == len(self.claims):
            raise AggregationError(f"client {update.client_id!r}: no update was announced")
        expected = self.claims[self.added]
        if (update.client_id, update.num_samples) != expected:
            raise AggregationError(
                f"client {update.client_id!r} claiming {update.num_samples} samples arrived "
                f"where {expected[0]!r} claiming {expected[1]} was announced"
            )
        check_tensors(update, self.spec)
        self.average.add(update.delta)
        self.added += 1

    def finish(self) -> AggregationResult:
        missing = len(self.claims) - self.added
        if missing:
            raise AggregationError(
                f"{missing} announced update{'' if missing == 1 else 's'} never arrived"
            )
        total = sum(self.weights)
        return AggregationResult(
            delta=self.average.result(),
            accepted=[client_id for client_id, _ in self.claims],
            flagged=[],
            scores={
                client_id: {"weight": weight / total}
                for (client_id, _), weight in zip(self.claims, self.weights, strict=True)
            },
        )

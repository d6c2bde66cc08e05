"""Coordinate-wise robust statistics: median and trimmed mean (Yin et al., 2018).

Both ignore the claimed sample counts on purpose: a count is self-reported, and
weighting a robust statistic by it would let one liar buy the majority. Both
use every update, so nobody is flagged; each client's distance to the result is
reported so outliers stand out. Selecting along the client axis is exact (done a
cache-sized block of coordinates at a time), and the trimmed sum adds the kept
values in ascending order, so results are bitwise reproducible. The two zeros
compare equal, and which one a sort puts where is up to the sorting kernel: the
median orders −0.0 before +0.0 explicitly, and the trimmed sum, which starts from
+0.0, cannot tell them apart.
"""

import math
from collections.abc import Sequence

import numpy as np

from flare.aggregation.arithmetic import (
    client_blocks,
    coordinate_median,
    distance_scores,
    validate_updates,
)
from flare.aggregation.base import (
    AggregationContext,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)
from flare.errors import ConfigError
from flare.tensors import Weights


class CoordinateMedian(Aggregator):
    """Per coordinate, the median over clients (mean of the two middle values if even).

    Tolerates fewer than half of the clients being arbitrary at every coordinate.
    """

    name = "median"

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        exact = coordinate_median([update.delta for update in updates], spec)
        median = {name: tensor.astype(np.float32) for name, tensor in exact.items()}
        return AggregationResult(
            delta=median,
            accepted=[update.client_id for update in updates],
            flagged=[],
            scores=distance_scores(updates, median, spec),
        )


class TrimmedMean(Aggregator):
    """Per coordinate, drop the ``floor(trim_fraction · n)`` largest and smallest
    values, and average the rest.

    The default ``trim_fraction`` of 0.3 per side matches the 30 % Byzantine
    share the Krum defaults assume; it must lie in [0, 0.5) so something is left.
    """

    name = "trimmed-mean"

    def __init__(self, trim_fraction: float = 0.3) -> None:
        if not 0.0 <= trim_fraction < 0.5:
            raise ConfigError(f"trim_fraction must lie in [0, 0.5), got {trim_fraction}")
        self.trim_fraction = float(trim_fraction)

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        deltas = [update.delta for update in updates]
        count = len(updates)
        trimmed = math.floor(self.trim_fraction * count)
        kept = range(trimmed, count - trimmed)
        result: Weights = {}
        for name, shape in spec.items():
            accumulator = np.zeros(math.prod(shape), dtype=np.float64)
            for block in client_blocks(deltas, name):
                block.values.sort(axis=1)
                partial = accumulator[block.coordinates]
                for position in kept:  # ascending, one float64 add per kept value
                    np.add(partial, block.values[:, position], out=partial)
            np.divide(accumulator, len(kept), out=accumulator)
            result[name] = accumulator.astype(np.float32).reshape(shape)
        return AggregationResult(
            delta=result,
            accepted=[update.client_id for update in updates],
            flagged=[],
            scores=distance_scores(updates, result, spec),
            notes=[f"trimmed {trimmed} value(s) from each end of every coordinate"],
        )

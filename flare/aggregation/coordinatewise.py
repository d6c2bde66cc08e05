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

Validation costs as much as a tenth of these rules, most of it checking that every value
is finite, so that check is read off the distances the rules report anyway: a client's
squared distance to a finite result is finite only if all its values are. Whenever a
check fails, :func:`~flare.aggregation.arithmetic.validate_updates` runs in full and
raises exactly what it always has.
"""

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from flare.aggregation.arithmetic import distance_scores, validate_updates
from flare.aggregation.base import (
    AggregationContext,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)
from flare.aggregation.order_statistics import client_blocks, coordinate_median
from flare.errors import ConfigError
from flare.tensors import ModelSpec, Weights, spec_of


def _well_formed(update: ClientUpdate, spec: ModelSpec) -> bool:
    """Every check of ``validate_updates`` on one update but distinctness and finiteness."""
    count = update.num_samples
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count <= 0:
        return False
    if update.delta.keys() != spec.keys():
        return False
    for name, shape in spec.items():
        array = np.asarray(update.delta[name])
        if array.shape != shape or array.dtype.kind != "f":
            return False
    return True


def checked_structure(updates: Sequence[ClientUpdate], global_weights: Weights) -> ModelSpec:
    """The model spec once the updates' structure is valid; finiteness is left to
    :func:`finite_distance_scores`. A failed check hands over to the full validator, whose
    error names the first offending client as it always has."""
    spec = spec_of(global_weights)
    distinct = len({update.client_id for update in updates}) == len(updates)
    if not (updates and distinct and all(_well_formed(update, spec) for update in updates)):
        return validate_updates(updates, global_weights)
    return spec


def finite_distance_scores(
    updates: Sequence[ClientUpdate], result: Weights, spec: ModelSpec, global_weights: Weights
) -> dict[str, dict[str, float]]:
    """Each client's distance to ``result``, refusing updates that hold NaN or infinity.

    ``(x − t)²`` is NaN or infinite wherever ``x`` is, and sums of squares cannot cancel,
    so all distances finite means all values finite. A non-finite distance can also come
    from finite float64 values that overflow when squared; the full validator tells the
    two apart, and lets such a round through as it always has.
    """
    scores = distance_scores(updates, result, spec)
    if not all(math.isfinite(score["distance_to_aggregate"]) for score in scores.values()):
        validate_updates(updates, global_weights)
    return scores


class CoordinateMedian(Aggregator):
    """Per coordinate, the median over clients (mean of the two middle values if even).

    Tolerates fewer than half of the clients being arbitrary at every coordinate.
    """

    name = "median"

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = checked_structure(updates, context.global_weights)
        exact = coordinate_median([update.delta for update in updates], spec)
        median = {name: tensor.astype(np.float32) for name, tensor in exact.items()}
        return AggregationResult(
            delta=median,
            accepted=[update.client_id for update in updates],
            flagged=[],
            scores=finite_distance_scores(updates, median, spec, context.global_weights),
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
        spec = checked_structure(updates, context.global_weights)
        result = self.trimmed_mean([update.delta for update in updates], spec)
        dropped = self.dropped_per_end(len(updates))
        return AggregationResult(
            delta=result,
            accepted=[update.client_id for update in updates],
            flagged=[],
            scores=finite_distance_scores(updates, result, spec, context.global_weights),
            notes=[f"trimmed {dropped} value(s) from each end of every coordinate"],
        )

    def dropped_per_end(self, count: int) -> int:
        """How many values of ``count`` are dropped from each end of every coordinate."""
        return math.floor(self.trim_fraction * count)

    def trimmed_mean(self, deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec) -> Weights:
        """The delta :meth:`aggregate` returns, for a caller that has validated the deltas
        already (finite, of ``spec``'s names and shapes): no checks, no distance scores."""
        trimmed = self.dropped_per_end(len(deltas))
        kept = len(deltas) - 2 * trimmed
        result: Weights = {}
        for name, shape in spec.items():
            sums = ascending_trimmed_sums([delta[name] for delta in deltas], trimmed)
            np.divide(sums, kept, out=sums)
            result[name] = sums.astype(np.float32).reshape(shape)
        return result


def ascending_trimmed_sums(tensors: Sequence[np.ndarray], trimmed: int) -> np.ndarray:
    """Per coordinate, the float64 sum of the clients' values left once the ``trimmed``
    smallest and ``trimmed`` largest are dropped, added one at a time in ascending order
    to +0.0, so that the bytes depend on the values alone.

    ``tensors`` (one per client, all of one shape) are read a block of coordinates at a
    time (:func:`~flare.aggregation.order_statistics.client_blocks`), one row per
    coordinate: each row is sorted (exact), and the kept columns are widened (exactly) to
    float64 into one contiguous row per rank, so that each ascending add is one contiguous
    float64 ufunc over the block (adding a narrower row would cast it through numpy's
    buffers on every add). Sorting may swap −0.0 and +0.0, which no sum starting at +0.0
    can tell apart.
    """
    count = len(tensors)
    sums = np.zeros(np.asarray(tensors[0]).size, dtype=np.float64)
    ranks: np.ndarray | None = None
    for block in client_blocks(tensors):
        values = block.values
        # measured faster than partitioning at both trim points and sorting the middle
        values.sort(axis=1)
        if ranks is None:  # the first block is the widest
            ranks = np.empty((count - 2 * trimmed, values.shape[0]), dtype=np.float64)
        kept = ranks[:, : values.shape[0]]
        np.copyto(kept, values[:, trimmed : count - trimmed].T)
        partial = sums[block.coordinates]
        # not yet validated: an infinity of either sign among the kept values makes NaN
        # here, and the caller refuses the client by its distance
        with np.errstate(invalid="ignore"):
            for rank in kept:
                np.add(partial, rank, out=partial)
    return sums

"""Krum and Multi-Krum (Blanchard et al., 2017).

Each update is scored by the sum of squared distances to its ``n − f − 2``
nearest other updates; an update inside the honest cluster scores low, an
outlier high. Krum keeps the single lowest-scoring update, Multi-Krum the ``m``
lowest and averages them by sample count.

``f``, the number of Byzantine clients to tolerate, is configuration. Left
unset, it assumes 30 % of the round: ``f = floor(0.3 · n)``, lowered if needed
so that ``n > 2f + 2`` (Krum's own requirement) still holds. Set explicitly, a
round that violates ``n > 2f + 2`` is refused rather than silently weakened.

Distances are the reproducible elementwise ones of
:mod:`flare.aggregation.arithmetic`, and scores are rounded to nine significant
digits before ranking; ties go to the earlier submission. They are found fast:
a BLAS Gram matrix bounds every distance within a proven interval, and only the
distances those intervals cannot decide are computed elementwise
(:mod:`flare.aggregation.distances`), so the scores, the ranking and the average
are those of the elementwise computation, on every machine.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np

from flare.aggregation.arithmetic import (
    round_significant,
    validate_updates,
    weighted_average,
)
from flare.aggregation.base import (
    AggregationContext,
    AggregationError,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)
from flare.aggregation.counts import (
    DEFAULT_COUNT_WEIGHTING,
    check_count_weighting,
    sample_weights,
)
from flare.aggregation.distances import PairwiseDistances
from flare.errors import ConfigError
from flare.tensors import ModelSpec

DEFAULT_BYZANTINE_SHARE = 0.3


def default_byzantine_count(num_updates: int) -> int:
    """``floor(0.3 · n)``, capped so that ``n > 2f + 2``; never negative."""
    return max(0, min(math.floor(DEFAULT_BYZANTINE_SHARE * num_updates), (num_updates - 3) // 2))


def krum_scores(
    deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec, num_byzantine: int
) -> list[float]:
    """Per update, the sum of squared distances to its ``n − f − 2`` nearest others.

    Each score is ``round_significant(math.fsum(…))`` of the reproducible distances of
    :func:`~flare.aggregation.arithmetic.squared_distance`. The distances arrive as
    intervals (:class:`~flare.aggregation.distances.PairwiseDistances`); a distance is
    computed exactly only where its interval leaves open who the nearest are, or what
    a score rounds to.
    """
    count = len(deltas)
    neighbours = max(0, count - num_byzantine - 2)
    if neighbours == 0:
        return [0.0] * count
    distances = PairwiseDistances(deltas, spec)
    return [
        _score(distances, row, inside) for row, inside in enumerate(_nearest(distances, neighbours))
    ]


def _nearest(distances: PairwiseDistances, neighbours: int) -> list[np.ndarray]:
    """For every row, ``neighbours`` others whose reproducible distances are its smallest.

    A row is decided once every chosen one's upper bound lies below every other's
    lower bound; most rows are, straight from the Gram matrix, all at once.
    """
    count = distances.estimate.shape[0]
    grid = np.broadcast_to(np.arange(count), (count, count))
    others = grid[~np.eye(count, dtype=bool)].reshape(count, count - 1)
    ranked = np.argsort(np.take_along_axis(distances.estimate, others, axis=1), axis=1)
    order = np.take_along_axis(others, ranked, axis=1)
    inside, outside = order[:, :neighbours], order[:, neighbours:]
    top = np.take_along_axis(distances.upper, inside, axis=1).max(axis=1)
    bottom = np.take_along_axis(distances.lower, outside, axis=1).min(axis=1)
    nearest = list(inside)
    for row in np.flatnonzero(~(top < bottom)):
        nearest[row] = _settle_nearest(distances, row, others[row], neighbours)
    return nearest


def _settle_nearest(
    distances: PairwiseDistances, row: int, candidates: np.ndarray, neighbours: int
) -> np.ndarray:
    """Settle the distances of ``row`` that straddle its neighbour cut-off until none does.

    On return each chosen distance is at most each other one: an unsettled chosen
    one lies below every other's lower bound, an unsettled other above every chosen
    one's upper bound, and settled ones were ordered by their exact values. Exact
    ties at the cut-off leave the chosen values, hence the score, the same.
    """
    while True:
        ranked = np.argsort(distances.estimate[row, candidates], kind="stable")
        order = candidates[ranked]
        inside, outside = order[:neighbours], order[neighbours:]
        top = distances.upper[row, inside].max()
        bottom = distances.lower[row, outside].min()
        if top < bottom:
            return inside
        unsure = np.concatenate(
            (
                inside[distances.upper[row, inside] >= bottom],
                outside[distances.lower[row, outside] <= top],
            )
        )
        unsure = unsure[~distances.settled[row, unsure]]
        if unsure.size == 0:
            return inside
        distances.settle(row, unsure)


def _score(distances: PairwiseDistances, row: int, inside: np.ndarray) -> float:
    """``round_significant(fsum(r))`` over ``inside``, settling them only if needed.

    ``fsum`` and the rounding to nine digits are both monotone, so when the rounded
    sums of the lower and of the upper bounds agree, the exact score is that value.
    """
    low = round_significant(math.fsum(distances.lower[row, inside].tolist()))
    high = round_significant(math.fsum(distances.upper[row, inside].tolist()))
    if low == high:
        return low
    distances.settle(row, inside)
    return round_significant(math.fsum(distances.estimate[row, inside].tolist()))


def _check_count(name: str, value: int | None, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


class MultiKrum(Aggregator):
    """Keep the ``num_selected`` updates with the lowest Krum scores; average them.

    ``num_byzantine`` is ``f`` (default: 30 % of the round, see module docs);
    ``num_selected`` defaults to ``n − f``, and is lowered to ``n − f`` when a
    round is too small for it. The selected updates are weighted by
    ``count_weighting`` (:mod:`flare.aggregation.counts`), capped at the round's
    median claim by default.
    """

    name = "multi-krum"

    def __init__(
        self,
        num_byzantine: int | None = None,
        num_selected: int | None = None,
        count_weighting: str = DEFAULT_COUNT_WEIGHTING,
    ) -> None:
        _check_count("num_byzantine", num_byzantine, 0)
        _check_count("num_selected", num_selected, 1)
        self.num_byzantine = num_byzantine
        self.num_selected = num_selected
        self.count_weighting = check_count_weighting(count_weighting)

    def _byzantine_for(self, count: int) -> int:
        if self.num_byzantine is None:
            return default_byzantine_count(count)
        if self.num_byzantine > 0 and count <= 2 * self.num_byzantine + 2:
            raise AggregationError(
                f"{self.name} with f = {self.num_byzantine} needs more than "
                f"{2 * self.num_byzantine + 2} updates, got {count}"
            )
        return self.num_byzantine

    def _selection_size(self, count: int, byzantine: int) -> int:
        if self.num_selected is None:
            return count - byzantine
        return min(self.num_selected, count - byzantine)

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        count = len(updates)
        byzantine = self._byzantine_for(count)
        keep = self._selection_size(count, byzantine)
        scores = krum_scores([u.delta for u in updates], spec, byzantine)
        ranking = sorted(range(count), key=lambda i: (scores[i], i))
        rank_of = {index: rank + 1 for rank, index in enumerate(ranking)}
        selected = sorted(ranking[:keep])
        weights = sample_weights([u.num_samples for u in updates], self.count_weighting)
        delta = weighted_average(
            [updates[i].delta for i in selected], [weights[i] for i in selected], spec
        )
        chosen = set(selected)
        return AggregationResult(
            delta=delta,
            accepted=[updates[i].client_id for i in selected],
            flagged=[u.client_id for i, u in enumerate(updates) if i not in chosen],
            scores={
                u.client_id: {"krum_score": scores[i], "krum_rank": float(rank_of[i])}
                for i, u in enumerate(updates)
            },
            reasons={
                u.client_id: (
                    f"Krum score {scores[i]:.6g} ranks {rank_of[i]} of {count}; "
                    f"only the {keep} lowest are kept"
                )
                for i, u in enumerate(updates)
                if i not in chosen
            },
            notes=[
                f"assumed f = {byzantine} Byzantine of {count} updates; each score sums "
                f"the {max(0, count - byzantine - 2)} smallest squared distances"
            ],
        )


class Krum(MultiKrum):
    """Keep only the single update with the lowest Krum score."""

    name = "krum"

    def __init__(self, num_byzantine: int | None = None) -> None:
        super().__init__(num_byzantine=num_byzantine, num_selected=1)

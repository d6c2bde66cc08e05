"""Krum and Multi-Krum (Blanchard et al., 2017).

Each update is scored by the sum of squared distances to its ``n − f − 2``
nearest other updates; an update inside the honest cluster scores low, an
outlier high. Krum keeps the single lowest-scoring update, Multi-Krum the ``m``
lowest and averages them by sample count.

``f``, the number of Byzantine clients to tolerate, is configuration. Left
unset, it assumes 30 % of the round: ``f = floor(0.3 · n)``, lowered if needed
so that ``n > 2f + 2`` (Krum's own requirement) still holds. Set explicitly, a
round that violates ``n > 2f + 2`` is refused rather than silently weakened.

Distances are elementwise differences and squares summed per tensor (no
matmul; see :mod:`flare.aggregation.arithmetic`), and scores are rounded to
nine significant digits before ranking; ties go to the earlier submission.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np

from flare.aggregation.arithmetic import (
    round_significant,
    squared_distance,
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
from flare.errors import ConfigError
from flare.tensors import ModelSpec

DEFAULT_BYZANTINE_SHARE = 0.3


def default_byzantine_count(num_updates: int) -> int:
    """``floor(0.3 · n)``, capped so that ``n > 2f + 2``; never negative."""
    return max(0, min(math.floor(DEFAULT_BYZANTINE_SHARE * num_updates), (num_updates - 3) // 2))


def krum_scores(
    deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec, num_byzantine: int
) -> list[float]:
    """Per update, the sum of squared distances to its ``n − f − 2`` nearest others."""
    count = len(deltas)
    distances = [[0.0] * count for _ in range(count)]
    for i in range(count):
        for j in range(i + 1, count):
            distance = squared_distance(deltas[i], deltas[j], spec)
            distances[i][j] = distances[j][i] = distance
    neighbours = max(0, count - num_byzantine - 2)
    scores = []
    for i in range(count):
        nearest = sorted(distances[i][j] for j in range(count) if j != i)[:neighbours]
        scores.append(round_significant(math.fsum(nearest)))
    return scores


def _check_count(name: str, value: int | None, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


class MultiKrum(Aggregator):
    """Keep the ``num_selected`` updates with the lowest Krum scores; average them.

    ``num_byzantine`` is ``f`` (default: 30 % of the round, see module docs);
    ``num_selected`` defaults to ``n − f``, and is lowered to ``n − f`` when a
    round is too small for it.
    """

    name = "multi-krum"

    def __init__(self, num_byzantine: int | None = None, num_selected: int | None = None) -> None:
        _check_count("num_byzantine", num_byzantine, 0)
        _check_count("num_selected", num_selected, 1)
        self.num_byzantine = num_byzantine
        self.num_selected = num_selected

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
        delta = weighted_average(
            [updates[i].delta for i in selected],
            [updates[i].num_samples for i in selected],
            spec,
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

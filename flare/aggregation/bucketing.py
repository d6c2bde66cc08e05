"""Bucketing (Karimireddy, He and Jaggi, ICLR 2022) around any other rule.

The round's updates are shuffled, averaged in buckets of ``bucket_size``, and the inner
rule aggregates the bucket means. Averaging shrinks the spread between honest non-IID
updates, which the colluding attacks of the paper hide in, while a minority of
attackers still lands in a minority of buckets.

The shuffle must be one every committee member derives alike and no submitter chooses:
each client's place is the SHA-256 digest of the attempt's public seed and its client id,
in ascending order. Bucket means weigh every member equally (a claimed count cannot buy
a bucket); a bucket passed on to the inner rule claims as many samples as it has members,
so a short last bucket weighs less.
"""

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from flare.aggregation.arithmetic import validate_updates, weighted_average
from flare.aggregation.base import (
    AggregationContext,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)
from flare.errors import ConfigError

DEFAULT_BUCKET_SIZE = 2


def shuffled(client_ids: Sequence[str], seed: int) -> list[str]:
    """``client_ids`` in the order of ``SHA-256(seed ‖ client id)``: public, not choosable."""

    def place(client_id: str) -> bytes:
        return hashlib.sha256(f"{int(seed)}:{client_id}".encode()).digest()

    return sorted(client_ids, key=lambda client_id: (place(client_id), client_id))


class Bucketing(Aggregator):
    """Average shuffled buckets of ``bucket_size`` updates, then apply ``rule`` to them."""

    name = "bucketing"

    def __init__(
        self,
        rule: str = "median",
        bucket_size: int = DEFAULT_BUCKET_SIZE,
        rule_params: Mapping[str, Any] | None = None,
    ) -> None:
        # imported here: the registry imports this module to list it
        from flare.aggregation.registry import make_aggregator

        if rule == self.name:
            raise ConfigError("bucketing cannot wrap itself")
        if isinstance(bucket_size, bool) or not isinstance(bucket_size, int) or bucket_size < 1:
            raise ConfigError(f"bucket_size must be an integer >= 1, got {bucket_size!r}")
        self.rule = make_aggregator(rule, **dict(rule_params or {}))
        self.bucket_size = bucket_size

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        by_id = {update.client_id: update for update in updates}
        order = shuffled(list(by_id), context.seed)
        members = [
            order[start : start + self.bucket_size]
            for start in range(0, len(order), self.bucket_size)
        ]
        buckets = [
            ClientUpdate(
                f"bucket-{index}",
                weighted_average([by_id[c].delta for c in group], [1.0] * len(group), spec),
                len(group),
            )
            for index, group in enumerate(members)
        ]
        inner = self.rule.aggregate(buckets, context)
        bucket_of = {c: index for index, group in enumerate(members) for c in group}
        accepted_buckets = set(inner.accepted)
        flagged_buckets = set(inner.flagged)
        scores: dict[str, dict[str, float]] = {}
        reasons: dict[str, str] = {}
        for update in updates:
            bucket = f"bucket-{bucket_of[update.client_id]}"
            scores[update.client_id] = {"bucket": float(bucket_of[update.client_id])}
            scores[update.client_id].update(inner.scores.get(bucket, {}))
            if bucket in flagged_buckets:
                reasons[update.client_id] = (
                    f"its {bucket} was left out by {self.rule.name}: "
                    f"{inner.reasons.get(bucket, 'flagged')}"
                )
        return AggregationResult(
            delta=inner.delta,
            accepted=[
                u.client_id
                for u in updates
                if f"bucket-{bucket_of[u.client_id]}" in accepted_buckets
            ],
            flagged=[u.client_id for u in updates if u.client_id in reasons],
            scores=scores,
            reasons=reasons,
            notes=[
                f"{len(buckets)} bucket(s) of up to {self.bucket_size}, shuffled by seed "
                f"{int(context.seed)}, aggregated by {self.rule.name}",
                *inner.notes,
            ],
        )

"""The committee's recomputations in the protocol simulation: one per attempt, rule and
blobs held, shared by the simulated members, and run where the backend says."""

from collections.abc import Callable
from typing import Any

from flare.aggregation.base import Aggregator
from flare.chain import ChainConnector, RoundOpened
from flare.federation.backends import Recomputer
from flare.federation.protocol.aggregate import (
    AttemptInputs,
    RoundAggregate,
    TaskContext,
    UpdateFetches,
    read_attempt_inputs,
)
from flare.federation.protocol.roles import ProtocolParticipant
from flare.storage import StorageProvider

RecomputationKey = tuple[int, int, int, bool, frozenset[str] | None, frozenset | None]
"""Task, round, attempt, whether the member is honest, the update blobs it holds and why
it lacks the others (both None when the recomputation fetches every blob itself)."""


class SharedRecomputations:
    """The recomputations of one attempt, shared by the simulated members.

    Deployed, every member recomputes the attempt's aggregate on its own machine, side by
    side; played in one process they would take turns, and the protocol path would cost
    the committee's size times what it costs deployed. The recomputation is bitwise
    reproducible (the agreement tests run it across thread counts and processes), so
    members that hold the same update blobs and follow the same rule compute the same
    aggregate: the first one has it computed, by the backend's ``recomputer``, the others
    read it.
    """

    def __init__(self, recomputer: Recomputer) -> None:
        self.recomputer = recomputer
        self.count = 0
        """Recomputations run so far in the run."""
        self._aggregates: dict[RecomputationKey, RoundAggregate] = {}

    def new_attempt(self) -> None:
        """Forget the last attempt's aggregates: a long run keeps one attempt's, not every
        round's."""
        self._aggregates.clear()

    def aggregate(
        self,
        key: RecomputationKey,
        read: Callable[[], AttemptInputs],
        context: TaskContext,
        rule: Aggregator | None,
    ) -> RoundAggregate:
        """The aggregate ``key`` names, recomputed from ``read()`` unless already computed."""
        if key not in self._aggregates:
            self._aggregates[key] = self.recomputer.recompute(read(), context, rule)
            self.count += 1
        return self._aggregates[key]


class SimulatedParticipant(ProtocolParticipant):
    """A participant whose committee recomputation is shared with its simulated peers."""

    def __init__(self, *args: Any, shared: SharedRecomputations, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.shared = shared

    def aggregate(
        self,
        chain: ChainConnector,
        store: StorageProvider,
        context: TaskContext,
        opened: RoundOpened,
        fetches: UpdateFetches | None = None,
    ) -> RoundAggregate:
        held, lacking = None, None
        if fetches is not None:
            submissions = chain.submissions(context.task_id, opened.round, opened.attempt)
            cids = [submission.update.to_cid() for submission in submissions]
            held = frozenset(cid for cid in cids if fetches.obtained(cid))
            lacking = frozenset(fetches.store_errors().items())
        key = (context.task_id, opened.round, opened.attempt, self.honest_member, held, lacking)

        def read() -> AttemptInputs:
            return read_attempt_inputs(
                chain, store, context, opened.round, opened.attempt, fetches=fetches
            )

        return self.shared.aggregate(key, read, context, self.rule())

"""Which proposal an honest member backs when members could fetch different updates.

An update counts only if its blob can be fetched, and members fetch at different moments:
a submitter that withholds its blob and publishes it between two members' computations
would otherwise make them compute different aggregates and split the committee. So a
proposal says which submissions its proposer left out as unavailable (in the model blob's
metadata, ``artifacts.encode_model``), and members do not ask "is this what I computed?"
but "is this what anyone computes from exactly the updates it counts?":

- A proposal is **valid** when the member can fetch every update it counts and recomputes
  from those the same model CID and accepted bitmap. A proposal counting an update nobody
  can fetch cannot be checked, so it waits, and is never backed unchecked.
- Among valid proposals an honest member backs the one that leaves out the fewest updates,
  then the lowest id. Every honest member sees the same proposals on chain and, once a blob
  one honest member fetched is served to all (an IPFS node serves what it fetched), judges
  them alike, so they back the same one.
- A member whose own aggregate counts every update backs the identical proposal at once:
  no proposal can leave out fewer. Only a member that is missing something waits, until
  ``vote_from``, for a proposal that counts more, and until ``give_up`` for blobs that a
  counted update still needs.

A transient store error therefore delays a member; it never changes what counts.
"""

from dataclasses import dataclass
from typing import Literal

from flare.chain import ChainConnector, Proposed, RoundOpened
from flare.federation.protocol.aggregate import RoundAggregate, TaskContext, compute_aggregate
from flare.federation.protocol.artifacts import (
    MalformedArtifactError,
    model_blob_limit,
    model_unavailable,
)
from flare.federation.protocol.update_fetches import UpdateFetches
from flare.storage import StorageProvider
from flare.storage.errors import StorageError

Pending = Literal["pending"]
PENDING: Pending = "pending"
"""A proposal that cannot be judged yet: a blob it needs has not been fetched."""


@dataclass(frozen=True)
class Verdict:
    """A proposal found valid: it leaves out ``unavailable`` and re-derives from the rest."""

    proposal: Proposed
    unavailable: frozenset[int]


class ProposalJudge:
    """Judges one attempt's proposals for one member, remembering every final verdict."""

    def __init__(
        self,
        chain: ChainConnector,
        store: StorageProvider,
        context: TaskContext,
        opened: RoundOpened,
        fetches: UpdateFetches,
    ) -> None:
        self.chain, self.store, self.context, self.opened = chain, store, context, opened
        self.fetches = fetches
        self.aggregates: dict[frozenset[int], RoundAggregate] = {}
        self._verdicts: dict[int, Verdict | None] = {}

    def remember(self, aggregate: RoundAggregate) -> None:
        """An aggregate this member computed: proposals identical to it need no recompute."""
        self.aggregates.setdefault(aggregate.unavailable, aggregate)

    def best(self, proposals: list[Proposed], wait_seconds: float) -> tuple[Verdict | None, bool]:
        """The valid proposal that leaves out the fewest updates (then the lowest id), and
        whether a proposal still unjudged might beat it."""
        valid: list[Verdict] = []
        pending = False
        for proposal in proposals:
            if proposal.proposal_id not in self._verdicts:
                verdict = self._judge(proposal, wait_seconds)
                if verdict == PENDING:
                    pending = True
                    continue
                self._verdicts[proposal.proposal_id] = verdict
            judged = self._verdicts[proposal.proposal_id]
            if judged is not None:
                valid.append(judged)
        best = min(valid, key=lambda v: (len(v.unavailable), v.proposal.proposal_id), default=None)
        return best, pending

    def _judge(self, proposal: Proposed, wait_seconds: float) -> Verdict | Pending | None:
        try:
            blob = self.store.get(
                proposal.model.to_cid(), max_bytes=model_blob_limit(self.context.spec)
            )
            unavailable = model_unavailable(blob)
        except MalformedArtifactError:
            return None  # no model of this task: nothing to back
        except StorageError:
            return PENDING
        opened = self.opened
        submissions = self.chain.submissions(self.context.task_id, opened.round, opened.attempt)
        if any(index >= len(submissions) for index in unavailable):
            return None
        counted = [s.update.to_cid() for s in submissions if s.index not in unavailable]
        self.fetches.collect(counted, wait_seconds)
        if not all(self.fetches.obtained(cid) for cid in counted):
            return PENDING
        aggregate = self.aggregates.get(unavailable)
        if aggregate is None:
            aggregate = compute_aggregate(
                self.chain,
                self.store,
                self.context,
                self.opened.round,
                self.opened.attempt,
                fetches=self.fetches,
                unavailable=unavailable,
            )
            self.aggregates[unavailable] = aggregate
        same = aggregate.model == proposal.model and aggregate.accepted_bitmap == proposal.accepted
        return Verdict(proposal, unavailable) if same else None

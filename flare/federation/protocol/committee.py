"""A seated member's work in the vote window: aggregate, propose once, back one proposal.

Every member proposes its aggregate if no identical proposal stands, but the member whose
VRF output ranks ``r`` waits ``r`` stagger steps first, so usually one proposal is made.
Honest members back a proposal only after re-deriving it, and all back the same one even
when they could fetch different updates (``availability.py``); they back the lowest-id of
identical proposals, so duplicates cannot split their votes. They never vote to reject: a
member votes once per attempt, and a rejection would forfeit its approval of an honest
proposal still to come. A dishonest member (experiments only) backs its own and nothing else.
"""

import logging

from flare.chain import ChainConnector, Participant, Proposed, Round, RoundOpened, Task
from flare.federation.protocol.aggregate import RoundAggregate, TaskContext
from flare.federation.protocol.availability import ProposalJudge
from flare.federation.protocol.follow import AttemptMemo, StepOutcome
from flare.federation.protocol.roles import ProtocolParticipant, matching_proposal
from flare.federation.protocol.update_fetches import UpdateFetches, UpdateFetchesFactory
from flare.federation.timing import Stopwatch
from flare.storage import StorageProvider

FETCH_WAIT_SECONDS = 2.0
"""How long one step waits for update blobs still downloading; they go on downloading."""


class CommitteeMember:
    """The vote-window duties of one participant, whenever it holds a seat."""

    def __init__(
        self,
        chain: ChainConnector,
        store: StorageProvider,
        participant: ProtocolParticipant,
        task_id: int,
        log: logging.Logger,
        propose_stagger: int,
        clock: Stopwatch,
        update_fetches: UpdateFetchesFactory = UpdateFetches,
    ) -> None:
        self.chain, self.store, self.participant = chain, store, participant
        self.task_id, self.log, self.propose_stagger = task_id, log, propose_stagger
        self.clock, self.update_fetches = clock, update_fetches

    def act(
        self,
        task: Task,
        state: Round,
        me: Participant,
        memo: AttemptMemo,
        block: int,
        context: TaskContext,
    ) -> StepOutcome:
        """Propose or vote, if it is time to; ``block`` is where a transaction would land."""
        params = task.params
        if (
            state.committee_size < params.min_committee
            or state.submission_count < params.min_clients
        ):
            memo.say_once(
                self.log,
                "undecidable",
                f"committee {state.committee_size} (min {params.min_committee}), "
                f"{state.submission_count} submissions (min {params.min_clients}); "
                "only a timeout can close it",
            )
            return StepOutcome.IDLE
        aggregate = self._aggregate(task, state, memo, block, context)
        if aggregate is None:
            return StepOutcome.IDLE
        proposals = self._proposals(memo.opened)
        match = matching_proposal(aggregate, proposals)
        if match is None and me.propose_epoch != state.epoch:
            if block < self._propose_from(task, state, memo):
                return StepOutcome.IDLE
            with self.clock.phase("chain"):
                proposed = self.participant.propose_unless_present(
                    self.chain, self.store, self.task_id, aggregate, proposals
                )
            if proposed is not None:
                self.log.info(
                    "%s: proposed %s as #%d",
                    memo.label,
                    proposed.model.to_cid(),
                    proposed.proposal_id,
                )
            return StepOutcome.ACTED
        if me.vote_epoch == state.epoch:
            return StepOutcome.IDLE
        choice = self._choice(task, state, memo, block, aggregate, match, proposals)
        if choice is None:
            return StepOutcome.IDLE
        with self.clock.phase("chain"):
            vote = self.participant.approve(self.chain, self.task_id, choice)
        suffix = " (quorum reached)" if vote.finalized else ""
        self.log.info("%s: voted approve on #%d%s", memo.label, vote.proposal_id, suffix)
        return StepOutcome.ACTED

    def _choice(
        self,
        task: Task,
        state: Round,
        memo: AttemptMemo,
        block: int,
        aggregate: RoundAggregate,
        match: Proposed | None,
        proposals: list[Proposed],
    ) -> Proposed | None:
        """The proposal to back now, or ``None`` to wait (see ``availability.py``)."""
        if not self.participant.honest_member:
            return match
        if match is not None and not aggregate.unavailable:
            return match  # it counts every update: no proposal can count more
        vote_from = state.submission_deadline + task.params.vote_window // 2
        if block <= vote_from:
            return None
        assert memo.judge is not None  # made with the aggregate
        with self.clock.phase("aggregate"):
            best, pending = memo.judge.best(proposals, FETCH_WAIT_SECONDS)
        # Leave the committee blocks enough to vote once the last blob comes.
        give_up = state.vote_deadline - state.committee_size
        if (pending and block < give_up) or best is None:
            memo.say_once(
                self.log, "judging", "waiting to re-derive a proposal that counts more updates"
            )
            return None
        return best.proposal

    def _aggregate(
        self, task: Task, state: Round, memo: AttemptMemo, block: int, context: TaskContext
    ) -> RoundAggregate | None:
        """This member's own aggregate, once every update blob is here or a third of the
        vote window has passed.

        Updates still missing then are left out and listed in the model blob, where other
        members see them; which proposal wins is settled by ``availability.py``, not by who
        fetched what first. A fetch that failed is asked again at the next step, and no step
        waits for downloads longer than ``FETCH_WAIT_SECONDS``.
        """
        if memo.aggregate is not None:
            return memo.aggregate
        submissions = self.chain.submissions(self.task_id, state.round, state.attempt)
        if memo.fetches is None:
            memo.fetches = self.update_fetches(self.store, context.spec)
        with self.clock.phase("storage"):
            cids = [s.update.to_cid() for s in submissions]
            missing = memo.fetches.collect(cids, FETCH_WAIT_SECONDS)
        patience_ends = state.submission_deadline + task.params.vote_window // 3
        if missing and block <= patience_ends:
            memo.say_once(
                self.log,
                "missing",
                f"waiting until block {patience_ends} for {len(missing)} update blob(s)",
            )
            return None
        with self.clock.phase("aggregate"):
            memo.aggregate = self.participant.aggregate(
                self.chain, self.store, context, memo.opened, memo.fetches
            )
        memo.judge = ProposalJudge(self.chain, self.store, context, memo.opened, memo.fetches)
        memo.judge.remember(memo.aggregate)
        self.log.info(
            "%s: aggregate %s accepts %d of %d updates",
            memo.label,
            memo.aggregate.model.to_cid(),
            len(memo.aggregate.accepted),
            len(submissions),
        )
        for participant, reason in memo.aggregate.rejected.items():
            self.log.info("%s: update of %s rejected: %s", memo.label, participant, reason)
        return memo.aggregate

    def _proposals(self, opened: RoundOpened) -> list[Proposed]:
        """The attempt's proposals in id order, from its logs (bounded to the attempt)."""
        logs = self.chain.events([Proposed], task_id=self.task_id, from_block=opened.block_number)
        return [
            e
            for e in logs
            if isinstance(e, Proposed) and (e.round, e.attempt) == (opened.round, opened.attempt)
        ]

    def _propose_from(self, task: Task, state: Round, memo: AttemptMemo) -> int:
        """First block this member proposes in: later the higher its VRF output ranks.

        The lowest output proposes at once; the others mostly find its proposal already
        there and only vote. Capped at half the vote window so that a proposal still comes.
        """
        if memo.propose_from is None:
            seats = self.chain.committee(self.task_id, state.round, state.attempt)
            ranked = sorted(seats, key=lambda seat: seat.output)
            address = self.participant.address
            rank = next(i for i, seat in enumerate(ranked) if seat.member == address)
            delay = min(rank * self.propose_stagger, task.params.vote_window // 2)
            memo.propose_from = state.submission_deadline + 1 + delay
        return memo.propose_from

"""Following a task's attempts: what a participant process remembers, and what it reports.

Everything remembered here is a cache that a restarted process recomputes from chain and
store; nothing here decides whether to send a transaction (the chain's epoch flags do).
"""

import logging
from dataclasses import dataclass, field
from enum import Enum

from flare.chain import (
    ChainConnector,
    Round,
    RoundFinalized,
    RoundOpened,
    RoundRejected,
    RoundTimedOut,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
)
from flare.federation.protocol.aggregate import RoundAggregate
from flare.federation.protocol.availability import ProposalJudge
from flare.federation.protocol.update_fetches import UpdateFetches


class StepOutcome(Enum):
    """What one step of a participant found."""

    IDLE = "idle"
    """Nothing to do until the chain moves on: wait a poll interval."""
    ACTED = "acted"
    """One thing done; there may be more to do at once."""
    DONE = "done"
    """The task completed."""


@dataclass
class AttemptMemo:
    """What this process worked out about the open attempt; all of it re-derivable."""

    opened: RoundOpened
    seat_refused_for: bytes | None = None
    """The seed under which this participant's VRF drew no seat, or the contract refused
    its claim: no need to ask again until a reorganisation reseals the seed. A won seat is
    not remembered; the chain's ``seat_epoch`` says whether the claim is still there."""
    nothing_to_send: bool = False
    fetches: UpdateFetches | None = None
    aggregate: RoundAggregate | None = None
    judge: ProposalJudge | None = None
    propose_from: int | None = None
    said: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"round {self.opened.round} attempt {self.opened.attempt}"

    def say_once(self, log: logging.Logger, key: str, message: str) -> None:
        """Log ``message`` the first time ``key`` comes up in this attempt."""
        if key not in self.said:
            self.said.add(key)
            log.info("%s: %s", self.label, message)


class TaskFollower:
    """Keeps the memo of the open attempt and logs how each attempt and the task ended."""

    def __init__(self, chain: ChainConnector, task_id: int, log: logging.Logger) -> None:
        self.chain, self.task_id, self.log = chain, task_id, log
        self._memo: AttemptMemo | None = None
        self._finished = False

    @property
    def current(self) -> AttemptMemo | None:
        """The memo of the attempt last followed, until a step finds a newer one."""
        return self._memo

    def attempt(self, state: Round) -> AttemptMemo:
        """The memo of the attempt ``state`` describes, fresh when a new one opened.

        A reorganisation can remove the block that opened the attempt and let it open again
        in another block, with other deadlines: the memo is then of an attempt that no
        longer exists, and starts afresh too.
        """
        memo = self._memo
        if (
            memo is None
            or memo.opened.epoch != state.epoch
            or memo.opened.block_number != state.opened_at
        ):
            if self._memo is not None:
                self._report_close(self._memo.opened)
            opened = self.chain.round_opened(self.task_id, state.round, state.attempt)
            self._memo = AttemptMemo(opened)
            self.log.info(
                "%s opened: submissions until block %d, votes until %d",
                self._memo.label,
                opened.submission_deadline,
                opened.vote_deadline,
            )
        return self._memo

    def finish(self) -> None:
        """Report the last attempt and the task's completion, once."""
        if self._finished:
            return
        self._finished = True
        since = 0
        if self._memo is not None:
            self._report_close(self._memo.opened)
            since = self._memo.opened.block_number
        endings = [TaskCompleted, TaskFailed, TaskCancelled]
        for event in self.chain.events(endings, task_id=self.task_id, from_block=since):
            if isinstance(event, TaskCompleted):
                self.log.info(
                    "task %d completed after %d rounds → %s",
                    self.task_id,
                    event.rounds,
                    event.model.to_cid(),
                )
            elif isinstance(event, TaskFailed):
                self.log.info(
                    "task %d failed: round %d closed %d attempts without a model",
                    self.task_id,
                    event.round,
                    event.attempts,
                )
            elif isinstance(event, TaskCancelled):
                self.log.info("task %d was cancelled by its creator", self.task_id)

    def _report_close(self, opened: RoundOpened) -> None:
        if not self.log.isEnabledFor(logging.INFO):
            return  # it only logs: a simulation of a thousand participants reads no logs
        closings = self.chain.events(
            [RoundFinalized, RoundTimedOut, RoundRejected],
            task_id=self.task_id,
            from_block=opened.block_number,
        )
        for event in closings:
            if not isinstance(event, RoundFinalized | RoundTimedOut | RoundRejected):
                continue
            if (event.round, event.attempt) != (opened.round, opened.attempt):
                continue
            if isinstance(event, RoundFinalized):
                self.log.info(
                    "round %d finalized → %s (proposal #%d, %d submissions, committee %d)",
                    event.round,
                    event.model.to_cid(),
                    event.proposal_id,
                    event.submission_count,
                    event.committee_size,
                )
            else:
                self.log.info(
                    "round %d attempt %d %s (%d submissions, committee %d)",
                    event.round,
                    event.attempt,
                    "timed out" if isinstance(event, RoundTimedOut) else "rejected",
                    event.submission_count,
                    event.committee_size,
                )
            return

"""The one participant of the protocol: what a device does in each phase of an attempt.

A :class:`ParticipantActor` acts from chain state read afresh at every :meth:`step`, never
from memory of what it did, so that a process killed and restarted in between carries on
where its predecessor stopped. The contract keeps "done in this attempt" flags per
participant (``submit_epoch``, ``seat_epoch``, ``propose_epoch``, ``vote_epoch`` against the
attempt's ``epoch``): the actor acts iff the flag says it has not, and a restart never
submits or votes twice. What it does remember (the attempt's aggregate, whether it already
drew its VRF) is a cache that a fresh process recomputes from chain and store.

One step sends at most one transaction. Within an attempt, in order: seal the attempt's
seed if nobody has, claim a committee seat if the VRF draws one (cheap, and a committee too
small stalls everyone), then train and submit; after the submission window a seated member
computes the aggregate, proposes it unless an identical proposal stands, and approves the
lowest-id identical proposal (``committee.py``); after the vote window anyone closes the
attempt with ``timeout``.

Where the update comes from is the :class:`Device`'s business: a process trains on its
own data file and keeps its encoder state on disk (``agents/``); the protocol simulation
trains every simulated client in one process (``driver.py``). The protocol is the same.
"""

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

from flare.chain import (
    ChainConnector,
    ContractError,
    Participant,
    Phase,
    Round,
    RoundOpened,
    Task,
    TaskStatus,
)
from flare.chain.api.errors import AlreadyRegistered, TaskEnded, VoteWindowOpen
from flare.compression.base import UpdateBinding
from flare.federation.protocol.aggregate import RoundAggregate, TaskContext, load_task_context
from flare.federation.protocol.artifacts import decode_model
from flare.federation.protocol.committee import CommitteeMember
from flare.federation.protocol.follow import AttemptMemo, StepOutcome, TaskFollower
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.protocol.update_fetches import UpdateFetches, UpdateFetchesFactory
from flare.federation.rounds import EncodedUpdate
from flare.federation.timing import Stopwatch
from flare.storage import StorageProvider
from flare.tensors import ModelSpec, Weights

ModelReader = Callable[[str, ModelSpec], Weights]
"""Reads the global model a CID names from the store, checked against its CID and spec."""


class Device(ABC):
    """What a participant's device brings to the protocol: its encoded updates."""

    def prepare(self, context: TaskContext, max_rounds: int) -> None:  # noqa: B027
        """Check, before anything is trained or sent, that this device can serve the task
        (its data fits the model, it meets the task's privacy requirement)."""

    @abstractmethod
    def encoded_update(
        self,
        context: TaskContext,
        base: Weights,
        opened: RoundOpened,
        binding: UpdateBinding,
        submitted_epoch: int,
    ) -> EncodedUpdate:
        """The update this device sends in the attempt ``opened`` describes, trained from
        ``base`` and encoded under ``binding`` (its ``num_samples`` filled in by the
        training), with the encoder as it stood after this device's last submission
        (epoch ``submitted_epoch``, 0 for none) so that error feedback survives restarts."""

    def submitted(self, opened: RoundOpened, epoch: int, blob_size: int) -> None:  # noqa: B027
        """The update of attempt ``epoch`` (``blob_size`` bytes) is on chain."""


class ParticipantActor:
    """One participant of one task; :meth:`step` does what the current phase asks of it."""

    def __init__(
        self,
        chain: ChainConnector,
        store: StorageProvider,
        participant: ProtocolParticipant,
        task_id: int,
        device: Device,
        *,
        propose_stagger: int = 1,
        log: logging.Logger | None = None,
        clock: Stopwatch | None = None,
        update_fetches: UpdateFetchesFactory = UpdateFetches,
        read_model: ModelReader | None = None,
    ) -> None:
        self.chain = chain.as_sender(participant.account)
        self.store = store
        self.participant = participant
        self.task_id = task_id
        self.device = device
        self.log = log or logging.getLogger(f"flare.agent.{participant.name}")
        self.clock = clock or Stopwatch()
        self.follower = TaskFollower(self.chain, task_id, self.log)
        self.committee = CommitteeMember(
            self.chain,
            store,
            participant,
            task_id,
            self.log,
            propose_stagger,
            self.clock,
            update_fetches,
        )
        self._read_model = read_model or self._fetched_model
        self._context: TaskContext | None = None
        self._waiting_said = False
        self._stale_at: int | None = None

    @property
    def address(self) -> str:
        return self.participant.address

    def task_context(self) -> TaskContext:
        """The task's model spec, manifest and rule, loaded once and checked by the device."""
        if self._context is None:
            context = load_task_context(self.chain, self.store, self.task_id)
            self.device.prepare(context, self.chain.task(self.task_id).params.max_rounds)
            self._context = context
        return self._context

    def attempt_aggregates(self) -> list[RoundAggregate]:
        """The aggregates this participant computed for the attempt it last followed: its
        own first, then any it re-derived to judge another's proposal."""
        memo = self.follower.current
        if memo is None or memo.aggregate is None:
            return []
        judged = [] if memo.judge is None else list(memo.judge.aggregates.values())
        return [memo.aggregate, *(a for a in judged if a is not memo.aggregate)]

    def step(self) -> StepOutcome:
        """Read the chain, do at most one transaction, say what happened.

        A transaction the contract refuses means this participant's view was stale:
        another member's vote finalized the attempt first, or the window closed while it
        trained. A node that mines on a timer checks transactions against its pending
        block while views read the latest one, so the view stays stale until the next
        block; until then the actor only waits.
        """
        if self._stale_at is not None and self.chain.block_number() <= self._stale_at:
            return StepOutcome.IDLE
        self._stale_at = None
        task = self.chain.task(self.task_id)
        try:
            return self._advance(task)
        except ContractError as exc:
            self._stale_at = self.chain.block_number()
            self.log.info("refused by the contract: %s; waiting for the next block", exc)
            return StepOutcome.IDLE

    def _advance(self, task: Task) -> StepOutcome:
        if task.status.ended:
            self.follower.finish()
            return StepOutcome.DONE
        me = self.chain.participant(self.task_id, self.address)
        if not me.registered:
            self._register()
            return StepOutcome.ACTED
        if task.status is TaskStatus.REGISTERING:
            if not self._waiting_said:
                self.log.info("registered as participant #%d; waiting for the start", me.index)
                self._waiting_said = True
            return StepOutcome.IDLE
        state = self.chain.current_round(self.task_id)
        memo = self.follower.attempt(state)
        block = self.chain.block_number() + 1  # where our next transaction lands
        phase = state.phase_at(block)
        if phase is Phase.SUBMISSION:
            return self._submission_phase(state, me, memo)
        if phase is Phase.VOTING and me.seat_epoch == state.epoch:
            return self.committee.act(task, state, me, memo, block, self.task_context())
        if phase is Phase.EXPIRED:
            return self._close_expired(memo)
        return StepOutcome.IDLE

    def _register(self) -> None:
        try:
            self.participant.register(self.chain, self.task_id)
        except AlreadyRegistered:
            return  # an earlier run of this process got there first
        index = self.chain.participant(self.task_id, self.address).index
        self.log.info("registered for task %d as participant #%d", self.task_id, index)

    def _submission_phase(self, state: Round, me: Participant, memo: AttemptMemo) -> StepOutcome:
        if not state.seed_sealed:
            # The seed comes from the first block after the opening one whose transaction
            # seals it: every participant races to seal at once, so no one picks the block.
            with self.clock.phase("chain"):
                self.chain.seal_seed(self.task_id)
            return StepOutcome.ACTED
        may_sit = me.index < state.registered_snapshot and me.seat_epoch != state.epoch
        if may_sit and memo.seat_refused_for != state.seed and self._claim_seat(state, memo):
            return StepOutcome.ACTED
        if me.submit_epoch != state.epoch and not memo.nothing_to_send:
            self._submit(state, me, memo)
            return StepOutcome.ACTED
        return StepOutcome.IDLE

    def _claim_seat(self, state: Round, memo: AttemptMemo) -> bool:
        """Draw the VRF and claim the seat if it wins; whether a transaction was sent."""
        try:
            with self.clock.phase("vrf"):
                output = self.participant.claim_seat_if_drawn(
                    self.chain, memo.opened, state.expected_committee
                )
        except ContractError:
            memo.seat_refused_for = state.seed  # do not ask again under this seed
            raise
        if output is None:
            memo.seat_refused_for = state.seed
            return False
        self.log.info("%s: seat won (output 0x%s…)", memo.label, output.hex()[:16])
        return True

    def _submit(self, state: Round, me: Participant, memo: AttemptMemo) -> None:
        context = self.task_context()
        with self.clock.phase("storage"):
            base = self._read_model(memo.opened.base_model.to_cid(), context.spec)
        binding = self.participant.binding(context, memo.opened, num_samples=0)
        with self.clock.phase("train"):
            update = self.device.encoded_update(
                context, base, memo.opened, binding, me.submit_epoch
            )
        if update.blob is None:  # training diverged: like a device, send nothing
            memo.nothing_to_send = True
            memo.say_once(self.log, "unsendable", f"sends nothing this attempt: {update.problem}")
            return
        with self.clock.phase("storage"):
            cid = self.store.put(update.blob)
            self.store.pin(cid)
        with self.clock.phase("chain"):
            self.participant.submit(self.chain, self.task_id, cid, update.num_samples)
        self.device.submitted(memo.opened, state.epoch, len(update.blob))
        self.log.info(
            "%s: submitted %s (%.1f KB, %d samples)",
            memo.label,
            cid,
            len(update.blob) / 1000,
            update.num_samples,
        )

    def _fetched_model(self, cid: str, spec: ModelSpec) -> Weights:
        return decode_model(self.store.get(cid), spec)

    def _close_expired(self, memo: AttemptMemo) -> StepOutcome:
        """Close an attempt whose vote window passed; many race, the chain takes one."""
        try:
            with self.clock.phase("chain"):
                self.chain.timeout(self.task_id)
        except (VoteWindowOpen, TaskEnded):
            self.log.debug("%s: already closed by another participant", memo.label)
            return StepOutcome.ACTED
        self.log.info("%s: sent timeout", memo.label)
        return StepOutcome.ACTED

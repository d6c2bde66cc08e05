"""``ChainConnector``: the typed API of the coordination contract.

This class is the typed layer (one method per contract call and view, typed records and
events, typed errors), and each implementation supplies the transport below:
:meth:`transact` for calls, the view methods, and :meth:`events` for logs.
:class:`flare.chain.InMemoryChain` applies calls to Python state;
:class:`flare.chain.rpc.chain.RpcChain` encodes the same :mod:`flare.chain.api.calls` values
as calldata, sends them from its account, decodes reverts with
:func:`flare.chain.api.errors.decode_revert` and logs with
:func:`flare.chain.api.events.decode_log`.

Data the contract keeps only as a hash (keys, submission lists, bitmaps) is read back from
logs by the concrete helpers at the bottom, which check it against the on-chain hash, so
those checks are written once for every implementation.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, TypeVar

from eth_utils import keccak, to_checksum_address

from flare.chain.api.calls import (
    Call,
    CancelTask,
    ClaimSeat,
    CreatePermissionedTask,
    CreateStakedTask,
    CreateTask,
    Propose,
    Register,
    RegisterAdmitted,
    RegisterStaked,
    SealSeed,
    SetAdmissionRoot,
    StartTask,
    Submit,
    Timeout,
    Vote,
    WithdrawStake,
)
from flare.chain.api.derive import remembered_keccak, remembered_submissions_hash
from flare.chain.api.errors import (
    AttemptNotFound,
    LogIntegrityError,
    NotRegistered,
    SeedNotSealed,
)
from flare.chain.api.events import (
    Event,
    ParticipantRegistered,
    Proposed,
    Receipt,
    RoundFinalized,
    RoundOpened,
    RoundRejected,
    RoundTimedOut,
    SeatClaimed,
    SeedSealed,
    UpdateSubmitted,
)
from flare.chain.api.types import (
    ContentRef,
    Participant,
    Proposal,
    Round,
    SeatClaim,
    Submission,
    Task,
    TaskParams,
)

EventT = TypeVar("EventT", bound=Event)


class SenderAccount(Protocol):
    """Anything with an address; an ``eth_account`` ``LocalAccount`` for signing connectors."""

    @property
    def address(self) -> str:
        """Checksummed address that becomes ``msg.sender``."""
        ...


class ChainConnector(ABC):
    """One view of the contract, optionally bound to a sender account.

    Transactions run as :attr:`sender`; a connector without one can only read.
    Every rejected transaction raises the :class:`flare.chain.api.errors.ChainError` subclass
    named in docs/protocol.md §7 and changes nothing.
    """

    # -- identity and clock ------------------------------------------------------------

    @property
    @abstractmethod
    def chain_id(self) -> int:
        """``block.chainid``; part of every seed and VRF input."""

    @property
    @abstractmethod
    def contract_address(self) -> str:
        """Checksummed address of the coordination contract; part of every seed and VRF input."""

    @property
    @abstractmethod
    def sender(self) -> str | None:
        """The checksummed address transactions are sent from, if any."""

    @abstractmethod
    def as_sender(self, account: SenderAccount) -> "ChainConnector":
        """A connector to the same chain and contract that sends as ``account``."""

    @abstractmethod
    def block_number(self) -> int:
        """Number of the latest mined block; the next transaction lands in the one after."""

    # -- transport ---------------------------------------------------------------------

    @abstractmethod
    def transact(self, call: Call) -> Receipt:
        """Execute ``call`` as :attr:`sender` in a new block; raise its error on revert."""

    @abstractmethod
    def events(
        self,
        kinds: Sequence[type[Event]] | None = None,
        *,
        task_id: int | None = None,
        from_block: int = 0,
        to_block: int | None = None,
    ) -> list[Event]:
        """Logs in ``[from_block, to_block]`` (inclusive, ``None`` = head), chain order."""

    # -- views -------------------------------------------------------------------------

    @abstractmethod
    def task_count(self) -> int:
        """Number of tasks created, which is also the newest task id."""

    @abstractmethod
    def task(self, task_id: int) -> Task:
        """The ``getTask`` view."""

    @abstractmethod
    def current_round(self, task_id: int) -> Round:
        """The ``getRound`` view: the open attempt, or the last one of a completed task."""

    @abstractmethod
    def participant(self, task_id: int, account: str) -> Participant:
        """The ``getParticipant`` view; ``registered=False`` for a stranger."""

    @abstractmethod
    def proposal(self, task_id: int, proposal_id: int) -> Proposal:
        """The ``getProposal`` view."""

    @abstractmethod
    def admission_root(self, task_id: int) -> bytes:
        """The ``admissionRoot`` view: a permissioned task's root, zero for an open task."""

    @abstractmethod
    def min_stake(self, task_id: int) -> int:
        """The ``minStake`` view: a staked task's least deposit in wei, zero for any other."""

    @abstractmethod
    def stake_of(self, task_id: int, account: str) -> int:
        """The ``stakeOf`` view: what ``account`` bonded and has not withdrawn, in wei."""

    @abstractmethod
    def stake_snapshot(self, task_id: int) -> int:
        """The ``stakeSnapshot`` view: the stake the open attempt's sortition divides by."""

    # -- calls -------------------------------------------------------------------------

    def create_task(self, model: ContentRef, manifest: ContentRef, params: TaskParams) -> Receipt:
        """``createTask``; the new id is ``receipt.one(TaskCreated).task_id``."""
        return self.transact(CreateTask(model, manifest, params))

    def create_permissioned_task(
        self, model: ContentRef, manifest: ContentRef, params: TaskParams, admission_root: bytes
    ) -> Receipt:
        """``createPermissionedTask``: only the accounts under ``admission_root``
        (:func:`flare.chain.api.admission.admission_root`) may register."""
        return self.transact(CreatePermissionedTask(model, manifest, params, admission_root))

    def create_staked_task(
        self, model: ContentRef, manifest: ContentRef, params: TaskParams, min_stake: int
    ) -> Receipt:
        """``createStakedTask``: each participant bonds at least ``min_stake`` wei, and seats
        are drawn in proportion to stake."""
        return self.transact(CreateStakedTask(model, manifest, params, min_stake))

    def register_staked(
        self, task_id: int, public_key: bytes, possession_proof: bytes, stake: int
    ) -> Receipt:
        """``registerStaked``: ``register`` in a staked task, bonding ``stake`` wei."""
        return self.transact(RegisterStaked(task_id, public_key, possession_proof, value=stake))

    def withdraw_stake(self, task_id: int) -> Receipt:
        """``withdrawStake``: take this sender's stake back (the task ended or its lock
        passed)."""
        return self.transact(WithdrawStake(task_id))

    def set_admission_root(self, task_id: int, admission_root: bytes) -> Receipt:
        """``setAdmissionRoot``: the creator admits another list of accounts."""
        return self.transact(SetAdmissionRoot(task_id, admission_root))

    def register_admitted(
        self,
        task_id: int,
        public_key: bytes,
        possession_proof: bytes,
        admission_proof: Sequence[bytes],
    ) -> Receipt:
        """``registerAdmitted``: ``register`` in a permissioned task, with the sender's
        Merkle proof (:func:`flare.chain.api.admission.admission_proof`)."""
        return self.transact(
            RegisterAdmitted(task_id, public_key, possession_proof, tuple(admission_proof))
        )

    def register(self, task_id: int, public_key: bytes, possession_proof: bytes) -> Receipt:
        """``register`` with a 256-byte G2 key and its proof of possession for this sender in
        this task (:func:`flare.crypto.identity.possession_message`)."""
        return self.transact(Register(task_id, public_key, possession_proof))

    def start_task(self, task_id: int) -> Receipt:
        """``startTask``: open round 1 (the task's creator only)."""
        return self.transact(StartTask(task_id))

    def cancel_task(self, task_id: int) -> Receipt:
        """``cancelTask``: end the task for good (the task's creator only)."""
        return self.transact(CancelTask(task_id))

    def seal_seed(self, task_id: int) -> Receipt:
        """``sealSeed``: fix the open attempt's seed from this block's ``prevrandao``."""
        return self.transact(SealSeed(task_id))

    def submit(self, task_id: int, update: ContentRef, sample_count: int) -> Receipt:
        """``submit`` this sender's update for the current attempt."""
        return self.transact(Submit(task_id, update, sample_count))

    def claim_seat(self, task_id: int, public_key: bytes, proof: bytes) -> Receipt:
        """``claimSeat`` with this sender's registered key and its VRF proof."""
        return self.transact(ClaimSeat(task_id, public_key, proof))

    def propose(self, task_id: int, model: ContentRef, accepted: bytes) -> Receipt:
        """``propose``; the id is ``receipt.one(Proposed).proposal_id``."""
        return self.transact(Propose(task_id, model, accepted))

    def vote(self, task_id: int, proposal_id: int, approve: bool) -> Receipt:
        """``vote``; the receipt holds ``RoundFinalized`` if this vote reached quorum."""
        return self.transact(Vote(task_id, proposal_id, approve))

    def timeout(self, task_id: int) -> Receipt:
        """``timeout``: close the expired attempt and open the next."""
        return self.transact(Timeout(task_id))

    # -- log-derived reads, checked against on-chain hashes ----------------------------

    def public_key(self, task_id: int, account: str) -> bytes:
        """The BLS key ``account`` registered, checked against its stored hash."""
        account = to_checksum_address(account)
        record = self.participant(task_id, account)
        if not record.registered:
            raise NotRegistered(task_id, account)
        logs = [
            event
            for event in self._task_events(ParticipantRegistered, task_id)
            if event.participant == account
        ]
        if len(logs) != 1 or keccak(logs[0].public_key) != record.public_key_hash:
            raise LogIntegrityError(f"registration log of {account} does not match its key hash")
        return logs[0].public_key

    def round_opened(self, task_id: int, round_number: int, attempt: int) -> RoundOpened:
        """The ``RoundOpened`` log of one attempt: its base model, snapshot and deadlines."""
        for event in self._task_events(RoundOpened, task_id):
            if (event.round, event.attempt) == (round_number, attempt):
                return event
        raise AttemptNotFound(task_id, round_number, attempt)

    def attempt_seed(self, task_id: int, round_number: int, attempt: int) -> bytes:
        """The seed of one attempt, from its ``SeedSealed`` log.

        Raises :class:`SeedNotSealed` for an attempt that has none yet (``seal_seed`` or a
        submission fixes it) or closed without one. The open attempt's seed is checked
        against ``getRound``; a closed attempt's starts its submissions hash chain, which
        :meth:`submissions` checks against the hash its closing log carries.
        """
        opened = self.round_opened(task_id, round_number, attempt)
        _, chained, _ = self._attempt_totals(opened)
        if chained == bytes(32):
            raise SeedNotSealed(task_id)
        logs = [
            event
            for event in self._task_events(SeedSealed, task_id, opened)
            if (event.round, event.attempt) == (round_number, attempt)
        ]
        current = self.current_round(task_id)
        is_open = current.epoch == opened.epoch
        if len(logs) != 1 or (is_open and logs[0].seed != current.seed):
            raise LogIntegrityError(
                f"seed logs of task {task_id} round {round_number} attempt {attempt} "
                "do not match the attempt"
            )
        return logs[0].seed

    def submissions(self, task_id: int, round_number: int, attempt: int) -> list[Submission]:
        """The attempt's submissions in index order, checked against its submissions hash."""
        opened = self.round_opened(task_id, round_number, attempt)
        logs = [
            event
            for event in self._task_events(UpdateSubmitted, task_id, opened)
            if (event.round, event.attempt) == (round_number, attempt)
        ]
        expected_count, expected_hash, _ = self._attempt_totals(opened)
        if expected_count == 0 and not logs:
            return []
        seed = self.attempt_seed(task_id, round_number, attempt)
        computed = remembered_submissions_hash(
            seed, ((e.participant, e.update, e.sample_count) for e in logs)
        )
        indices_in_order = [e.index for e in logs] == list(range(len(logs)))
        if len(logs) != expected_count or computed != expected_hash or not indices_in_order:
            raise LogIntegrityError(
                f"submission logs of task {task_id} round {round_number} attempt {attempt} "
                "do not match the on-chain submissions hash"
            )
        return [Submission(e.index, e.participant, e.update, e.sample_count) for e in logs]

    def committee(self, task_id: int, round_number: int, attempt: int) -> list[SeatClaim]:
        """The attempt's committee in claim order, checked against its on-chain size."""
        opened = self.round_opened(task_id, round_number, attempt)
        logs = [
            event
            for event in self._task_events(SeatClaimed, task_id, opened)
            if (event.round, event.attempt) == (round_number, attempt)
        ]
        _, _, expected_size = self._attempt_totals(opened)
        if len(logs) != expected_size or any(
            remembered_keccak(bytes(e.proof)) != e.output for e in logs
        ):
            raise LogIntegrityError(
                f"seat logs of task {task_id} round {round_number} attempt {attempt} "
                "do not match the on-chain committee"
            )
        return [SeatClaim(e.member, e.output, e.proof) for e in logs]

    def accepted_bitmap(self, task_id: int, proposal_id: int) -> bytes:
        """A proposal's accepted-submissions bitmap, checked against its stored hash."""
        record = self.proposal(task_id, proposal_id)
        for event in self._task_events(Proposed, task_id):
            if event.proposal_id == proposal_id:
                if remembered_keccak(bytes(event.accepted)) != record.accepted_hash:
                    break
                return event.accepted
        raise LogIntegrityError(f"no proposal log of task {task_id} matches {proposal_id}")

    def _task_events(
        self, kind: type[EventT], task_id: int, opened: RoundOpened | None = None
    ) -> list[EventT]:
        """Logs of one kind and task; within an attempt's submission window if ``opened``.

        Bounding the block range keeps log queries within what public RPC nodes serve.
        """
        if opened is None:
            logs = self.events([kind], task_id=task_id)
        else:
            logs = self.events(
                [kind],
                task_id=task_id,
                from_block=opened.block_number,
                to_block=opened.submission_deadline,
            )
        return [event for event in logs if isinstance(event, kind)]

    def _attempt_totals(self, opened: RoundOpened) -> tuple[int, bytes, int]:
        """``(submission_count, submissions_hash, committee_size)`` an attempt ended with.

        The open attempt reads them from ``getRound``; a closed one from the log that
        closed it, since the contract's current-attempt slots have moved on.
        """
        current = self.current_round(opened.task_id)
        if current.epoch == opened.epoch:
            return current.submission_count, current.submissions_hash, current.committee_size
        closings = self.events(
            [RoundFinalized, RoundTimedOut, RoundRejected],
            task_id=opened.task_id,
            from_block=opened.block_number,
        )
        for event in closings:
            if not isinstance(event, RoundFinalized | RoundTimedOut | RoundRejected):
                continue
            if (event.round, event.attempt) == (opened.round, opened.attempt):
                return event.submission_count, event.submissions_hash, event.committee_size
        raise LogIntegrityError(f"attempt of epoch {opened.epoch} has no closing log")

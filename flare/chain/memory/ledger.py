"""The contract's state machine in Python: docs/protocol.md §4, check by check.

Every handler first runs all checks of its call in the documented order, raising the
first failing one, and only then mutates state; nothing between the first mutation and
the return can raise. That is how the in-memory chain keeps the contract's guarantee that
a reverted call changes nothing. Block numbers and ``prevrandao`` come from the caller
(:class:`flare.chain.memory.chain.InMemoryChain`), so this module has no clock of its own.
The contract's balance is kept (the stakes it holds); senders' balances are not: the
embedded chain charges no gas and lets any sender bond any deposit.
"""

from dataclasses import replace

from eth_utils import keccak

from flare.chain.api import errors
from flare.chain.api.admission import is_admitted
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
from flare.chain.api.derive import (
    invalid_parameter,
    next_submissions_hash,
    quorum_threshold,
)
from flare.chain.api.events import (
    AdmissionRootSet,
    Event,
    MinStakeSet,
    SeatClaimed,
    TaskCancelled,
    TaskCreated,
    UpdateSubmitted,
)
from flare.chain.api.types import Participant, Proposal, Round, Task, TaskStatus
from flare.chain.memory.proposals import Proposals
from flare.chain.memory.stake import new_pool, register_staked, withdraw_stake
from flare.chain.memory.task_state import (
    PROOF_LENGTH,
    PUBLIC_KEY_LENGTH,
    STRANGER,
    BlockContext,
    ContractInstance,
    TaskState,
    check_codec,
    check_length,
    event,
    new_task,
)


class Ledger:
    """All tasks of one contract deployment, and the rules that change them."""

    def __init__(self, contract: ContractInstance) -> None:
        self.contract = contract
        self._tasks: list[TaskState] = []
        self._proposals = Proposals()
        self.balance = 0
        """The wei the contract holds: every stake bonded and not withdrawn."""

    # -- views -------------------------------------------------------------------------

    def task_count(self) -> int:
        """``taskCount()``."""
        return len(self._tasks)

    def task(self, task_id: int) -> Task:
        """``getTask(taskId)``."""
        return self._state(task_id).task

    def current_round(self, task_id: int) -> Round:
        """``getRound(taskId)``."""
        current = self._state(task_id).round
        if current is None:
            raise errors.TaskNotStarted(task_id)
        return current

    def admission_root(self, task_id: int) -> bytes:
        """``admissionRoot(taskId)``: zero for a task open to anyone."""
        return self._state(task_id).admission_root or bytes(32)

    def task_state(self, task_id: int) -> TaskState:
        """One task's storage (``UnknownTask`` if none), for views kept beside their rules."""
        return self._state(task_id)

    def participant(self, task_id: int, account: str) -> Participant:
        """``getParticipant(taskId, account)``."""
        return self._state(task_id).participants.get(account, STRANGER)

    def proposal(self, task_id: int, proposal_id: int) -> Proposal:
        """``getProposal(taskId, proposalId)``."""
        self._state(task_id)
        return self._proposals.get(task_id, proposal_id)

    # -- transactions ------------------------------------------------------------------

    def apply(self, call: Call, block: BlockContext) -> list[Event]:
        """Execute ``call`` in ``block``; return its events (without positions filled in).

        Raises the call's :class:`flare.chain.api.errors.ChainError`, leaving state unchanged.
        """
        handlers = {
            CreateTask: self._create_task,
            CreatePermissionedTask: self._create_task,
            CreateStakedTask: self._create_task,
            Register: self._register,
            RegisterStaked: self._register_staked,
            WithdrawStake: self._withdraw_stake,
            RegisterAdmitted: self._register_admitted,
            SetAdmissionRoot: self._set_admission_root,
            StartTask: self._start_task,
            CancelTask: self._cancel_task,
            SealSeed: self._seal_seed,
            Submit: self._submit,
            ClaimSeat: self._claim_seat,
            Propose: self._propose,
            Vote: self._vote,
            Timeout: self._timeout,
        }
        return handlers[type(call)](call, block)  # type: ignore[operator]

    def _create_task(
        self, call: CreateTask | CreatePermissionedTask | CreateStakedTask, block: BlockContext
    ) -> list[Event]:
        check_codec(call.model)
        check_codec(call.manifest)
        invalid = invalid_parameter(call.params)
        if invalid is not None:
            raise errors.InvalidTaskParameter(invalid)
        task_id = len(self._tasks) + 1
        root = call.admission_root if isinstance(call, CreatePermissionedTask) else None
        if root == bytes(32):
            raise errors.ZeroAdmissionRoot()
        pool = new_pool(task_id, call.min_stake) if isinstance(call, CreateStakedTask) else None
        task = new_task(block.sender, call.params, call.model, call.manifest)
        self._tasks.append(TaskState(self.contract, task_id, task, admission_root=root, stake=pool))
        created = event(
            TaskCreated, block, task_id, block.sender, call.model, call.manifest, call.params
        )
        if root is not None:
            return [created, event(AdmissionRootSet, block, task_id, root)]
        if pool is not None:
            return [created, event(MinStakeSet, block, task_id, pool.min_stake)]
        return [created]

    def _register(self, call: Register, block: BlockContext) -> list[Event]:
        state = self._state(call.task_id)
        state.require_open()
        if state.admission_root is not None:
            raise errors.AdmissionProofRequired(call.task_id)
        if state.stake is not None:
            raise errors.StakeRequired(call.task_id)
        return [state.enroll(call.public_key, call.possession_proof, block)]

    def _register_staked(self, call: RegisterStaked, block: BlockContext) -> list[Event]:
        events = register_staked(self._state(call.task_id), call, block)
        self.balance += call.value
        return events

    def _withdraw_stake(self, call: WithdrawStake, block: BlockContext) -> list[Event]:
        withdrawn = withdraw_stake(self._state(call.task_id), call, block)
        self.balance -= withdrawn.amount
        return [withdrawn]

    def _register_admitted(self, call: RegisterAdmitted, block: BlockContext) -> list[Event]:
        state = self._state(call.task_id)
        state.require_open()
        if state.admission_root is None:
            raise errors.OpenAdmission(call.task_id)
        if not is_admitted(call.admission_proof, state.admission_root, block.sender):
            raise errors.NotAdmitted(call.task_id, block.sender)
        return [state.enroll(call.public_key, call.possession_proof, block)]

    def _set_admission_root(self, call: SetAdmissionRoot, block: BlockContext) -> list[Event]:
        state = self._state(call.task_id)
        state.require_open()
        state.require_creator(block.sender)
        if state.admission_root is None:
            raise errors.OpenAdmission(call.task_id)
        if call.admission_root == bytes(32):
            raise errors.ZeroAdmissionRoot()
        state.admission_root = call.admission_root
        return [event(AdmissionRootSet, block, call.task_id, call.admission_root)]

    def _start_task(self, call: StartTask, block: BlockContext) -> list[Event]:
        state = self._state(call.task_id)
        state.require_open()
        state.require_creator(block.sender)
        task = state.task
        if task.status is not TaskStatus.REGISTERING:
            raise errors.TaskAlreadyStarted(call.task_id)
        eligible = state.eligible(block)
        if eligible < task.params.min_clients:
            raise errors.TooFewParticipants(call.task_id, eligible, task.params.min_clients)
        return [state.open_attempt(1, 0, state.task.params.expected_committee, block)]

    def _cancel_task(self, call: CancelTask, block: BlockContext) -> list[Event]:
        state = self._state(call.task_id)
        state.require_open()
        state.require_creator(block.sender)
        state.task = replace(state.task, status=TaskStatus.CANCELLED)
        task = state.task
        return [event(TaskCancelled, block, call.task_id, task.round, task.attempt)]

    def _seal_seed(self, call: SealSeed, block: BlockContext) -> list[Event]:
        state = self._state(call.task_id)
        current = state.require_running()
        if block.number > current.submission_deadline:
            raise errors.SubmissionWindowClosed(call.task_id, current.submission_deadline)
        if current.seed_sealed:
            raise errors.SeedAlreadySealed(call.task_id)
        state.round, sealed = state.sealed(current, block)
        return [sealed]

    def _submit(self, call: Submit, block: BlockContext) -> list[Event]:
        state = self._state(call.task_id)
        current = state.require_running()
        if block.number > current.submission_deadline:
            raise errors.SubmissionWindowClosed(call.task_id, current.submission_deadline)
        member = state.require_registered(block.sender)
        if member.submit_epoch == current.epoch:
            raise errors.AlreadySubmitted(call.task_id, block.sender)
        if call.sample_count == 0:
            raise errors.ZeroSampleCount(call.task_id)
        check_codec(call.update)
        events: list[Event] = []
        if not current.seed_sealed:
            current, sealed = state.sealed(current, block)
            events.append(sealed)
        chained = next_submissions_hash(
            current.submissions_hash, block.sender, call.update, call.sample_count
        )
        state.participants[block.sender] = replace(member, submit_epoch=current.epoch)
        state.round = replace(
            current, submission_count=current.submission_count + 1, submissions_hash=chained
        )
        return [
            *events,
            event(
                UpdateSubmitted,
                block,
                call.task_id,
                current.round,
                block.sender,
                current.attempt,
                current.submission_count,
                call.update,
                call.sample_count,
            ),
        ]

    def _claim_seat(self, call: ClaimSeat, block: BlockContext) -> list[Event]:
        state = self._state(call.task_id)
        current = state.require_running()
        if block.number > current.submission_deadline:
            raise errors.SubmissionWindowClosed(call.task_id, current.submission_deadline)
        if not current.seed_sealed:
            raise errors.SeedNotSealed(call.task_id)
        member = state.require_registered(block.sender)
        if member.index >= current.registered_snapshot:
            raise errors.RegisteredAfterSnapshot(call.task_id, block.sender)
        if member.seat_epoch == current.epoch:
            raise errors.SeatAlreadyClaimed(call.task_id, block.sender)
        check_length(call.public_key, PUBLIC_KEY_LENGTH)
        if keccak(call.public_key) != member.public_key_hash:
            raise errors.PublicKeyMismatch(call.task_id, block.sender)
        check_length(call.proof, PROOF_LENGTH)
        output = state.verify_draw(current, call.public_key, call.proof, block.sender)
        params = state.task.params
        size = current.committee_size + 1
        state.participants[block.sender] = replace(member, seat_epoch=current.epoch)
        state.round = replace(
            current,
            committee_size=size,
            quorum_threshold=quorum_threshold(params.quorum_bps, size),
        )
        return [
            event(
                SeatClaimed,
                block,
                call.task_id,
                current.round,
                block.sender,
                current.attempt,
                output,
                call.proof,
                size,
            )
        ]

    def _propose(self, call: Propose, block: BlockContext) -> list[Event]:
        return self._proposals.propose(self._state(call.task_id), call, block)

    def _vote(self, call: Vote, block: BlockContext) -> list[Event]:
        return self._proposals.vote(self._state(call.task_id), call, block)

    def _timeout(self, call: Timeout, block: BlockContext) -> list[Event]:
        state = self._state(call.task_id)
        current = state.require_running()
        if block.number <= current.vote_deadline:
            raise errors.VoteWindowOpen(call.task_id, current.vote_deadline)
        return state.close_attempt(current, block, timed_out=True)

    def _state(self, task_id: int) -> TaskState:
        if not 1 <= task_id <= len(self._tasks):
            raise errors.UnknownTask(task_id)
        return self._tasks[task_id - 1]

"""One task's contract storage, with the checks and effects several calls share.

:class:`TaskState` is what the Solidity contract keeps per task: the ``Task`` record, the
current attempt (``Round``), the participant records, the set of registered key hashes,
when the latest registration (or stake change) happened, and a staked task's deposits. Its
``require_*`` methods are the shared checks of docs/protocol.md §4 (each raises the
documented error and changes nothing); ``sealed`` checks and computes a seal without
applying it; ``open_attempt``, ``close_attempt`` and ``finalize``
are the shared effects, called only after every check of a call has passed.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from eth_utils import keccak

from flare.chain.api import errors
from flare.chain.api.abi import hex_bytes
from flare.chain.api.derive import EMPTY_HISTORY, next_history_hash, round_seed
from flare.chain.api.events import (
    Event,
    ParticipantRegistered,
    RoundFinalized,
    RoundOpened,
    RoundRejected,
    RoundTimedOut,
    SeedSealed,
    TaskCompleted,
    TaskFailed,
)
from flare.chain.api.types import (
    SUPPORTED_CODECS,
    ContentRef,
    Participant,
    Proposal,
    Round,
    Task,
    TaskParams,
)
from flare.chain.api.types import TaskStatus as Status
from flare.crypto import vrf
from flare.crypto.errors import CryptoError
from flare.crypto.identity import possession_message, verify_task_possession

if TYPE_CHECKING:
    from flare.chain.memory.stake import StakePool

PUBLIC_KEY_LENGTH = 256
PROOF_LENGTH = 128
UINT32_MAX = 2**32 - 1
"""Where an escalated expected committee saturates, as the contract's uint32 does."""

STRANGER = Participant(
    registered=False,
    index=0,
    public_key_hash=bytes(32),
    submit_epoch=0,
    seat_epoch=0,
    propose_epoch=0,
    vote_epoch=0,
)
"""The all-zero record the contract returns for an address that never registered."""


@dataclass(frozen=True)
class ContractInstance:
    """Which contract on which chain: part of every seed and VRF input."""

    chain_id: int
    address: str


@dataclass(frozen=True)
class BlockContext:
    """What a transaction sees of its block and caller; ``randao`` is the chain's
    ``prevrandao`` of a block number, a keccak that only a call sealing a seed needs."""

    number: int
    randao: Callable[[int], int]
    sender: str

    @property
    def prevrandao(self) -> int:
        """``block.prevrandao`` of this block."""
        return self.randao(self.number)


def event(kind: type[Event], block: BlockContext, *values: object) -> Event:
    """An event of this block; ``log_index`` is renumbered by the chain when it is mined."""
    return kind(block.number, 0, *values)  # type: ignore[arg-type]


def new_task(creator: str, params: TaskParams, model: ContentRef, manifest: ContentRef) -> Task:
    """The ``Task`` record of a task just created: registering, nothing done yet."""
    return Task(
        creator=creator,
        params=params,
        model=model,
        manifest=manifest,
        status=Status.REGISTERING,
        registered_count=0,
        round=0,
        attempt=0,
        epoch=0,
        proposal_count=0,
        history_hash=EMPTY_HISTORY,
    )


def check_codec(content: ContentRef) -> None:
    """``UnsupportedCodec`` unless the CID is raw or dag-pb."""
    if content.codec not in SUPPORTED_CODECS:
        raise errors.UnsupportedCodec(content.codec)


def check_length(data: bytes, expected: int) -> None:
    """``InvalidLength`` unless ``data`` has exactly ``expected`` bytes."""
    if len(data) != expected:
        raise errors.InvalidLength(expected, len(data))


@dataclass
class TaskState:
    """Mutable storage of one task."""

    contract: ContractInstance
    task_id: int
    task: Task
    round: Round | None = None
    participants: dict[str, Participant] = field(default_factory=dict)
    key_hashes: set[bytes] = field(default_factory=set)
    last_change_block: int = 0
    """The block of the latest registration or stake change."""
    registered_before_last_block: int = 0
    admission_root: bytes | None = None
    """The root of the admitted accounts' tree; ``None`` for a task open to anyone."""
    stake: "StakePool | None" = None
    """A staked task's deposits; ``None`` for a task that is not staked."""

    # -- shared checks ----------------------------------------------------------------

    def require_open(self) -> None:
        """``TaskEnded`` once the task completed, failed or was cancelled."""
        if self.task.status.ended:
            raise errors.TaskEnded(self.task_id, int(self.task.status))

    def require_creator(self, sender: str) -> None:
        """``NotTaskCreator`` unless ``sender`` created the task."""
        if sender != self.task.creator:
            raise errors.NotTaskCreator(self.task_id, sender)

    def eligible(self, block: BlockContext) -> int:
        """Participants registered in blocks before ``block``: the snapshot of an attempt
        opened in it (a key registered in the opening block itself does not count)."""
        if self.last_change_block == block.number:
            return self.registered_before_last_block
        return self.task.registered_count

    def eligible_stake(self, pool: "StakePool", block: BlockContext) -> int:
        """The stake bonded in blocks before ``block``: the divisor of an attempt opened in
        it. A stake withdrawn in ``block`` still counts, so no change in the opening block
        moves anyone's odds."""
        return pool.before_last_block if self.last_change_block == block.number else pool.total

    def note_change(self, block: BlockContext) -> None:
        """Record that registrations or stakes are about to change in ``block``, keeping what
        they were before it for a snapshot taken in it."""
        if self.last_change_block == block.number:
            return
        self.last_change_block = block.number
        self.registered_before_last_block = self.task.registered_count
        if self.stake is not None:
            self.stake.before_last_block = self.stake.total

    def require_running(self) -> Round:
        """The task checks of protocol §4; returns the current attempt."""
        self.require_open()
        if self.round is None:
            raise errors.TaskNotStarted(self.task_id)
        return self.round

    def require_registered(self, sender: str) -> Participant:
        """``NotRegistered`` unless ``sender`` is a participant; returns its record."""
        member = self.participants.get(sender)
        if member is None:
            raise errors.NotRegistered(self.task_id, sender)
        return member

    def require_voting_member(self, block: BlockContext) -> tuple[Round, Participant]:
        """Task checks, vote-window checks and seat check shared by propose and vote."""
        current = self.require_running()
        if block.number <= current.submission_deadline:
            raise errors.SubmissionWindowOpen(self.task_id, current.submission_deadline)
        if block.number > current.vote_deadline:
            raise errors.VoteWindowClosed(self.task_id, current.vote_deadline)
        member = self.participants.get(block.sender, STRANGER)
        if member.seat_epoch != current.epoch:
            raise errors.NotCommitteeMember(self.task_id, block.sender)
        return current, member

    def require_committee(self, current: Round) -> None:
        """``CommitteeTooSmall`` while fewer than ``min_committee`` seats are held."""
        minimum = self.task.params.min_committee
        if current.committee_size < minimum:
            raise errors.CommitteeTooSmall(self.task_id, current.committee_size, minimum)

    def sealed(self, current: Round, block: BlockContext) -> tuple[Round, Event]:
        """The attempt with its seed sealed in ``block``, and the ``SeedSealed`` event.

        Raises ``SeedTooEarly`` in the opening block; applies nothing (protocol §4.10).
        """
        if block.number <= current.opened_at:
            raise errors.SeedTooEarly(self.task_id, current.opened_at)
        seed = round_seed(
            self.contract.chain_id,
            self.contract.address,
            self.task_id,
            current.round,
            current.attempt,
            self.task.model.digest,
            block.prevrandao,
        )
        sealed = replace(current, seed=seed, submissions_hash=seed)
        return sealed, event(SeedSealed, block, self.task_id, current.round, current.attempt, seed)

    def verify_draw(self, current: Round, public_key: bytes, proof: bytes, sender: str) -> bytes:
        """Check ``sender``'s VRF proof for the attempt (``InvalidVrfProof``) and run the
        sortition on its output (``NotSelected``); returns the output."""
        message = vrf.vrf_input(
            self.contract.chain_id,
            hex_bytes(self.contract.address),
            self.task_id,
            current.round,
            current.attempt,
            current.seed,
        )
        try:
            output = vrf.verify(public_key, message, proof)
        except CryptoError as exc:
            raise errors.InvalidVrfProof(self.task_id, sender) from exc
        expected = current.expected_committee
        if self.stake is None:
            granted = vrf.seat_granted(output, expected, current.registered_snapshot)
        else:
            weight = expected * self.stake.stake_of(sender)
            granted = vrf.seat_granted(output, weight, self.stake.snapshot)
        if not granted:
            raise errors.NotSelected(self.task_id, output)
        return output

    # -- shared effects ---------------------------------------------------------------

    def enroll(self, public_key: bytes, possession_proof: bytes, block: BlockContext) -> Event:
        """The checks of ``register`` from ``AlreadyRegistered`` on, then the registration
        (protocol §4.2), for ``register`` and ``registerAdmitted`` alike."""
        sender = block.sender
        if sender in self.participants:
            raise errors.AlreadyRegistered(self.task_id, sender)
        check_length(public_key, PUBLIC_KEY_LENGTH)
        check_length(possession_proof, PROOF_LENGTH)
        key_hash = keccak(public_key)
        if key_hash in self.key_hashes:
            raise errors.PublicKeyTaken(self.task_id, key_hash)
        message = possession_message(
            self.contract.chain_id,
            hex_bytes(self.contract.address),
            self.task_id,
            hex_bytes(sender),
        )
        try:
            valid = verify_task_possession(public_key, message, possession_proof)
        except CryptoError:
            valid = False
        if not valid:
            raise errors.InvalidPossessionProof(self.task_id, sender)
        index = self.task.registered_count
        self.note_change(block)
        self.participants[sender] = replace(
            STRANGER, registered=True, index=index, public_key_hash=key_hash
        )
        self.key_hashes.add(key_hash)
        self.task = replace(self.task, registered_count=index + 1)
        return event(ParticipantRegistered, block, self.task_id, sender, index, public_key)

    def open_attempt(
        self, round_number: int, attempt: int, expected_committee: int, block: BlockContext
    ) -> Event:
        """Open ``(round_number, attempt)`` from the task's current model (protocol §4.9),
        drawn with ``expected_committee``; its seed stays zero until sealed."""
        task = self.task
        submission_deadline = block.number + task.params.submission_window
        opened = Round(
            round=round_number,
            attempt=attempt,
            epoch=task.epoch + 1,
            seed=bytes(32),
            opened_at=block.number,
            submission_deadline=submission_deadline,
            vote_deadline=submission_deadline + task.params.vote_window,
            registered_snapshot=self.eligible(block),
            expected_committee=expected_committee,
            submission_count=0,
            submissions_hash=bytes(32),
            committee_size=0,
            quorum_threshold=0,
            rejections=0,
        )
        self.round = opened
        if self.stake is not None:
            self.stake.snapshot = self.eligible_stake(self.stake, block)
        self.task = replace(
            task, status=Status.RUNNING, round=round_number, attempt=attempt, epoch=opened.epoch
        )
        return event(
            RoundOpened,
            block,
            self.task_id,
            round_number,
            attempt,
            opened.epoch,
            task.model,
            opened.registered_snapshot,
            opened.expected_committee,
            opened.submission_deadline,
            opened.vote_deadline,
        )

    def close_attempt(self, current: Round, block: BlockContext, *, timed_out: bool) -> list[Event]:
        """Close the attempt without a model (its deadline passed, or its members rejected),
        then open the next attempt or, after the last allowed one, fail the task (§4.12).

        An attempt that seated fewer than ``min_committee`` hands the next one twice its
        expected committee, so that idle keys or stake cannot dilute every attempt below it.
        """
        closed = event(
            RoundTimedOut if timed_out else RoundRejected,
            block,
            self.task_id,
            current.round,
            current.attempt,
            current.submission_count,
            current.submissions_hash,
            current.committee_size,
        )
        attempts = current.attempt + 1
        if attempts < self.task.params.max_attempts:
            expected = current.expected_committee
            if current.committee_size < self.task.params.min_committee:
                expected = min(2 * expected, UINT32_MAX)
            return [closed, self.open_attempt(current.round, attempts, expected, block)]
        self.round = current
        self.task = replace(self.task, status=Status.FAILED)
        return [closed, event(TaskFailed, block, self.task_id, current.round, attempts)]

    def finalize(
        self, current: Round, proposal_id: int, proposal: Proposal, block: BlockContext
    ) -> list[Event]:
        """Advance the global model to ``proposal``; open the next round or complete."""
        history = next_history_hash(
            self.task.history_hash,
            current.round,
            current.attempt,
            current.seed,
            current.submissions_hash,
            proposal.accepted_hash,
            proposal.model,
        )
        self.task = replace(self.task, model=proposal.model, history_hash=history)
        finalized = event(
            RoundFinalized,
            block,
            self.task_id,
            current.round,
            current.attempt,
            proposal_id,
            proposal.model,
            current.submission_count,
            current.submissions_hash,
            proposal.accepted_hash,
            current.committee_size,
            history,
        )
        if current.round < self.task.params.max_rounds:
            next_round = current.round + 1
            return [
                finalized,
                self.open_attempt(next_round, 0, self.task.params.expected_committee, block),
            ]
        self.task = replace(self.task, status=Status.COMPLETED)
        completed = event(
            TaskCompleted, block, self.task_id, current.round, proposal.model, history
        )
        return [finalized, completed]

"""Custom errors of the coordination contract as typed Python exceptions.

One class per Solidity custom error of docs/protocol.md §7, with the same name and the same
arguments in the same order. The in-memory chain raises them directly; the RPC connector
turns revert data into them with :func:`decode_revert`, so callers handle one set of
exceptions whichever chain they talk to.
"""

from typing import Any, ClassVar

from eth_abi import decode, encode

from flare.chain.api.abi import selector, signature, value_from_abi
from flare.errors import FlareError


class ChainError(FlareError):
    """Base of every chain-layer error."""


class ContractError(ChainError):
    """A revert with one of the contract's custom errors; each subclass mirrors one.

    ``ARGS`` lists ``(python_name, solidity_type)`` pairs. Arguments are positional in
    Solidity order, also readable by name (``err.task_id``); two errors are equal when they
    have the same class and arguments, which keeps conformance assertions exact.
    """

    ARGS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, *args: Any) -> None:
        if len(args) != len(self.ARGS):
            raise TypeError(f"{type(self).__name__} takes {len(self.ARGS)} arguments")
        super().__init__(*args)
        for (name, _), value in zip(self.ARGS, args, strict=True):
            setattr(self, name, value)

    @classmethod
    def signature(cls) -> str:
        """The Solidity error signature, e.g. ``UnknownTask(uint256)``."""
        return signature(cls.__name__, [solidity_type for _, solidity_type in cls.ARGS])

    @classmethod
    def selector(cls) -> bytes:
        """The 4-byte selector that starts this error's revert data."""
        return selector(cls.signature())

    def encode(self) -> bytes:
        """Revert data exactly as the contract returns it: selector + ABI-encoded args."""
        return self.selector() + encode([t for _, t in self.ARGS], list(self.args))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ContractError)
            and type(self) is type(other)
            and self.args == other.args
        )

    def __hash__(self) -> int:
        return hash((type(self), self.args))

    def __str__(self) -> str:
        rendered = ", ".join(_render(value) for value in self.args)
        return f"{type(self).__name__}({rendered})"


def _render(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


class UnrecognizedRevert(ChainError):
    """A revert whose data matches no protocol error (e.g. out of gas, a wrong contract)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(f"unrecognized revert data 0x{data.hex()}")
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnrecognizedRevert) and self.data == other.data

    def __hash__(self) -> int:
        return hash(self.data)


class LogIntegrityError(ChainError):
    """Logs served by the node do not hash to the commitment the contract stores."""


class AttemptNotFound(ChainError):
    """No ``RoundOpened`` log exists for the requested round attempt."""

    def __init__(self, task_id: int, round_number: int, attempt: int) -> None:
        super().__init__(f"task {task_id} has no round {round_number} attempt {attempt}")


_TASK = ("task_id", "uint256")


class UnknownTask(ContractError):
    """No task with this id."""

    ARGS = (_TASK,)


class InvalidTaskParameter(ContractError):
    """Task parameter number ``parameter`` (0 = min_clients … 7 = max_attempts) is invalid."""

    ARGS = (("parameter", "uint8"),)


class UnsupportedCodec(ContractError):
    """A CID codec other than raw (0x55) or dag-pb (0x70)."""

    ARGS = (("codec", "uint64"),)


class InvalidLength(ContractError):
    """A public key is not 256 bytes or a proof not 128 bytes."""

    ARGS = (("expected", "uint256"), ("actual", "uint256"))


class TaskEnded(ContractError):
    """The task completed, failed or was cancelled (``status``, a ``TaskStatus`` value)."""

    ARGS = (_TASK, ("status", "uint8"))


class NotTaskCreator(ContractError):
    """Only the task's creator may start or cancel it."""

    ARGS = (_TASK, ("account", "address"))


class AlreadyRegistered(ContractError):
    """The sender is already a participant of this task."""

    ARGS = (_TASK, ("participant", "address"))


class PublicKeyTaken(ContractError):
    """Another address registered this BLS public key in this task."""

    ARGS = (_TASK, ("public_key_hash", "bytes32"))


class InvalidPossessionProof(ContractError):
    """The proof of possession fails, or the key or proof is malformed or infinity."""

    ARGS = (_TASK, ("participant", "address"))


class TaskAlreadyStarted(ContractError):
    """Round 1 is already open."""

    ARGS = (_TASK,)


class TooFewParticipants(ContractError):
    """Fewer than ``min_clients`` participants are registered."""

    ARGS = (_TASK, ("registered", "uint32"), ("required", "uint32"))


class TaskNotStarted(ContractError):
    """No round is open yet."""

    ARGS = (_TASK,)


class SubmissionWindowClosed(ContractError):
    """The block is past the submission deadline."""

    ARGS = (_TASK, ("deadline", "uint64"))


class SeedNotSealed(ContractError):
    """No seed yet for this attempt: ``seal_seed`` (or a submission) fixes it first."""

    ARGS = (_TASK,)


class SeedAlreadySealed(ContractError):
    """The attempt's seed is already fixed."""

    ARGS = (_TASK,)


class SeedTooEarly(ContractError):
    """A seed is sealed only in a block after the one that opened the attempt."""

    ARGS = (_TASK, ("opened_at", "uint64"))


class NotRegistered(ContractError):
    """The sender is not a participant of this task."""

    ARGS = (_TASK, ("account", "address"))


class AlreadySubmitted(ContractError):
    """The sender has already submitted in this round attempt."""

    ARGS = (_TASK, ("participant", "address"))


class ZeroSampleCount(ContractError):
    """An update must be trained on at least one sample."""

    ARGS = (_TASK,)


class RegisteredAfterSnapshot(ContractError):
    """The sender registered after this attempt opened, so it may not draw a seat in it."""

    ARGS = (_TASK, ("participant", "address"))


class SeatAlreadyClaimed(ContractError):
    """The sender already holds a seat in this round attempt."""

    ARGS = (_TASK, ("member", "address"))


class PublicKeyMismatch(ContractError):
    """The public key in the call is not the one the sender registered."""

    ARGS = (_TASK, ("participant", "address"))


class InvalidVrfProof(ContractError):
    """The VRF proof is malformed or does not verify for this attempt and key."""

    ARGS = (_TASK, ("participant", "address"))


class NotSelected(ContractError):
    """The VRF proof is valid but its output lost the sortition."""

    ARGS = (_TASK, ("output", "bytes32"))


class SubmissionWindowOpen(ContractError):
    """Proposing and voting start only after the submission deadline."""

    ARGS = (_TASK, ("deadline", "uint64"))


class VoteWindowClosed(ContractError):
    """The block is past the vote deadline."""

    ARGS = (_TASK, ("deadline", "uint64"))


class NotCommitteeMember(ContractError):
    """The sender holds no seat in this round attempt."""

    ARGS = (_TASK, ("account", "address"))


class AlreadyProposed(ContractError):
    """The sender has already proposed in this round attempt."""

    ARGS = (_TASK, ("member", "address"))


class CommitteeTooSmall(ContractError):
    """Fewer than ``min_committee`` seats were claimed; the attempt can only time out."""

    ARGS = (_TASK, ("size", "uint32"), ("required", "uint32"))


class TooFewSubmissions(ContractError):
    """Fewer than ``min_clients`` updates were submitted in this attempt."""

    ARGS = (_TASK, ("count", "uint32"), ("required", "uint32"))


class InvalidAcceptedBitmap(ContractError):
    """The bitmap has the wrong length or a bit past the last submission."""

    ARGS = (_TASK, ("submission_count", "uint32"))


class UnknownProposal(ContractError):
    """No proposal with this id in the task."""

    ARGS = (_TASK, ("proposal_id", "uint32"))


class StaleProposal(ContractError):
    """The proposal belongs to an earlier round attempt."""

    ARGS = (_TASK, ("proposal_id", "uint32"))


class AlreadyVoted(ContractError):
    """The sender has already voted in this round attempt."""

    ARGS = (_TASK, ("member", "address"))


class VoteWindowOpen(ContractError):
    """A round attempt may be timed out only after its vote deadline."""

    ARGS = (_TASK, ("deadline", "uint64"))


class ZeroAdmissionRoot(ContractError):
    """A permissioned task's admission root may not be zero (zero marks an open task)."""


class AdmissionProofRequired(ContractError):
    """The task is permissioned: register with ``registerAdmitted`` and a Merkle proof."""

    ARGS = (_TASK,)


class OpenAdmission(ContractError):
    """The task is open to anyone: it has no admission root to prove against or set."""

    ARGS = (_TASK,)


class NotAdmitted(ContractError):
    """The Merkle proof does not lead from the sender to the task's admission root."""

    ARGS = (_TASK, ("account", "address"))


class ZeroMinStake(ContractError):
    """A staked task's minimum stake may not be zero (zero marks an unstaked task)."""


class StakeRequired(ContractError):
    """The task is staked: register with ``registerStaked`` and a deposit."""

    ARGS = (_TASK,)


class NotStaked(ContractError):
    """The task is not staked: it takes no deposit and holds none."""

    ARGS = (_TASK,)


class StakeTooLow(ContractError):
    """The deposit is below the task's minimum stake."""

    ARGS = (_TASK, ("amount", "uint256"), ("min_stake", "uint256"))


class StakeOverflow(ContractError):
    """A deposit of 2^128 wei or more (no chain holds that much)."""

    ARGS = (_TASK, ("amount", "uint256"))


class NothingToWithdraw(ContractError):
    """The sender holds no stake in the task (never bonded, or already withdrew)."""

    ARGS = (_TASK, ("account", "address"))


class StakeLocked(ContractError):
    """The task is still open and its stake lock lasts until block ``unlock_block``."""

    ARGS = (_TASK, ("unlock_block", "uint64"))


class WithdrawalFailed(ContractError):
    """Sending the stake back to the sender failed (its fallback reverted)."""

    ARGS = (_TASK, ("account", "address"))


PROTOCOL_ERRORS: tuple[type[ContractError], ...] = tuple(ContractError.__subclasses__())
"""Every class that mirrors a Solidity custom error, in declaration order."""

ERRORS_BY_SELECTOR: dict[bytes, type[ContractError]] = {
    cls.selector(): cls for cls in PROTOCOL_ERRORS
}
"""Revert selector → exception class, for decoding revert data."""


def decode_revert(data: bytes) -> ChainError:
    """The typed exception for a contract's revert data (``UnrecognizedRevert`` if none)."""
    error_class = ERRORS_BY_SELECTOR.get(bytes(data[:4]))
    if error_class is None:
        return UnrecognizedRevert(bytes(data))
    types = [t for _, t in error_class.ARGS]
    try:
        values = decode(types, bytes(data[4:]), strict=True)
    except Exception:  # eth_abi raises several unrelated types for malformed data
        return UnrecognizedRevert(bytes(data))
    return error_class(*(value_from_abi(t, v) for t, v in zip(types, values, strict=True)))

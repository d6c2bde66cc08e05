"""State-changing calls of the coordination contract (docs/protocol.md §4) as typed values.

A connector turns each public method into one of these and hands it to its transport:
the in-memory chain applies it to its state and journals its calldata; the RPC connector
sends the same calldata in a signed transaction. Keeping calls as data is what lets both
implementations share the typed API in :class:`flare.chain.ChainConnector`.
"""

from dataclasses import dataclass, field
from functools import cache
from typing import ClassVar

from eth_abi import decode

from flare.chain.api.abi import (
    AbiTuple,
    Bool,
    Bytes,
    Bytes32,
    Bytes32Array,
    Uint32,
    Uint64,
    Uint256,
    field_types,
    from_abi,
    selector,
    signature,
)
from flare.chain.api.encoding import encode_fields
from flare.chain.api.types import ContentRef, TaskParams
from flare.errors import ConfigError


@dataclass(frozen=True)
class Call:
    """Base of the call values; ``FUNCTION`` is the Solidity function name.

    ``value`` is the wei the transaction carries (``msg.value``), not an ABI argument; only a
    ``PAYABLE`` call may carry any.
    """

    FUNCTION: ClassVar[str]
    PAYABLE: ClassVar[bool] = False
    value: int = field(default=0, kw_only=True)

    @classmethod
    def signature(cls) -> str:
        """Canonical function signature, e.g. ``startTask(uint256)``."""
        return signature(cls.FUNCTION, field_types(cls))

    @classmethod
    def selector(cls) -> bytes:
        """The 4-byte function selector that starts this call's calldata."""
        return _selector_of(cls)


@cache
def _selector_of(kind: type[Call]) -> bytes:
    return selector(kind.signature())


@dataclass(frozen=True)
class CreateTask(Call):
    """Create a task; anyone may."""

    FUNCTION = "createTask"
    model: AbiTuple[ContentRef]
    manifest: AbiTuple[ContentRef]
    params: AbiTuple[TaskParams]


@dataclass(frozen=True)
class Register(Call):
    """Join a task with a BLS key and a proof of possession bound to the sender and task."""

    FUNCTION = "register"
    task_id: Uint256
    public_key: Bytes
    possession_proof: Bytes


@dataclass(frozen=True)
class CreatePermissionedTask(Call):
    """Create a task that only the accounts under ``admission_root`` may join; anyone may."""

    FUNCTION = "createPermissionedTask"
    model: AbiTuple[ContentRef]
    manifest: AbiTuple[ContentRef]
    params: AbiTuple[TaskParams]
    admission_root: Bytes32


@dataclass(frozen=True)
class SetAdmissionRoot(Call):
    """Replace a permissioned task's admission root; the creator only."""

    FUNCTION = "setAdmissionRoot"
    task_id: Uint256
    admission_root: Bytes32


@dataclass(frozen=True)
class RegisterAdmitted(Call):
    """``Register`` in a permissioned task, with the Merkle proof of the sender's admission."""

    FUNCTION = "registerAdmitted"
    task_id: Uint256
    public_key: Bytes
    possession_proof: Bytes
    admission_proof: Bytes32Array


@dataclass(frozen=True)
class CreateStakedTask(Call):
    """Create a task whose participants bond at least ``min_stake`` wei each and whose
    seats are drawn in proportion to stake; anyone may."""

    FUNCTION = "createStakedTask"
    model: AbiTuple[ContentRef]
    manifest: AbiTuple[ContentRef]
    params: AbiTuple[TaskParams]
    min_stake: Uint256


@dataclass(frozen=True)
class RegisterStaked(Call):
    """``Register`` in a staked task, bonding the call's ``value`` as the sender's stake."""

    FUNCTION = "registerStaked"
    PAYABLE = True
    task_id: Uint256
    public_key: Bytes
    possession_proof: Bytes


@dataclass(frozen=True)
class WithdrawStake(Call):
    """Take the sender's stake back once the task ended or its lock passed."""

    FUNCTION = "withdrawStake"
    task_id: Uint256


@dataclass(frozen=True)
class StartTask(Call):
    """Open round 1 once enough participants registered; the creator only."""

    FUNCTION = "startTask"
    task_id: Uint256


@dataclass(frozen=True)
class CancelTask(Call):
    """End the task for good; the creator only."""

    FUNCTION = "cancelTask"
    task_id: Uint256


@dataclass(frozen=True)
class SealSeed(Call):
    """Fix the current attempt's seed from this block's ``prevrandao``; anyone."""

    FUNCTION = "sealSeed"
    task_id: Uint256


@dataclass(frozen=True)
class Submit(Call):
    """Submit this attempt's update of the sender."""

    FUNCTION = "submit"
    task_id: Uint256
    update: AbiTuple[ContentRef]
    sample_count: Uint64


@dataclass(frozen=True)
class ClaimSeat(Call):
    """Claim a committee seat with a VRF proof; the key is authenticated by its hash."""

    FUNCTION = "claimSeat"
    task_id: Uint256
    public_key: Bytes
    proof: Bytes


@dataclass(frozen=True)
class Propose(Call):
    """Propose the attempt's aggregate and the submissions it accepted."""

    FUNCTION = "propose"
    task_id: Uint256
    model: AbiTuple[ContentRef]
    accepted: Bytes


@dataclass(frozen=True)
class Vote(Call):
    """Approve or reject a proposal; reaching quorum finalizes the round."""

    FUNCTION = "vote"
    task_id: Uint256
    proposal_id: Uint32
    approve: Bool


@dataclass(frozen=True)
class Timeout(Call):
    """Close an expired attempt and open the next one."""

    FUNCTION = "timeout"
    task_id: Uint256


CALL_TYPES: tuple[type[Call], ...] = (
    CreateTask,
    Register,
    StartTask,
    Submit,
    ClaimSeat,
    Propose,
    Vote,
    Timeout,
    SealSeed,
    CancelTask,
    CreatePermissionedTask,
    SetAdmissionRoot,
    RegisterAdmitted,
    CreateStakedTask,
    RegisterStaked,
    WithdrawStake,
)
CALLS_BY_SELECTOR: dict[bytes, type[Call]] = {kind.selector(): kind for kind in CALL_TYPES}


def encode_call(call: Call) -> bytes:
    """The transaction calldata of ``call``: selector + ABI-encoded arguments;
    :class:`ConfigError` for an argument the ABI would not carry unchanged."""
    return _selector_of(type(call)) + encode_fields(call)


def decode_call(calldata: bytes, value: int = 0) -> Call:
    """Inverse of :func:`encode_call` for a transaction carrying ``value`` wei; ``KeyError``
    for a selector of no Flare call."""
    kind = CALLS_BY_SELECTOR[bytes(calldata[:4])]
    return from_abi(kind, decode(field_types(kind), bytes(calldata[4:]), strict=True), value=value)


def checked_calldata(call: Call) -> bytes:
    """Calldata of ``call``, refusing any argument the ABI would not carry unchanged.

    A short ``bytes32`` would be sent right-padded and a node would execute the padded
    value; a value out of its integer range cannot be sent at all. Either is a caller's
    bug, so it is a :class:`ConfigError` before anything is sent, whichever connector is
    used; so is a value on a call that is not payable, or a negative one. The encoder
    checks each argument as it writes it (:mod:`flare.chain.api.encoding`), so what it
    returns decodes to ``call`` again.
    """
    if call.value < 0 or (call.value and not call.PAYABLE):
        raise ConfigError(f"{call!r} cannot carry a value of {call.value} wei")
    try:
        return encode_call(call)
    except ConfigError as exc:
        raise ConfigError(f"{call!r} cannot be ABI-encoded: {exc}") from exc

"""Events of the coordination contract (docs/protocol.md §6) and their log encoding.

Each event is a frozen dataclass: ``block_number`` and ``log_index`` say where the log sits
on chain, every other field is an ABI value in Solidity parameter order. ``encode_log`` and
``decode_log`` convert to and from Ethereum's ``(topics, data)`` form, which is what the
RPC connector receives and what the in-memory chain journals.
"""

from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from eth_abi import decode

from flare.chain.api.abi import (
    AbiTuple,
    Address,
    Bool,
    Bytes,
    Bytes32,
    Indexed,
    Uint32,
    Uint64,
    Uint256,
    abi_fields,
    field_types,
    from_abi,
    signature,
    topic,
)
from flare.chain.api.encoding import encode_fields, encode_word
from flare.chain.api.types import ContentRef, TaskParams


@dataclass(frozen=True)
class Event:
    """Base of every contract event; the position fields are not part of the ABI."""

    block_number: int
    log_index: int

    @classmethod
    def signature(cls) -> str:
        """``Name(types)``; its keccak256 is topic 0 of the event's logs."""
        return signature(cls.__name__, field_types(cls))

    @classmethod
    def topic(cls) -> bytes:
        """Topic 0 of this event's logs."""
        return _topic_of(cls)


@cache
def _topic_of(kind: type[Event]) -> bytes:
    return topic(kind.signature())


EventT = TypeVar("EventT", bound=Event)


@dataclass(frozen=True)
class TaskCreated(Event):
    """A task exists, with its initial global model, manifest and parameters."""

    task_id: Indexed[Uint256]
    creator: Indexed[Address]
    model: AbiTuple[ContentRef]
    manifest: AbiTuple[ContentRef]
    params: AbiTuple[TaskParams]


@dataclass(frozen=True)
class ParticipantRegistered(Event):
    """A participant registered; the full BLS key lives only here (storage has its hash)."""

    task_id: Indexed[Uint256]
    participant: Indexed[Address]
    index: Uint32
    public_key: Bytes


@dataclass(frozen=True)
class RoundOpened(Event):
    """A round attempt opened: its base model, snapshot, expected committee size ``k`` and
    deadlines (the seed comes later)."""

    task_id: Indexed[Uint256]
    round: Indexed[Uint32]
    attempt: Uint32
    epoch: Uint32
    base_model: AbiTuple[ContentRef]
    registered_snapshot: Uint32
    expected_committee: Uint32
    submission_deadline: Uint64
    vote_deadline: Uint64


@dataclass(frozen=True)
class SeedSealed(Event):
    """The attempt's seed, fixed from the ``prevrandao`` of this log's block."""

    task_id: Indexed[Uint256]
    round: Indexed[Uint32]
    attempt: Uint32
    seed: Bytes32


@dataclass(frozen=True)
class UpdateSubmitted(Event):
    """A participant submitted its update for the current attempt."""

    task_id: Indexed[Uint256]
    round: Indexed[Uint32]
    participant: Indexed[Address]
    attempt: Uint32
    index: Uint32
    update: AbiTuple[ContentRef]
    sample_count: Uint64


@dataclass(frozen=True)
class SeatClaimed(Event):
    """A participant won a committee seat; the proof lets anyone re-verify it."""

    task_id: Indexed[Uint256]
    round: Indexed[Uint32]
    member: Indexed[Address]
    attempt: Uint32
    output: Bytes32
    proof: Bytes
    committee_size: Uint32


@dataclass(frozen=True)
class Proposed(Event):
    """A committee member proposed an aggregate and the submissions it accepted."""

    task_id: Indexed[Uint256]
    round: Indexed[Uint32]
    proposer: Indexed[Address]
    attempt: Uint32
    proposal_id: Uint32
    model: AbiTuple[ContentRef]
    accepted: Bytes


@dataclass(frozen=True)
class Voted(Event):
    """A committee member voted; the counts are those after this vote."""

    task_id: Indexed[Uint256]
    round: Indexed[Uint32]
    voter: Indexed[Address]
    attempt: Uint32
    proposal_id: Uint32
    approve: Bool
    approvals: Uint32
    rejections: Uint32


@dataclass(frozen=True)
class RoundFinalized(Event):
    """A proposal reached quorum: the global model advanced."""

    task_id: Indexed[Uint256]
    round: Indexed[Uint32]
    attempt: Uint32
    proposal_id: Uint32
    model: AbiTuple[ContentRef]
    submission_count: Uint32
    submissions_hash: Bytes32
    accepted_hash: Bytes32
    committee_size: Uint32
    history_hash: Bytes32


@dataclass(frozen=True)
class RoundTimedOut(Event):
    """A round attempt ended without quorum; the next attempt follows in the same tx."""

    task_id: Indexed[Uint256]
    round: Indexed[Uint32]
    attempt: Uint32
    submission_count: Uint32
    submissions_hash: Bytes32
    committee_size: Uint32


@dataclass(frozen=True)
class RoundRejected(Event):
    """So many members rejected that no proposal can reach quorum: the attempt closed early."""

    task_id: Indexed[Uint256]
    round: Indexed[Uint32]
    attempt: Uint32
    submission_count: Uint32
    submissions_hash: Bytes32
    committee_size: Uint32


@dataclass(frozen=True)
class TaskCompleted(Event):
    """The last round finalized; the task is closed."""

    task_id: Indexed[Uint256]
    rounds: Uint32
    model: AbiTuple[ContentRef]
    history_hash: Bytes32


@dataclass(frozen=True)
class TaskFailed(Event):
    """A round closed its last allowed attempt without a model; the task is closed."""

    task_id: Indexed[Uint256]
    round: Uint32
    attempts: Uint32


@dataclass(frozen=True)
class TaskCancelled(Event):
    """The creator cancelled the task; it is closed."""

    task_id: Indexed[Uint256]
    round: Uint32
    attempt: Uint32


@dataclass(frozen=True)
class AdmissionRootSet(Event):
    """A permissioned task's admission root is now ``root``."""

    task_id: Indexed[Uint256]
    root: Bytes32


@dataclass(frozen=True)
class MinStakeSet(Event):
    """The task is staked: each participant bonds at least ``min_stake`` wei to register."""

    task_id: Indexed[Uint256]
    min_stake: Uint256


@dataclass(frozen=True)
class StakeBonded(Event):
    """A participant bonded ``amount`` wei, locked until the task ends or ``unlock_block``."""

    task_id: Indexed[Uint256]
    participant: Indexed[Address]
    amount: Uint256
    unlock_block: Uint64


@dataclass(frozen=True)
class StakeWithdrawn(Event):
    """A participant took its stake back; it draws no seat from now on."""

    task_id: Indexed[Uint256]
    participant: Indexed[Address]
    amount: Uint256


EVENT_TYPES: tuple[type[Event], ...] = (
    TaskCreated,
    ParticipantRegistered,
    RoundOpened,
    SeedSealed,
    UpdateSubmitted,
    SeatClaimed,
    Proposed,
    Voted,
    RoundFinalized,
    RoundTimedOut,
    RoundRejected,
    TaskCompleted,
    TaskFailed,
    TaskCancelled,
    AdmissionRootSet,
    MinStakeSet,
    StakeBonded,
    StakeWithdrawn,
)
EVENTS_BY_TOPIC: dict[bytes, type[Event]] = {kind.topic(): kind for kind in EVENT_TYPES}


@cache
def _split_types(kind: type[Event]) -> tuple[list[str], list[str]]:
    indexed, data = [], []
    for f in abi_fields(kind):
        (indexed if f.indexed else data).append(f.type_name)
    return indexed, data


@cache
def _split_fields(kind: type[Event]) -> tuple[tuple[tuple[str, str], ...], frozenset[str]]:
    """``(name, type)`` of the indexed fields, and the names of the data fields."""
    indexed = tuple((f.name, f.type_name) for f in abi_fields(kind) if f.indexed)
    data = frozenset(f.name for f in abi_fields(kind) if not f.indexed)
    return indexed, data


def encode_log(event: Event) -> tuple[list[bytes], bytes]:
    """``(topics, data)`` of ``event`` exactly as the EVM logs it (static indexed fields)."""
    indexed, data_fields = _split_fields(type(event))
    topics = [event.topic()]
    topics += (encode_word(abi_type, getattr(event, name)) for name, abi_type in indexed)
    return topics, encode_fields(event, data_fields)


def decode_log(topics: list[bytes], data: bytes, block_number: int, log_index: int) -> Event:
    """The typed event of one log; ``KeyError`` if topic 0 is no Flare event."""
    kind = EVENTS_BY_TOPIC[bytes(topics[0])]
    indexed_types, data_types = _split_types(kind)
    indexed_values = iter(
        decode([t], bytes(raw))[0] for t, raw in zip(indexed_types, topics[1:], strict=True)
    )
    data_values = iter(decode(data_types, bytes(data)))
    values = tuple(
        next(indexed_values) if f.indexed else next(data_values) for f in abi_fields(kind)
    )
    return from_abi(kind, values, block_number=block_number, log_index=log_index)


@dataclass(frozen=True)
class Receipt:
    """The outcome of a successful transaction: its block and the events it emitted.

    ``transaction_hash`` and ``gas_used`` are filled by connectors to a real node only.
    """

    block_number: int
    events: tuple[Event, ...]
    transaction_hash: bytes | None = None
    gas_used: int | None = None

    def one(self, kind: type[EventT]) -> EventT:
        """The single event of type ``kind`` this transaction emitted."""
        matches = [event for event in self.events if isinstance(event, kind)]
        if len(matches) != 1:
            raise LookupError(f"expected one {kind.__name__}, found {len(matches)}")
        return matches[0]

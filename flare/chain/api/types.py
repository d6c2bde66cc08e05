"""Typed records of the coordination contract: the structs its calls take and its views return.

Field order is the Solidity struct order of docs/protocol.md §2 and §5, which is also the
ABI tuple order, so a node's response decodes with :func:`flare.chain.api.abi.from_abi` alone.
Log-derived records (:class:`Submission`, :class:`SeatClaim`) have no Solidity struct;
the connector builds them from events after checking the logs against on-chain hashes.
"""

from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

from flare.chain.api.abi import (
    AbiTuple,
    AbiType,
    Address,
    Bool,
    Bytes32,
    Uint16,
    Uint32,
    Uint64,
)
from flare.storage import CODEC_DAG_PB, CODEC_RAW, cid_from_onchain, cid_to_onchain

SUPPORTED_CODECS = frozenset({CODEC_RAW, CODEC_DAG_PB})
"""Multicodecs a CID may have on chain (docs/protocol.md §2.1)."""


@dataclass(frozen=True)
class ContentRef:
    """A CID in its on-chain form, Solidity ``Cid {uint64 codec; bytes32 digest}``.

    Flare CIDs are always CIDv1 sha2-256, so the codec and the digest are all that varies.
    """

    codec: Uint64
    digest: Bytes32

    @classmethod
    def from_cid(cls, cid: str) -> "ContentRef":
        """The on-chain form of a canonical CID string (validated by :mod:`flare.storage`)."""
        codec, digest = cid_to_onchain(cid)
        return cls(codec, digest)

    def to_cid(self) -> str:
        """The canonical base32 CID string."""
        return cid_from_onchain(self.codec, self.digest)


@dataclass(frozen=True)
class TaskParams:
    """A task's fixed parameters; see docs/protocol.md §2.2 for what each one gates."""

    min_clients: Uint32
    expected_committee: Uint32
    min_committee: Uint32
    quorum_bps: Uint16
    submission_window: Uint32
    vote_window: Uint32
    max_rounds: Uint32
    max_attempts: Uint32


class TaskStatus(IntEnum):
    """Lifecycle of a task (Solidity ``enum TaskStatus``)."""

    REGISTERING = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    CANCELLED = 4

    @property
    def ended(self) -> bool:
        """Completed, failed or cancelled: the task accepts no more transactions."""
        return self >= TaskStatus.COMPLETED


class Phase(IntEnum):
    """Which calls a round attempt accepts at a given block (docs/protocol.md §3)."""

    SUBMISSION = 0
    VOTING = 1
    EXPIRED = 2


@dataclass(frozen=True)
class Task:
    """The ``getTask`` view: parameters, current global model and round position."""

    creator: Address
    params: AbiTuple[TaskParams]
    model: AbiTuple[ContentRef]
    manifest: AbiTuple[ContentRef]
    status: Annotated[TaskStatus, AbiType("uint8")]
    registered_count: Uint32
    round: Uint32
    attempt: Uint32
    epoch: Uint32
    proposal_count: Uint32
    history_hash: Bytes32


@dataclass(frozen=True)
class Round:
    """The ``getRound`` view: the current round attempt (the last one once completed)."""

    round: Uint32
    attempt: Uint32
    epoch: Uint32
    seed: Bytes32
    opened_at: Uint64
    submission_deadline: Uint64
    vote_deadline: Uint64
    registered_snapshot: Uint32
    expected_committee: Uint32
    """The attempt's ``k``: the task's, doubled (saturating) after each attempt of the round
    that closed with fewer than ``min_committee`` seats (docs/protocol.md §4.8)."""
    submission_count: Uint32
    submissions_hash: Bytes32
    committee_size: Uint32
    quorum_threshold: Uint32
    rejections: Uint32

    @property
    def seed_sealed(self) -> bool:
        """Whether the attempt's seed is fixed (the view reports a zero seed until then)."""
        return self.seed != bytes(32)

    def phase_at(self, block_number: int) -> Phase:
        """The phase a transaction mined in ``block_number`` would see."""
        if block_number <= self.submission_deadline:
            return Phase.SUBMISSION
        if block_number <= self.vote_deadline:
            return Phase.VOTING
        return Phase.EXPIRED


@dataclass(frozen=True)
class Participant:
    """The ``getParticipant`` view; all zero with ``registered=False`` for a stranger.

    The ``*_epoch`` fields hold the task epoch of the participant's last action of that
    kind; equal to ``Round.epoch`` means "already done in this attempt".
    """

    registered: Bool
    index: Uint32
    public_key_hash: Bytes32
    submit_epoch: Uint32
    seat_epoch: Uint32
    propose_epoch: Uint32
    vote_epoch: Uint32


@dataclass(frozen=True)
class Proposal:
    """The ``getProposal`` view: an aggregate proposed by a committee member, and its votes."""

    proposer: Address
    epoch: Uint32
    round: Uint32
    attempt: Uint32
    model: AbiTuple[ContentRef]
    accepted_hash: Bytes32
    approvals: Uint32
    rejections: Uint32


@dataclass(frozen=True)
class Submission:
    """One update of a round attempt, read from its ``UpdateSubmitted`` log."""

    index: int
    participant: str
    update: ContentRef
    sample_count: int


@dataclass(frozen=True)
class SeatClaim:
    """One committee seat of a round attempt, read from its ``SeatClaimed`` log.

    The proof is kept so that anyone can re-verify the seat against the member's key.
    """

    member: str
    output: bytes
    proof: bytes

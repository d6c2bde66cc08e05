"""The chain layer: every call, view and event of Flare's coordination contract.

``ChainConnector`` is the typed API; ``InMemoryChain`` implements it on a simulated chain
with the contract's exact semantics (docs/protocol.md is the specification both follow).
"""

from flare.chain.connector import ChainConnector, SenderAccount
from flare.chain.derive import (
    decode_accepted,
    encode_accepted,
    quorum_threshold,
    round_seed,
    submissions_hash,
)
from flare.chain.errors import (
    ERRORS_BY_SELECTOR,
    PROTOCOL_ERRORS,
    AttemptNotFound,
    ChainError,
    ContractError,
    LogIntegrityError,
    UnrecognizedRevert,
    decode_revert,
)
from flare.chain.events import (
    EVENT_TYPES,
    Event,
    ParticipantRegistered,
    Proposed,
    Receipt,
    RoundFinalized,
    RoundOpened,
    RoundTimedOut,
    SeatClaimed,
    TaskCompleted,
    TaskCreated,
    UpdateSubmitted,
    Voted,
    decode_log,
    encode_log,
)
from flare.chain.memory import ANVIL_CHAIN_ID, ANVIL_FIRST_CONTRACT, InMemoryChain
from flare.chain.persistence import JournalError
from flare.chain.types import (
    ContentRef,
    Participant,
    Phase,
    Proposal,
    Round,
    SeatClaim,
    Submission,
    Task,
    TaskParams,
    TaskStatus,
)

__all__ = [
    "ANVIL_CHAIN_ID",
    "ANVIL_FIRST_CONTRACT",
    "ERRORS_BY_SELECTOR",
    "EVENT_TYPES",
    "PROTOCOL_ERRORS",
    "AttemptNotFound",
    "ChainConnector",
    "ChainError",
    "ContentRef",
    "ContractError",
    "Event",
    "InMemoryChain",
    "JournalError",
    "LogIntegrityError",
    "Participant",
    "ParticipantRegistered",
    "Phase",
    "Proposal",
    "Proposed",
    "Receipt",
    "Round",
    "RoundFinalized",
    "RoundOpened",
    "RoundTimedOut",
    "SeatClaim",
    "SeatClaimed",
    "SenderAccount",
    "Submission",
    "Task",
    "TaskCompleted",
    "TaskCreated",
    "TaskParams",
    "TaskStatus",
    "UnrecognizedRevert",
    "UpdateSubmitted",
    "Voted",
    "decode_accepted",
    "decode_log",
    "decode_revert",
    "encode_accepted",
    "encode_log",
    "quorum_threshold",
    "round_seed",
    "submissions_hash",
]

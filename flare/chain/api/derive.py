"""The protocol's derived values (docs/protocol.md §2.3), as pure functions.

The contract computes each of these in Solidity; the in-memory chain computes them here,
and readers use the same functions to check logs against on-chain hashes. Each hash is
``keccak256(abi.encode(...))`` over static values, i.e. over a run of 32-byte words.
"""

from collections.abc import Iterable
from functools import lru_cache

from eth_utils import keccak

from flare.chain.api.abi import word
from flare.chain.api.types import ContentRef, TaskParams

BASIS_POINTS = 10_000
MIN_QUORUM_BPS = 5_001
"""The least ``quorum_bps`` a task may have: a strict majority of its committee."""
EMPTY_HISTORY = bytes(32)
STAKE_LOCK_BLOCKS = 100_800
"""Blocks a stake stays locked after it is bonded unless its task ends first (the contract's
``STAKE_LOCK_BLOCKS``: two weeks of 12-second blocks)."""
STAKE_LIMIT = 2**128
"""The first deposit (or minimum stake) the contract refuses as ``StakeOverflow``."""
"""``historyHash`` of a task before its first finalized round."""


def invalid_parameter(params: TaskParams) -> int | None:
    """Index of the first parameter ``createTask`` refuses (docs/protocol.md §2.2), or None."""
    valid = (
        params.min_clients >= 1,
        params.expected_committee >= 1,
        1 <= params.min_committee <= params.expected_committee,
        MIN_QUORUM_BPS <= params.quorum_bps <= BASIS_POINTS,
        params.submission_window >= 1,
        params.vote_window >= 1,
        params.max_rounds >= 1,
        params.max_attempts >= 1,
    )
    return next((index for index, ok in enumerate(valid) if not ok), None)


def round_seed(
    chain_id: int,
    contract: str,
    task_id: int,
    round_number: int,
    attempt: int,
    base_model_digest: bytes,
    prevrandao: int,
) -> bytes:
    """Seed of a round attempt, fixed by the transaction that seals it (``prevrandao`` of its
    block, which comes after the block that opened the attempt)."""
    return keccak(
        word(chain_id)
        + word(contract)
        + word(task_id)
        + word(round_number)
        + word(attempt)
        + word(base_model_digest)
        + word(prevrandao)
    )


@lru_cache(maxsize=1 << 16, typed=True)
def next_submissions_hash(
    previous: bytes, participant: str, update: ContentRef, sample_count: int
) -> bytes:
    """One link of an attempt's submission hash chain (the chain starts at the seed).

    Memoised: every reader of an attempt (each committee member, each auditor) re-checks
    the whole chain against the on-chain hash, and a link is a pure function of its inputs.
    """
    return keccak(
        word(previous)
        + word(participant)
        + word(update.codec)
        + word(update.digest)
        + word(sample_count)
    )


def submissions_hash(seed: bytes, submissions: Iterable[tuple[str, ContentRef, int]]) -> bytes:
    """The hash chain over ``(participant, update, sample_count)`` in submission order."""
    current = seed
    for participant, update, sample_count in submissions:
        current = next_submissions_hash(current, participant, update, sample_count)
    return current


def remembered_submissions_hash(
    seed: bytes, submissions: Iterable[tuple[str, ContentRef, int]]
) -> bytes:
    """:func:`submissions_hash`, remembered for the last few attempts: every committee
    member checks the same submission logs, one keccak per submission each."""
    entries = tuple(
        (participant, update.codec, bytes(update.digest), sample_count)
        for participant, update, sample_count in submissions
    )
    return _remembered_submissions_hash(bytes(seed), entries)


@lru_cache(maxsize=16)
def _remembered_submissions_hash(
    seed: bytes, entries: tuple[tuple[str, int, bytes, int], ...]
) -> bytes:
    return submissions_hash(
        seed,
        ((sender, ContentRef(codec, digest), count) for sender, codec, digest, count in entries),
    )


@lru_cache(maxsize=1 << 12)
def remembered_keccak(value: bytes) -> bytes:
    """``keccak256(value)``, remembered: every member checks every seat log's proof of its
    attempt against its output. A digest depends on the bytes alone, so what is
    remembered is never a verdict."""
    return keccak(value)


def next_history_hash(
    previous: bytes,
    round_number: int,
    attempt: int,
    seed: bytes,
    attempt_submissions_hash: bytes,
    accepted_hash: bytes,
    model: ContentRef,
) -> bytes:
    """A task's history anchor after finalizing one round."""
    return keccak(
        word(previous)
        + word(round_number)
        + word(attempt)
        + word(seed)
        + word(attempt_submissions_hash)
        + word(accepted_hash)
        + word(model.codec)
        + word(model.digest)
    )


def quorum_threshold(quorum_bps: int, committee_size: int) -> int:
    """Approvals needed to finalize: ``ceil(quorum_bps * committee_size / 10000)``."""
    return (quorum_bps * committee_size + BASIS_POINTS - 1) // BASIS_POINTS


def bitmap_length(submission_count: int) -> int:
    """Byte length of a canonical accepted bitmap over ``submission_count`` submissions."""
    return (submission_count + 7) // 8


def encode_accepted(accepted_indices: Iterable[int], submission_count: int) -> bytes:
    """The canonical bitmap of ``accepted_indices`` (bit ``i % 8`` of byte ``i // 8``)."""
    bitmap = bytearray(bitmap_length(submission_count))
    for index in accepted_indices:
        if not 0 <= index < submission_count:
            raise ValueError(f"submission index {index} outside 0..{submission_count - 1}")
        bitmap[index // 8] |= 1 << (index % 8)
    return bytes(bitmap)


def decode_accepted(bitmap: bytes) -> list[int]:
    """Accepted submission indices of a bitmap, ascending (the aggregation order)."""
    return [
        byte_index * 8 + bit
        for byte_index, byte in enumerate(bitmap)
        for bit in range(8)
        if byte >> bit & 1
    ]


def is_canonical_bitmap(bitmap: bytes, submission_count: int) -> bool:
    """True iff ``bitmap`` has the exact length and no bit past the last submission."""
    if len(bitmap) != bitmap_length(submission_count):
        return False
    spare_bits = len(bitmap) * 8 - submission_count
    return spare_bits == 0 or bitmap[-1] >> (8 - spare_bits) == 0

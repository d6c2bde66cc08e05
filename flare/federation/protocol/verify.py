"""Audit a finished task from chain and store alone: recompute every finalized round.

For each ``RoundFinalized`` log the auditor recomputes the aggregate of that attempt
with :func:`compute_aggregate` — the same function committee members run — and compares
the CID and accepted bitmap with what the chain recorded. It also replays the task's
history hash, so a log that was altered or left out cannot pass unnoticed.
"""

from dataclasses import dataclass

from eth_utils import keccak

from flare.chain import ChainConnector, RoundFinalized
from flare.chain.derive import next_history_hash
from flare.errors import FlareError
from flare.federation.protocol.aggregate import compute_aggregate, load_task_context
from flare.storage import StorageProvider


@dataclass(frozen=True)
class RoundVerdict:
    """Whether one finalized round re-derives bit for bit."""

    round: int
    attempt: int
    onchain_model: str
    recomputed_model: str
    bitmap_matches: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.bitmap_matches
            and (self.onchain_model == self.recomputed_model)
        )


@dataclass(frozen=True)
class TaskVerdict:
    """Every round's verdict and whether the chained history hash replays."""

    task_id: int
    rounds: list[RoundVerdict]
    history_matches: bool

    @property
    def ok(self) -> bool:
        return self.history_matches and bool(self.rounds) and all(r.ok for r in self.rounds)


def verify_task(chain: ChainConnector, store: StorageProvider, task_id: int) -> TaskVerdict:
    """Recompute every finalized round of ``task_id`` and compare with the chain."""
    context = load_task_context(chain, store, task_id)
    verdicts = []
    history = bytes(32)
    for event in chain.events([RoundFinalized], task_id=task_id):
        if not isinstance(event, RoundFinalized):
            continue
        onchain = event.model.to_cid()
        bitmap = chain.accepted_bitmap(task_id, event.proposal_id)
        opened = chain.round_opened(task_id, event.round, event.attempt)
        history = next_history_hash(
            history,
            event.round,
            event.attempt,
            opened.seed,
            event.submissions_hash,
            keccak(bitmap),
            event.model,
        )
        try:
            aggregate = compute_aggregate(chain, store, context, event.round, event.attempt)
        except FlareError as exc:
            verdicts.append(RoundVerdict(event.round, event.attempt, onchain, "", False, str(exc)))
            continue
        verdicts.append(
            RoundVerdict(
                round=event.round,
                attempt=event.attempt,
                onchain_model=onchain,
                recomputed_model=aggregate.model.to_cid(),
                bitmap_matches=aggregate.accepted_bitmap == bitmap,
            )
        )
    return TaskVerdict(task_id, verdicts, history == chain.task(task_id).history_hash)

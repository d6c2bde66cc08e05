"""Audit a finished task from chain and store alone: recompute every finalized round.

For each ``RoundFinalized`` log the auditor recomputes the aggregate of that attempt
with :func:`compute_aggregate` — the same function committee members run — and compares
the CID and accepted bitmap with what the chain recorded. It also replays the task's
history hash, so a log that was altered or left out cannot pass unnoticed.

Every blob the chain names for a finalized attempt is read: the manifest, the base model,
each submitted update and the finalized model. A round is then re-derived; or the store is
damaged (a blob is corrupt, or missing where the chain's outcome needed it), and the verdict
names each such blob and says nothing about the chain; or the chain disagrees with an intact
store; or the intact blobs cannot be recomputed at all (a malformed manifest, say). An
update missing from the store whose submission the chain rejected too, in a round that
re-derives without it, is only noted: its submitter may never have published it, no store
can prove otherwise, and failing the audit for it would let any participant fail them all.

A round is judged by the availability rule its committee used (docs/protocol.md,
"Availability"): the updates the finalized model says its proposer could not fetch are left
out of the recomputation, whether or not the store serves them now, and never read.
"""

import contextlib
import enum
from dataclasses import dataclass
from typing import Any, cast

from eth_utils import keccak

from flare.chain import ChainConnector, RoundFinalized, RoundOpened, decode_accepted
from flare.chain.api.derive import next_history_hash
from flare.errors import FlareError
from flare.federation.protocol.aggregate import (
    RoundAggregate,
    TaskContext,
    compute_aggregate,
    load_task_context,
)
from flare.federation.protocol.artifacts import MalformedArtifactError, model_unavailable
from flare.storage import StorageProvider
from flare.storage.errors import BlobNotFoundError, ContentMismatchError, StorageError


class RoundStatus(enum.Enum):
    """How the audit of one finalized attempt came out."""

    REDERIVED = "re-derived"
    STORE_DAMAGED = "store damaged"
    MISMATCH = "chain mismatch"
    ERROR = "not recomputable"


@dataclass(frozen=True)
class BlobProblem:
    """A blob the chain names that the store did not serve intact."""

    cid: str
    role: str
    """What the chain uses it for, e.g. ``update of 0x… (submission 2)``."""
    problem: str

    def __str__(self) -> str:
        return f"{self.role} {self.cid} {self.problem}"


@dataclass(frozen=True)
class RoundVerdict:
    """Whether one finalized round re-derives bit for bit, and if not, whose fault it is."""

    round: int
    attempt: int
    onchain_model: str
    recomputed_model: str
    bitmap_matches: bool
    error: str | None = None
    damaged: tuple[BlobProblem, ...] = ()
    """Blobs the store failed to serve intact: the round is a store failure, whatever the
    recomputation gave."""
    absent_rejected: tuple[BlobProblem, ...] = ()
    """Updates not in the store that the chain rejected as well (see the module docstring)."""

    @property
    def status(self) -> RoundStatus:
        if self.damaged:
            return RoundStatus.STORE_DAMAGED
        if self.error is not None:
            return RoundStatus.ERROR
        if self.bitmap_matches and self.onchain_model == self.recomputed_model:
            return RoundStatus.REDERIVED
        return RoundStatus.MISMATCH

    @property
    def ok(self) -> bool:
        return self.status is RoundStatus.REDERIVED


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
    return TaskAuditor(store, task_id).audit(chain)


class TaskAuditor:
    """Audits a task as it runs: each call to :meth:`audit` recomputes only what is new.

    A round that re-derived is settled and is not recomputed again; any other verdict is
    redone on the next call, since a blob missing now may yet arrive. The history hash is
    replayed in full every time: it costs a few chain reads per round, no recomputation.
    """

    def __init__(self, store: StorageProvider, task_id: int) -> None:
        self.store = store
        self.task_id = task_id
        self._context: TaskContext | None = None
        self._settled: dict[tuple[int, int, str, bytes], RoundVerdict] = {}

    def audit(self, chain: ChainConnector) -> TaskVerdict:
        """The verdict on every round of the task that ``chain`` shows finalized."""
        task_id = self.task_id
        manifest_cid = chain.task(task_id).manifest.to_cid()
        manifest_reads = _RecordingReads(self.store)
        context_error = None
        if self._context is None:
            try:
                self._context = load_task_context(chain, manifest_reads.as_provider(), task_id)
            except FlareError as exc:
                context_error = str(exc)
        verdicts = []
        history = bytes(32)
        for event in chain.events([RoundFinalized], task_id=task_id):
            if not isinstance(event, RoundFinalized):
                continue
            bitmap = chain.accepted_bitmap(task_id, event.proposal_id)
            history = next_history_hash(
                history,
                event.round,
                event.attempt,
                chain.attempt_seed(task_id, event.round, event.attempt),
                event.submissions_hash,
                keccak(bitmap),
                event.model,
            )
            key = (event.round, event.attempt, event.model.to_cid(), bitmap)
            verdict = self._settled.get(key)
            if verdict is None and self._context is None:
                roles = {manifest_cid: "task manifest"}
                failures = manifest_reads.failures
                verdict = _judge(event, bitmap, None, context_error, failures, roles)
            elif verdict is None:
                opened = chain.round_opened(task_id, event.round, event.attempt)
                verdict = _audit_round(chain, self.store, self._context, event, opened, bitmap)
                if verdict.status is RoundStatus.REDERIVED:
                    self._settled[key] = verdict
            verdicts.append(verdict)
        return TaskVerdict(task_id, verdicts, history == chain.task(task_id).history_hash)


def _audit_round(
    chain: ChainConnector,
    store: StorageProvider,
    context: TaskContext,
    event: RoundFinalized,
    opened: RoundOpened,
    bitmap: bytes,
) -> RoundVerdict:
    """Recompute one finalized attempt and read its finalized model, keeping every blob the
    store could not serve."""
    reads = _RecordingReads(store)
    unavailable: frozenset[int] = frozenset()
    with contextlib.suppress(StorageError, MalformedArtifactError):  # judged with the rest
        unavailable = model_unavailable(reads.get(event.model.to_cid()))
    aggregate, error = None, None
    try:
        aggregate = compute_aggregate(
            chain,
            reads.as_provider(),
            context,
            event.round,
            event.attempt,
            unavailable=unavailable,
        )
    except FlareError as exc:
        error = str(exc)
    previous = "initial model" if event.round == 1 else f"global model of round {event.round - 1}"
    roles = {
        opened.base_model.to_cid(): previous,
        event.model.to_cid(): f"global model of round {event.round}",
    }
    for submission in chain.submissions(context.task_id, event.round, event.attempt):
        role = f"update of {submission.participant} (submission {submission.index})"
        roles.setdefault(submission.update.to_cid(), role)
    return _judge(event, bitmap, aggregate, error, reads.failures, roles)


def _judge(
    event: RoundFinalized,
    bitmap: bytes,
    aggregate: RoundAggregate | None,
    error: str | None,
    failures: dict[str, StorageError],
    roles: dict[str, str],
) -> RoundVerdict:
    """Sort the blobs the store failed to serve into damage and notes; judge the round."""
    recomputed = aggregate.model.to_cid() if aggregate is not None else ""
    bitmap_matches = aggregate is not None and aggregate.accepted_bitmap == bitmap
    rederived = bitmap_matches and recomputed == event.model.to_cid()
    accepted = set(decode_accepted(bitmap))
    submissions = aggregate.submissions if aggregate is not None else []
    only_rejected = {s.update.to_cid() for s in submissions if s.index not in accepted}
    only_rejected -= {s.update.to_cid() for s in submissions if s.index in accepted}
    damaged, absent_rejected = [], []
    for cid, failure in failures.items():
        role = roles.get(cid, "blob")
        if isinstance(failure, ContentMismatchError):
            damaged.append(BlobProblem(cid, role, "is corrupt in the store"))
        elif isinstance(failure, BlobNotFoundError):
            missing = BlobProblem(cid, role, "is missing from the store")
            # its absence cannot explain a round that re-derives without it
            (absent_rejected if rederived and cid in only_rejected else damaged).append(missing)
        elif cid not in only_rejected:  # refused for size or form: so did every member
            damaged.append(BlobProblem(cid, role, f"cannot be read: {failure}"))
    return RoundVerdict(
        round=event.round,
        attempt=event.attempt,
        onchain_model=event.model.to_cid(),
        recomputed_model=recomputed,
        bitmap_matches=bitmap_matches,
        error=error,
        damaged=tuple(damaged),
        absent_rejected=tuple(absent_rejected),
    )


class _RecordingReads:
    """Reads through a store and keeps the error of every blob it could not serve.

    Everything but ``get`` passes straight through, so :func:`compute_aggregate` reads
    each blob once, with whatever bounds it applies, and the audit learns which blobs
    failed and how without reading them a second time.
    """

    def __init__(self, store: StorageProvider) -> None:
        self._store = store
        self.failures: dict[str, StorageError] = {}

    def get(self, cid: str, *args: Any, **kwargs: Any) -> bytes:
        try:
            return self._store.get(cid, *args, **kwargs)
        except StorageError as exc:
            self.failures[cid] = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def as_provider(self) -> StorageProvider:
        return cast(StorageProvider, self)

"""One task read from the chain and the blob store into a JSON-ready snapshot.

The chain's logs give every attempt: who sat (with the VRF output that won the seat), who
submitted, what was proposed and how each member voted, how the attempt closed. A finalized
round also gets what only the blobs tell, computed once and kept: the bytes uploaded, the
clients the task's filter flagged and why (the aggregate recomputed as an auditor does),
the model's test accuracy when a test set is given, and whether :func:`verify_task`
re-derives it. Nothing is written to the chain or the store.
"""

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flare.chain import (
    ChainConnector,
    Proposed,
    RoundFinalized,
    RoundOpened,
    RoundRejected,
    RoundTimedOut,
    SeatClaimed,
    TaskStatus,
    UpdateSubmitted,
    Voted,
)
from flare.chain.api.events import Event
from flare.dashboard.gas import GasMeter
from flare.errors import FlareError
from flare.storage import StorageProvider

ChainOpener = Callable[[], AbstractContextManager[ChainConnector]]
"""Opens the chain read-only for one snapshot: a journal is re-read each time it grows."""


@dataclass
class _Attempt:
    """The logs of one attempt, in chain order."""

    opened: RoundOpened
    submissions: list[UpdateSubmitted] = field(default_factory=list)
    seats: list[SeatClaimed] = field(default_factory=list)
    proposals: list[Proposed] = field(default_factory=list)
    votes: list[Voted] = field(default_factory=list)
    closed: Event | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.opened.attempt,
            "opened_block": self.opened.block_number,
            "submission_deadline": self.opened.submission_deadline,
            "vote_deadline": self.opened.vote_deadline,
            "submissions": len(self.submissions),
            "committee": [
                {"member": seat.member, "vrf_output": "0x" + seat.output.hex()}
                for seat in self.seats
            ],
            "proposals": [
                {"id": p.proposal_id, "proposer": p.proposer, "model": p.model.to_cid()}
                for p in self.proposals
            ],
            "votes": [
                {"voter": v.voter, "proposal": v.proposal_id, "approve": v.approve}
                for v in self.votes
            ],
            "outcome": _outcome(self.closed),
        }


def _outcome(closed: Event | None) -> str:
    if isinstance(closed, RoundFinalized):
        return "finalized"
    if isinstance(closed, RoundTimedOut):
        return "timed out"
    if isinstance(closed, RoundRejected):
        return "rejected by the committee"
    return "open"


@dataclass(frozen=True)
class TestSet:
    """Labelled samples the global models are scored on."""

    path: Path
    features: Any
    labels: Any


class TaskWatcher:
    """Snapshots of one task (``task_id``, or the chain's latest when ``None``)."""

    def __init__(
        self,
        open_chain: ChainOpener,
        store: StorageProvider,
        task_id: int | None = None,
        test: Path | None = None,
    ) -> None:
        self._open_chain = open_chain
        self._store = store
        self._task_id = task_id
        self._test_path = test
        self._test: TestSet | None = None
        self._context: Any = None
        self._finalized: dict[tuple[int, int, str], dict[str, Any]] = {}
        self._auditor: Any = None
        self._verified: tuple[tuple[int, int], ...] = ()
        self._verdicts: dict[str, Any] = {"rounds": {}, "history_matches": None}
        self._gas = GasMeter()

    def snapshot(self) -> dict[str, Any]:
        """The task as the chain and the store show it now."""
        with self._open_chain() as chain:
            head = chain.block_number()
            base = {
                "chain_id": chain.chain_id,
                "contract": chain.contract_address,
                "head": head,
                "time": time.time(),
            }
            task_id = self._task_id if self._task_id is not None else chain.task_count()
            if task_id < 1 or task_id > chain.task_count():
                return {**base, "task": None, "rounds": [], "waiting_for": task_id or 1}
            return {**base, **self._read_task(chain, task_id, head)}

    def _read_task(self, chain: ChainConnector, task_id: int, head: int) -> dict[str, Any]:
        task = chain.task(task_id)
        logs = chain.events(task_id=task_id)  # registrations too: they spent gas
        attempts = _attempts(logs)
        finalized = [a for a in attempts.values() if isinstance(a.closed, RoundFinalized)]
        verdicts = self._verify(chain, task_id, finalized)
        gas = self._gas.spent(chain, task_id, logs)
        rounds = []
        for attempt in finalized:
            assert isinstance(attempt.closed, RoundFinalized)
            number = attempt.opened.round
            failed = [
                a.as_dict()
                for (r, _), a in sorted(attempts.items())
                if r == number and a.closed is not None and a is not attempt
            ]
            rounds.append(
                {
                    "round": number,
                    **attempt.as_dict(),
                    "model": attempt.closed.model.to_cid(),
                    "failed_attempts": failed,
                    **self._finalized_details(chain, task_id, attempt.closed),
                    "verification": verdicts["rounds"].get(number, "pending"),
                    "gas": None if gas is None else gas["rounds"].get(number, 0),
                }
            )
        current = None
        if task.status is TaskStatus.RUNNING:
            state = chain.current_round(task_id)
            live = attempts.get((state.round, state.attempt))
            current = {
                "round": state.round,
                "phase": state.phase_at(head + 1).name.lower(),
                **(live.as_dict() if live is not None else {"attempt": state.attempt}),
            }
        params = task.params
        return {
            "task": task_id,
            "status": task.status.name.lower(),
            "registered": task.registered_count,
            "params": {
                "min_clients": params.min_clients,
                "expected_committee": params.expected_committee,
                "min_committee": params.min_committee,
                "quorum_bps": params.quorum_bps,
                "submission_window": params.submission_window,
                "vote_window": params.vote_window,
                "max_rounds": params.max_rounds,
            },
            "global_model": task.model.to_cid(),
            "current": current,
            "rounds": rounds,
            "history_matches": verdicts["history_matches"],
            "gas_total": None if gas is None else gas["total"],
            "test_set": None if self._test_path is None else str(self._test_path),
        }

    def _verify(
        self, chain: ChainConnector, task_id: int, finalized: list[_Attempt]
    ) -> dict[str, Any]:
        """Each finalized round's audit, looked at again only when another round finalized;
        a round that re-derived is not recomputed again."""
        from flare.federation.protocol.verify import TaskAuditor

        keys = tuple((a.opened.round, a.opened.attempt) for a in finalized)
        if keys != self._verified:
            if self._auditor is None or self._auditor.task_id != task_id:
                self._auditor = TaskAuditor(self._store, task_id)
            verdict = self._auditor.audit(chain)
            self._verdicts = {
                "rounds": {r.round: r.status.value for r in verdict.rounds},
                "history_matches": verdict.history_matches,
            }
            self._verified = keys
        return self._verdicts

    def _finalized_details(
        self, chain: ChainConnector, task_id: int, event: RoundFinalized
    ) -> dict[str, Any]:
        key = (event.round, event.attempt, event.model.to_cid())
        if key not in self._finalized:
            try:
                self._finalized[key] = self._read_blobs(chain, task_id, event)
            except FlareError as exc:
                return {"error": str(exc)}  # not kept: the blobs may yet arrive
        return self._finalized[key]

    def _read_blobs(
        self, chain: ChainConnector, task_id: int, event: RoundFinalized
    ) -> dict[str, Any]:
        from flare.federation.protocol.aggregate import compute_aggregate, load_task_context
        from flare.federation.protocol.artifacts import model_unavailable

        if self._context is None:
            self._context = load_task_context(chain, self._store, task_id)
        model_blob = self._store.get(event.model.to_cid())
        aggregate = compute_aggregate(
            chain,
            self._store,
            self._context,
            event.round,
            event.attempt,
            unavailable=model_unavailable(model_blob),
        )
        uploaded = sum(
            len(self._store.get(s.update.to_cid()))
            for s in aggregate.submissions
            if s.participant not in aggregate.rejected
        )
        details: dict[str, Any] = {
            "bytes_up": uploaded,
            "model_bytes": len(model_blob),
            "accepted": len(aggregate.accepted),
            "flagged": [
                {"participant": who, "reason": aggregate.reasons.get(who, "")}
                for who in aggregate.flagged
            ],
            "rejected": [
                {"participant": who, "reason": reason} for who, reason in aggregate.rejected.items()
            ],
            "accuracy": None,
            "loss": None,
        }
        if self._test_path is not None:
            details.update(self._score(model_blob))
        return details

    def _score(self, model_blob: bytes) -> dict[str, float]:
        """Accuracy and loss of one global model on the test set."""
        from flare.federation.agents import read_client_data
        from flare.federation.protocol.artifacts import decode_model
        from flare.models import TorchModelAdapter, build_model

        manifest = self._context.bundle.manifest
        if self._test is None:
            assert self._test_path is not None
            data = read_client_data(
                self._test_path, "test", manifest.num_features, manifest.num_classes
            )
            self._test = TestSet(self._test_path, data.features, data.labels)
        evaluator = TorchModelAdapter(
            build_model(manifest.model, manifest.num_features, manifest.num_classes, seed=0)
        )
        evaluator.set_weights(decode_model(model_blob, self._context.spec))
        result = evaluator.evaluate(self._test.features, self._test.labels)
        return {"accuracy": float(result.accuracy), "loss": float(result.loss)}


def _attempts(logs: list[Event]) -> dict[tuple[int, int], _Attempt]:
    """Every attempt's logs, by (round, attempt), in the order the attempts opened."""
    attempts: dict[tuple[int, int], _Attempt] = {}
    for event in logs:
        key = (getattr(event, "round", 0), getattr(event, "attempt", 0))
        if isinstance(event, RoundOpened):
            attempts[key] = _Attempt(event)
            continue
        attempt = attempts.get(key)
        if attempt is None:
            continue
        if isinstance(event, UpdateSubmitted):
            attempt.submissions.append(event)
        elif isinstance(event, SeatClaimed):
            attempt.seats.append(event)
        elif isinstance(event, Proposed):
            attempt.proposals.append(event)
        elif isinstance(event, Voted):
            attempt.votes.append(event)
        elif isinstance(event, RoundFinalized | RoundTimedOut | RoundRejected):
            attempt.closed = event
    return attempts

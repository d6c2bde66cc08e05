"""What one attempt of a simulated round did, read back from the chain's views and logs.

The protocol simulation does not keep its own account of seats, proposals and votes: it
reads them from the chain once the attempt is closed, the way an auditor would, so the
report can only say what the chain recorded.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flare.chain import (
    ChainConnector,
    Proposed,
    RoundFinalized,
    RoundOpened,
    RoundRejected,
    TaskParams,
    Voted,
    quorum_threshold,
)
from flare.federation.protocol.simulated_device import AttemptSends


@dataclass(frozen=True)
class AttemptOutcome:
    """One closed attempt: who sat, what was proposed and voted, and how it ended."""

    attempt: int
    seed: str
    committee: list[dict[str, str]]
    seats_needed: int
    submissions_needed: int
    approvals_needed: int
    attackers_seated: list[str]
    proposals: list[dict[str, Any]]
    votes: list[dict[str, Any]]
    bytes_up: int
    sent: list[str]
    dropped: list[str]
    global_model: str | None = None
    """The finalized model's CID; ``None`` when the attempt failed."""
    reason: str | None = None
    """Why the attempt failed, in numbers where it can."""
    honest_model: str | None = field(default=None, compare=False)
    """With a dishonest committee: what an honest member computed for the attempt."""

    @property
    def finalized(self) -> bool:
        return self.global_model is not None

    def as_report(self) -> dict[str, Any]:
        """The attempt as the JSON report shows it (a failed attempt keeps who sent)."""
        report: dict[str, Any] = {
            "attempt": self.attempt,
            "seed": self.seed,
            "committee": self.committee,
            "seats_needed": self.seats_needed,
            "submissions_needed": self.submissions_needed,
            "approvals_needed": self.approvals_needed,
            "attackers_seated": self.attackers_seated,
            "proposals": self.proposals,
            "votes": self.votes,
            "finalized": self.finalized,
            "bytes_up": self.bytes_up,
        }
        if self.finalized:
            report["dropped"] = self.dropped
            if self.honest_model is not None:
                report["honest_model"] = self.honest_model
            report["global_model"] = self.global_model
        else:
            report.update(sent=self.sent, dropped=self.dropped, reason=self.reason)
        return report


def read_attempt(
    chain: ChainConnector,
    opened: RoundOpened,
    params: TaskParams,
    names: Mapping[str, str],
    malicious: set[str],
    sends: AttemptSends,
    dropped: list[str],
) -> AttemptOutcome:
    """The closed attempt ``opened`` describes; ``names`` maps addresses to client ids."""
    task_id, round_number, attempt = opened.task_id, opened.round, opened.attempt
    seats = chain.committee(task_id, round_number, attempt)
    logs = chain.events(
        [Proposed, Voted, RoundFinalized, RoundRejected],
        task_id=task_id,
        from_block=opened.block_number,
    )
    mine = [e for e in logs if (e.round, e.attempt) == (round_number, attempt)]
    proposals = [e for e in mine if isinstance(e, Proposed)]
    finalized = next((e for e in mine if isinstance(e, RoundFinalized)), None)
    seated = [names[seat.member] for seat in seats]
    return AttemptOutcome(
        attempt=attempt,
        seed="0x" + chain.attempt_seed(task_id, round_number, attempt).hex(),
        committee=[
            {"member": names[s.member], "address": s.member, "vrf_output": "0x" + s.output.hex()}
            for s in seats
        ],
        seats_needed=params.min_committee,
        submissions_needed=params.min_clients,
        approvals_needed=quorum_threshold(params.quorum_bps, len(seats)),
        attackers_seated=[name for name in seated if name in malicious],
        proposals=[
            {
                "id": p.proposal_id,
                "proposer": names[p.proposer],
                "model": p.model.to_cid(),
                "accepted": "0x" + p.accepted.hex(),
            }
            for p in proposals
        ],
        votes=[
            {"member": names[v.voter], "proposal": v.proposal_id, "approve": v.approve}
            for v in mine
            if isinstance(v, Voted)
        ],
        bytes_up=sends.bytes_up,
        sent=list(sends.sent),
        dropped=dropped,
        global_model=None if finalized is None else finalized.model.to_cid(),
        reason=None if finalized is not None else _failure(params, len(seats), sends, mine),
    )


def _failure(params: TaskParams, seats: int, sends: AttemptSends, logs: list[Any]) -> str:
    if seats < params.min_committee:
        return f"committee of {seats} below {params.min_committee}"
    if len(sends.sent) < params.min_clients:
        return f"{len(sends.sent)} submissions below {params.min_clients}"
    if any(isinstance(e, RoundRejected) for e in logs):
        return "the committee rejected the proposals"
    return "no proposal reached the quorum"

"""What a run reports: one record per round and a summary, serialisable to JSON."""

import json
import math
import resource
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flare.errors import FlareError


@dataclass
class RoundRecord:
    """The outcome of one round, in the report's vocabulary."""

    round: int
    accuracy: float
    loss: float
    bytes_up: int
    bytes_raw: int
    accepted: list[str]
    flagged: list[str]
    malicious: list[str]
    dropped: list[str]
    rejected: dict[str, str]
    seconds: float
    scores: dict[str, dict[str, float]]
    reasons: dict[str, str]
    timings: dict[str, float]
    protocol: dict[str, Any] | None = None
    privacy: dict[str, Any] | None = None
    """With DP on: ε at the run's δ so far, the maximum and per client."""
    attack_success: float | None = None
    """Under a backdoor: the share of triggered test samples of other classes that the
    round's model assigns to the target class."""


@dataclass
class SimulationReport:
    """The whole run: configuration, rounds, final figures, wall time.

    ``interrupted`` says why a run stopped before its last round (a node went away, the
    user pressed Ctrl-C); ``rounds`` then holds the rounds it finished.
    """

    config: dict[str, Any]
    rounds: list[RoundRecord] = field(default_factory=list)
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    privacy: dict[str, Any] | None = None
    """With DP on: clip, noise multiplier, δ, neighbouring relation and accountant."""
    interrupted: str | None = None

    @property
    def final(self) -> dict[str, Any]:
        last = self.rounds[-1] if self.rounds else None
        return {
            "accuracy": last.accuracy if last else None,
            "attack_success": last.attack_success if last else None,
            "loss": last.loss if last else None,
            "bytes_up": sum(r.bytes_up for r in self.rounds),
            "bytes_raw": sum(r.bytes_raw for r in self.rounds),
            "seconds": round(self.seconds, 3),
            "peak_memory_mb": round(self.peak_memory_mb, 1),
            "detection": detection_rates(self.rounds),
            "epsilon": final_epsilon(self.rounds),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "rounds": [asdict(r) for r in self.rounds],
            "final": self.final,
            "privacy": self.privacy,
            "interrupted": self.interrupted,
        }

    def write_json(self, path: Path) -> None:
        text = json.dumps(_json_safe(self.to_dict()), indent=2, allow_nan=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            raise ReportError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


def process_peak_rss_mb() -> float:
    """This process's peak resident set since its ``exec``, in MiB.

    Linux's ``VmHWM``: ``ru_maxrss`` keeps the parent's peak across ``fork`` and ``exec``,
    so a run started from a larger process would report that process's peak instead of
    its own. Elsewhere ``ru_maxrss`` is all there is (bytes on macOS, KiB on the BSDs).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


class ReportError(FlareError):
    """The report or its plots could not be written."""


class RunInterrupted(FlareError):
    """A run stopped before its last round; ``report`` holds the rounds it finished."""

    def __init__(self, report: SimulationReport) -> None:
        planned = report.config.get("rounds")
        of = f" of {planned}" if planned is not None else ""
        super().__init__(
            f"run interrupted after {len(report.rounds)}{of} rounds: {report.interrupted}"
        )
        self.report = report


def final_epsilon(rounds: list[RoundRecord]) -> float | None:
    """The largest ε any client reached by the last round (None without DP)."""
    accounted = [r.privacy for r in rounds if r.privacy is not None]
    return accounted[-1]["epsilon"] if accounted else None


def detection_rates(rounds: list[RoundRecord]) -> dict[str, float | None]:
    """Share of malicious submissions flagged and of honest submissions flagged."""
    mal_seen = mal_flagged = honest_seen = honest_flagged = 0
    for r in rounds:
        malicious = set(r.malicious)
        for client_id in r.accepted + r.flagged:
            flagged = client_id in r.flagged
            if client_id in malicious:
                mal_seen += 1
                mal_flagged += flagged
            else:
                honest_seen += 1
                honest_flagged += flagged
    return {
        "malicious_flagged": mal_flagged / mal_seen if mal_seen else None,
        "honest_flagged": honest_flagged / honest_seen if honest_seen else None,
    }


@dataclass(frozen=True)
class ProposalTally:
    """How the committee of a reported attempt voted on one proposal."""

    approvals: int
    rejections: int
    finalized: bool
    """Whether the attempt finalized this proposal's model."""


def proposal_tally(attempt: dict[str, Any], proposal: dict[str, Any]) -> ProposalTally:
    """The votes on ``proposal`` in ``attempt``, a protocol attempt as the report holds it."""
    ballots = [vote["approve"] for vote in attempt["votes"] if vote["proposal"] == proposal["id"]]
    return ProposalTally(
        approvals=sum(ballots),
        rejections=len(ballots) - sum(ballots),
        finalized=attempt.get("global_model") == proposal["model"],
    )


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinities (a diverged model's loss) by ``null``: JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value

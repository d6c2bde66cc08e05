"""What a person watching a run sees: a progress bar and one line per round."""

from collections import Counter
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flare.federation.config import SimulationConfig
from flare.federation.report import RoundRecord, SimulationReport, proposal_tally
from flare.federation.rounds import RunObserver


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def round_line(record: RoundRecord, total_rounds: int) -> str:
    """One concise line that says how the round went."""
    ratio = record.bytes_raw / record.bytes_up if record.bytes_up else 0.0
    caught = len(set(record.flagged) & set(record.malicious))
    width = len(str(total_rounds))
    parts = [
        f"round {record.round:>{width}}/{total_rounds}",
        f"acc {record.accuracy:.3f}",
        *([] if record.attack_success is None else [f"backdoor {record.attack_success:.3f}"]),
        f"loss {record.loss:6.3f}",
        f"up {human_bytes(record.bytes_up):>9} ({ratio:4.1f}x)",
        f"flagged {len(record.flagged):>2} ({caught}/{len(record.malicious)} malicious)",
    ]
    if record.protocol is not None:
        parts.append(f"committee {len(record.protocol['committee'])}")
    if record.privacy is not None:
        parts.append(f"ε {record.privacy['epsilon']:.3g}")
    if record.dropped:
        parts.append(f"dropped {len(record.dropped)}")
    if record.rejected:
        parts.append(f"rejected {len(record.rejected)}")
    parts.append(f"{record.seconds:5.2f}s")
    return "  ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def attempt_failure(attempt: dict[str, Any]) -> str:
    """Why a protocol attempt did not finalize, in words and numbers.

    Reads the attempt's own record: the seats, submissions and approvals it needed next to
    the committee, submissions and votes it got.
    """
    seats = len(attempt["committee"])
    if seats < attempt["seats_needed"]:
        return f"{_plural(seats, 'seat')} of {attempt['seats_needed']} needed"
    submissions = len(attempt["sent"])
    if submissions < attempt["submissions_needed"]:
        return f"{_plural(submissions, 'submission')} of {attempt['submissions_needed']} needed"
    if not attempt["proposals"]:
        return "no proposal"
    needed = attempt["approvals_needed"]
    rejections = sum(not vote["approve"] for vote in attempt["votes"])
    if rejections > seats - needed:
        return (
            f"rejected: quorum out of reach ({rejections} of {seats} members rejected, "
            f"{needed} approvals needed)"
        )
    approvals = Counter(vote["proposal"] for vote in attempt["votes"] if vote["approve"])
    best = max(approvals.values(), default=0)
    return f"no quorum: {best} of {needed} approvals"


def attackers_on(attempt: dict[str, Any]) -> str | None:
    """Which attackers sat on an attempt's committee and what became of each proposal they
    made; ``None`` when none sat."""
    attackers = attempt.get("attackers_seated", [])
    if not attackers:
        return None
    seated = (
        f"attackers held {len(attackers)} of {len(attempt['committee'])} seats "
        f"({', '.join(attackers)})"
    )
    theirs = [p for p in attempt["proposals"] if p["proposer"] in attackers]
    if not theirs:
        return f"{seated}; they proposed nothing"
    return f"{seated}; " + "; ".join(
        f"{p['proposer']}'s proposal {_proposal_fate(attempt, p)}" for p in theirs
    )


def _proposal_fate(attempt: dict[str, Any], proposal: dict[str, Any]) -> str:
    tally = proposal_tally(attempt, proposal)
    if tally.finalized:
        return "was finalized"
    rejections = tally.rejections
    fate = f"got {tally.approvals} of {attempt['approvals_needed']} approvals"
    if rejections:
        fate += f" and {rejections} rejection{'' if rejections == 1 else 's'}"
    # The attempt finalized another proposal: this one lost the vote.
    return fate + (", outvoted" if attempt.get("finalized") else "")


def round_notes(record: RoundRecord) -> list[str]:
    """Lines printed under a protocol round: each failed attempt, then warnings."""
    if record.protocol is None:
        return []
    notes = []
    for failed in record.protocol["failed_attempts"]:
        attackers = attackers_on(failed)
        notes.append(
            f"  attempt {failed['attempt']} failed: {attempt_failure(failed)}"
            + ("" if attackers is None else f"; {attackers}")
        )
    attackers = attackers_on(record.protocol)
    if attackers is not None:
        notes.append(f"  WARNING: {attackers}")
    honest = record.protocol.get("honest_model")
    if honest is not None and honest != record.protocol["global_model"]:
        notes.append(
            f"  WARNING: the finalized model {record.protocol['global_model']} is not the one "
            f"an honest member recomputes ({honest})"
        )
    return notes


class RoundTable(RunObserver):
    """Rich progress bar over the clients of a round, then the round's line."""

    def __init__(self, enabled: bool = True) -> None:
        self.console = Console(quiet=not enabled, highlight=False, soft_wrap=True)
        self.progress = Progress(
            TextColumn("[bold]round {task.fields[round]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("clients{task.fields[where]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = None
        self._rounds = 0
        self._where = ""

    def __enter__(self) -> "RoundTable":
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def run_started(self, config: SimulationConfig) -> None:
        self._rounds = config.rounds
        attackers = f"{config.malicious} x {config.attack}" if config.malicious else "none"
        self.console.print(
            f"[bold]flare simulate[/]  {config.dataset} / {config.model}  "
            f"{config.clients} clients ({config.partition})  attackers: {attackers}  "
            f"aggregator: {config.aggregator}  codec: {config.codec}  seed {config.seed}"
        )
        if config.dp_clip is not None:
            noise = (
                f"noise multiplier {config.dp_noise_multiplier:g}"
                if config.dp_noise_multiplier is not None
                else f"noise calibrated to ε {config.dp_epsilon:g} over {config.rounds} rounds"
            )
            self.console.print(
                f"client-level DP: clip {config.dp_clip:g}, {noise}, ε reported at "
                f"δ {config.dp_delta:g}"
            )

    def cluster_ready(self, where: str) -> None:
        self._where = f" on {where}"
        self.console.print(f"clients train on {where}", style="dim")

    def round_started(self, round_number: int, participants: int) -> None:
        if self._task is not None:
            self.progress.remove_task(self._task)
        self._task = self.progress.add_task(
            "", total=participants, round=round_number, where=self._where
        )

    def client_finished(self, client_id: str) -> None:
        self.progress.advance(self._task)

    def round_finished(self, record: RoundRecord) -> None:
        self.console.print(round_line(record, self._rounds))
        for note in round_notes(record):
            style = "bold red" if note.lstrip().startswith("WARNING") else "dim"
            self.console.print(note, style=style, markup=False)

    def summary(self, report: SimulationReport) -> None:
        if not report.rounds:
            self.console.print(f"[bold]final[/]  no round finished  {report.seconds:.1f}s")
            return
        final = report.final
        ratio = final["bytes_raw"] / final["bytes_up"] if final["bytes_up"] else 0.0
        detection = final["detection"]
        self.console.print(
            f"[bold]final[/]  accuracy {final['accuracy']:.4f}  loss {final['loss']:.4f}  "
            f"sent {human_bytes(final['bytes_up'])} of {human_bytes(final['bytes_raw'])} raw "
            f"({ratio:.1f}x)  {report.seconds:.1f}s"
        )
        if final["attack_success"] is not None:
            self.console.print(
                f"backdoor success {final['attack_success']:.4f}: share of triggered test "
                "samples of other classes classified as the target"
            )
        if detection["malicious_flagged"] is not None or detection["honest_flagged"]:
            mal = detection["malicious_flagged"]
            self.console.print(
                "flagged: "
                + (f"{mal:.0%} of malicious submissions, " if mal is not None else "")
                + f"{(detection['honest_flagged'] or 0):.0%} of honest ones"
            )

    def note(self, message: str) -> None:
        self.console.print(message)

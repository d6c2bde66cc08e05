"""PNG plots of a run: accuracy, bytes on the wire, and the filter's scores."""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flare.aggregation.arithmetic import median_of
from flare.aggregation.mi_filter import MIFilter
from flare.aggregation.mi_scores import MAD_TO_SIGMA
from flare.federation.report import ReportError, SimulationReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def write_plots(report: SimulationReport, directory: Path) -> list[Path]:
    """Write ``accuracy.png``, ``bytes.png``, ``scores.png`` (and ``privacy.png`` with DP on);
    return their paths."""
    try:
        return _write_plots(report, directory)
    except OSError as exc:
        raise ReportError(f"cannot write plots into {directory}: {exc.strerror or exc}") from None


def _pyplot():
    """``matplotlib.pyplot`` on the file-only backend (imported late: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_plots(report: SimulationReport, directory: Path) -> list[Path]:
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    rounds = [r.round for r in report.rounds]
    written = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rounds, [r.accuracy for r in report.rounds], marker="o", label="test accuracy")
    title, ylabel = "Global model accuracy", "test accuracy"
    if any(r.attack_success is not None for r in report.rounds):
        success = [
            float("nan") if r.attack_success is None else r.attack_success for r in report.rounds
        ]
        ax.plot(rounds, success, marker="s", color="tab:red", label="backdoor success")
        ax.legend(loc="center right")
        title = "Global model accuracy and backdoor success"
        ylabel = "share of test samples"
    ax.set(xlabel="round", ylabel=ylabel, title=title, ylim=(0, 1))
    ax.grid(alpha=0.3)
    written.append(_save(fig, directory / "accuracy.png"))

    written.append(_save(bytes_figure(report), directory / "bytes.png"))
    written.append(_save(scores_figure(report), directory / "scores.png", layout=False))
    if any(r.privacy is not None for r in report.rounds):
        written.append(_privacy_plot(report, directory / "privacy.png", plt))
    return written


def byte_unit(largest: float) -> tuple[str, int]:
    """The unit (and its size in bytes) that writes ``largest`` with at most four digits."""
    for name, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if largest >= size:
            return name, size
    return "B", 1


def bytes_figure(report: SimulationReport) -> "Figure":
    """Raw and sent bytes side by side on a linear axis from zero, so a ratio looks like one."""
    plt = _pyplot()
    rounds = [r.round for r in report.rounds]
    raw = [r.bytes_raw for r in report.rounds]
    sent = [r.bytes_up for r in report.rounds]
    unit, size = byte_unit(max([*raw, *sent], default=0))
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.4
    ax.bar([r - width / 2 for r in rounds], [b / size for b in raw], width, label="raw float32")
    ax.bar([r + width / 2 for r in rounds], [b / size for b in sent], width, label="sent (encoded)")
    ax.set(xlabel="round", ylabel=f"uploaded by all clients ({unit})")
    ax.set_title("Bytes on the wire per round")
    # headroom above the tallest bar keeps the legend off the bars
    ax.set_ylim(0, 1.25 * max(*raw, *sent, 1) / size)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", ncol=2)
    return fig


@dataclass(frozen=True)
class ScorePanel:
    """How a score is shown: a readable title and the one line that explains it."""

    title: str
    explanation: str


MI_RULE_PANELS = {
    "aligned_mi": ScorePanel(
        "Prediction rule: aligned mutual information (bits)",
        "how much the candidate's right labels tell about the truth; flagged below the cut-off",
    ),
    "fix_ratio": ScorePanel(
        "Change rule: share of changed labels fixed",
        "(fixed + 3) / (changed + 6) vs the current model; flagged below the cut-off "
        "and median cosine",
    ),
    "norm_ratio": ScorePanel(
        "Norm rule: update length / round median",
        "updates far longer than their peers would dominate the average; flagged above the cut-off",
    ),
    "cosine_to_median": ScorePanel(
        "Direction rule: cosine to the median update",
        "a reversed or off-course update points away from the crowd; flagged below the cut-off",
    ),
}
"""The MI filter's four rules, one panel each: the score each rule compares to its cut-off."""

OTHER_SCORE_PANELS = {
    "mi": ScorePanel("Mutual information (bits)", "I(predicted; true labels), blind to naming"),
    "accuracy": ScorePanel("Validation accuracy", "of the current model plus this update"),
    "fixes": ScorePanel("Labels fixed", "wrong under the current model, right with the update"),
    "breaks": ScorePanel("Labels broken", "right under the current model, wrong with the update"),
    "norm": ScorePanel("Update length", "Euclidean norm of the update"),
    "krum_score": ScorePanel("Krum score", "sum of squared distances to the nearest updates"),
    "krum_rank": ScorePanel("Krum rank", "0 is the update closest to its neighbours"),
    "cosine_to_server": ScorePanel(
        "Cosine to the server update", "alignment with the server's own training step"
    ),
    "trust": ScorePanel("FLTrust weight", "the cosine clipped at zero: the update's weight"),
    "bucket": ScorePanel("Bucket", "which bucket of averaged updates the client fell in"),
}


def mi_cutoffs(scores: dict[str, dict[str, float]], params: dict[str, Any]) -> dict[str, float]:
    """The MI filter's cut-off on each rule's score in one round, from the round's scores.

    Every cut-off is relative to the round's own medians, so the recorded scores are enough
    to redraw them; ``params`` are the run's aggregator parameters (defaults when empty).
    """
    rule = MIFilter(**params)
    rows = list(scores.values())
    cutoffs = {"norm_ratio": rule.norm_ratio_limit}
    if not rows:
        return cutoffs
    low_outlier_rules = [("aligned_mi", rule.mi_margin_bits, rule.mi_margin_fraction)]
    if rule.check_direction:
        low_outlier_rules.append(
            ("cosine_to_median", rule.cosine_margin, rule.cosine_margin_fraction)
        )
    for name, margin, fraction in low_outlier_rules:
        values = [row[name] for row in rows]
        median = median_of(values)
        spread = MAD_TO_SIGMA * median_of([abs(v - median) for v in values])
        cutoffs[name] = median - max(rule.z * spread, margin, fraction * median)
    cutoffs["fix_ratio"] = rule.fix_ratio_share * median_of([row["fix_ratio"] for row in rows])
    return cutoffs


def scores_figure(report: SimulationReport) -> "Figure":
    """One panel per score, readable titles, each MI rule's cut-off drawn per round."""
    plt = _pyplot()
    recorded = {name for r in report.rounds for s in r.scores.values() for name in s}
    mi_rules = report.config.get("aggregator") == "mi" and set(MI_RULE_PANELS) <= recorded
    if mi_rules:
        panels = MI_RULE_PANELS
    else:
        panels = {
            name: OTHER_SCORE_PANELS.get(name, ScorePanel(name, "reported by the aggregator"))
            for name in sorted(recorded)
        }
    columns = 2 if len(panels) > 1 else 1
    rows = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, 3.4 * rows), squeeze=False)
    params = report.config.get("aggregator_params") or {}
    cutoffs = {r.round: mi_cutoffs(r.scores, params) for r in report.rounds} if mi_rules else {}
    for ax, (name, panel) in zip(axes.flat, panels.items(), strict=False):
        _score_points(ax, report, name)
        drawn = [(number, cut[name]) for number, cut in cutoffs.items() if name in cut]
        for index, (round_number, cutoff) in enumerate(drawn):
            ax.hlines(
                cutoff,
                round_number - 0.35,
                round_number + 0.35,
                colors="black",
                linestyles="dashed",
                linewidth=1.2,
                label=None if index else "cut-off",
            )
        ax.set_title(f"{panel.title}\n{panel.explanation}", fontsize=9, loc="left")
        ax.set(xlabel="round")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if not panels:
        axes[0, 0].text(0.5, 0.5, "this aggregator reports no per-client scores", ha="center")
    entries = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(entries.values(), entries.keys(), loc="lower center", ncol=len(entries))
    fig.suptitle("Per-client filter scores (red: malicious, x: flagged)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def _score_points(ax, report: SimulationReport, name: str) -> None:
    """Scatter one score: honest blue, malicious red, flagged as crosses; one legend entry each."""
    groups: dict[tuple[bool, bool], tuple[list[int], list[float]]] = {}
    for record in report.rounds:
        malicious, flagged = set(record.malicious), set(record.flagged)
        for client, scores in record.scores.items():
            if name in scores:
                xs, ys = groups.setdefault((client in malicious, client in flagged), ([], []))
                xs.append(record.round)
                ys.append(scores[name])
    for (is_malicious, is_flagged), (xs, ys) in sorted(groups.items()):
        who = "malicious" if is_malicious else "honest"
        ax.scatter(
            xs,
            ys,
            s=18,
            c="tab:red" if is_malicious else "tab:blue",
            marker="x" if is_flagged else "o",
            label=f"{who}, {'flagged' if is_flagged else 'trusted'}",
        )


def _privacy_plot(report: SimulationReport, path: Path, plt) -> Path:
    """ε at δ after each round: every client's (thin) and the maximum (bold)."""
    accounted = [r for r in report.rounds if r.privacy is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    clients = sorted({c for r in accounted for c in r.privacy["clients"]})
    for client in clients:
        points = [
            (r.round, r.privacy["clients"][client])
            for r in accounted
            if client in r.privacy["clients"]
        ]
        ax.plot(*zip(*points, strict=True), color="tab:gray", alpha=0.3, linewidth=0.8)
    ax.plot(
        [r.round for r in accounted],
        [r.privacy["epsilon"] for r in accounted],
        marker="o",
        color="tab:purple",
        label="max over clients",
    )
    delta = (report.privacy or {}).get("delta")
    at = f" at δ = {delta:g}" if delta is not None else ""
    ax.set(xlabel="round", ylabel="ε", title=f"Client-level privacy spent{at}")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _save(fig, path: Path, layout: bool = True) -> Path:
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if layout:
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path

"""PNG plots of a run: accuracy, bytes on the wire, and the filter's scores."""

from pathlib import Path

from flare.federation.report import ReportError, SimulationReport


def write_plots(report: SimulationReport, directory: Path) -> list[Path]:
    """Write ``accuracy.png``, ``bytes.png``, ``scores.png`` (and ``privacy.png`` with DP on);
    return their paths."""
    try:
        return _write_plots(report, directory)
    except OSError as exc:
        raise ReportError(f"cannot write plots into {directory}: {exc.strerror or exc}") from None


def _write_plots(report: SimulationReport, directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    rounds = [r.round for r in report.rounds]
    written = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rounds, [r.accuracy for r in report.rounds], marker="o")
    ax.set(xlabel="round", ylabel="test accuracy", title="Global model accuracy", ylim=(0, 1))
    ax.grid(alpha=0.3)
    written.append(_save(fig, directory / "accuracy.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.4
    ax.bar(
        [r - width / 2 for r in rounds],
        [r.bytes_raw for r in report.rounds],
        width,
        label="raw float32",
    )
    ax.bar(
        [r + width / 2 for r in rounds],
        [r.bytes_up for r in report.rounds],
        width,
        label="sent (encoded)",
    )
    ax.set(xlabel="round", ylabel="bytes uploaded", title="Bytes on the wire per round")
    ax.set_yscale("log")
    ax.legend()
    written.append(_save(fig, directory / "bytes.png"))

    written.append(_scores_plot(report, directory / "scores.png", plt))
    if any(r.privacy is not None for r in report.rounds):
        written.append(_privacy_plot(report, directory / "privacy.png", plt))
    return written


def _scores_plot(report: SimulationReport, path: Path, plt) -> Path:
    """One panel per score the aggregator reported; malicious clients drawn in red."""
    score_names = sorted({name for r in report.rounds for s in r.scores.values() for name in s})
    panels = max(1, len(score_names))
    fig, axes = plt.subplots(panels, 1, figsize=(7, 2.6 * panels), squeeze=False)
    for ax, name in zip(axes[:, 0], score_names, strict=False):
        for record in report.rounds:
            malicious = set(record.malicious)
            flagged = set(record.flagged)
            for client, scores in record.scores.items():
                if name not in scores:
                    continue
                ax.scatter(
                    record.round,
                    scores[name],
                    c="tab:red" if client in malicious else "tab:blue",
                    marker="x" if client in flagged else "o",
                    s=18,
                )
        ax.set(xlabel="round", ylabel=name)
        ax.grid(alpha=0.3)
    if not score_names:
        axes[0, 0].text(0.5, 0.5, "this aggregator reports no per-client scores", ha="center")
    axes[0, 0].set_title("Per-client filter scores (red: malicious, x: flagged)")
    return _save(fig, path)


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


def _save(fig, path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path

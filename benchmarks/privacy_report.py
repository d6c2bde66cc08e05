"""The privacy benchmark's report: tables, sentences computed from the numbers, and the plot
(see bench_privacy.py)."""

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from common import environment_line
from privacy_membership import max_auc_under_dp
from privacy_settings import (
    AGGREGATORS,
    ATTACK,
    CLIENTS,
    CLIP,
    DELTA,
    MALICIOUS,
    NO_DP,
    PARTITIONS,
)

SUMMARISED = ("accuracy", "malicious_flagged", "honest_flagged", "noise_multiplier")


def cell(outcomes: list[dict[str, Any]], **keys: Any) -> dict[str, Any] | None:
    """The runs matching ``keys``, over seeds: means, sample stds (``<key>_std``), crashes.

    Crashed runs are counted, not averaged; a cell whose every run crashed has ``error``.
    """
    runs = [o for o in outcomes if all(o[k] == v for k, v in keys.items())]
    if not runs:
        return None
    finished = [run for run in runs if "error" not in run]
    summary: dict[str, Any] = {"runs": len(runs), "crashed": len(runs) - len(finished)}
    if not finished:
        summary["error"] = "every run crashed"
        return summary
    for key in SUMMARISED:
        values = [run[key] for run in finished if run.get(key) is not None]
        summary[key] = statistics.fmean(values) if values else None
        summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return summary


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def percent_spread(summary: dict[str, Any] | None, key: str) -> str:
    """``mean ± std`` in %, or a dash; crashed runs said so."""
    if summary is None or summary.get(key) is None:
        return "—"
    text = f"{100 * summary[key]:.1f} ± {100 * summary[key + '_std']:.1f}"
    return text + (f" ({summary['crashed']} crashed)" if summary["crashed"] else "")


def epsilon_label(epsilon: float | None) -> str:
    return "no DP" if epsilon is None else f"ε = {epsilon:g}"


def accuracy_table(outcomes: list[dict[str, Any]], epsilons: tuple[float, ...]) -> list[str]:
    columns = [
        (a, p, attacked) for p in PARTITIONS for attacked in (False, True) for a in AGGREGATORS
    ]
    header = [
        f"{PARTITIONS[p]}, {'attacked' if attacked else 'clean'}, {a}" for a, p, attacked in columns
    ]
    lines = [
        "| target | z | " + " | ".join(header) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for epsilon in (NO_DP, *epsilons):
        any_run = cell(outcomes, epsilon=epsilon)
        z = any_run.get("noise_multiplier") if any_run else None
        row = [epsilon_label(epsilon), "—" if z is None else f"{z:.3g}"]
        for aggregator, partition, attacked in columns:
            run = cell(
                outcomes,
                epsilon=epsilon,
                aggregator=aggregator,
                partition=partition,
                attacked=attacked,
            )
            row.append("crashed" if run and "error" in run else percent_spread(run, "accuracy"))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def detection_table(outcomes: list[dict[str, Any]], epsilons: tuple[float, ...]) -> list[str]:
    header = ["target"]
    for label in PARTITIONS.values():
        header += [
            f"{label}, attacked: attackers flagged",
            f"{label}, attacked: honest flagged",
            f"{label}, clean: honest flagged",
        ]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for epsilon in (NO_DP, *epsilons):
        row = [epsilon_label(epsilon)]
        for partition in PARTITIONS:
            attacked = cell(
                outcomes, epsilon=epsilon, aggregator="mi", partition=partition, attacked=True
            )
            clean = cell(
                outcomes, epsilon=epsilon, aggregator="mi", partition=partition, attacked=False
            )
            row += [
                percent_spread(attacked, "malicious_flagged"),
                percent_spread(attacked, "honest_flagged"),
                percent_spread(clean, "honest_flagged"),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def mia_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| setting | z | ε (accountant, this release) | AUC mean ± std | AUC max | "
        "largest AUC (ε, δ) allows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        z = row["noise_multiplier"]
        eps = row["accountant_epsilon"]
        lines.append(
            f"| {row['setting']} | {'—' if z is None else f'{z:.3g}'} "
            f"| {'—' if eps is None else ('∞' if math.isinf(eps) else f'{eps:.3g}')} "
            f"| {row['auc_mean']:.3f} ± {row['auc_std']:.3f} | {row['auc_max']:.3f} "
            f"| {row['auc_bound']:.3f} |"
        )
    return lines


def reading(
    outcomes: list[dict[str, Any]], epsilons: tuple[float, ...], mia: list[dict]
) -> list[str]:
    """Sentences computed from the numbers, so a rerun cannot leave stale prose."""
    lines = []
    clean_fedavg = {
        epsilon: cell(
            outcomes, epsilon=epsilon, aggregator="fedavg", partition="iid", attacked=False
        )
        for epsilon in (NO_DP, *epsilons)
    }
    accuracies = ", ".join(
        f"{epsilon_label(e)}: {percent(run['accuracy'])} %"
        for e, run in clean_fedavg.items()
        if run and "error" not in run
    )
    lines.append(f"- Clean IID FedAvg, final accuracy: {accuracies}.")
    for partition, label in PARTITIONS.items():
        caught = []
        for epsilon in (NO_DP, *epsilons):
            run = cell(
                outcomes, epsilon=epsilon, aggregator="mi", partition=partition, attacked=True
            )
            if run and "error" not in run and run["malicious_flagged"] is not None:
                caught.append(
                    f"{epsilon_label(epsilon)}: {percent(run['malicious_flagged'])} % of "
                    f"attackers, {percent(run['honest_flagged'])} % of honest"
                )
        lines.append(f"- MI filter, {label} with attackers, flagged: {'; '.join(caught)}.")
    within = [row for row in mia if row["auc_mean"] <= row["auc_bound"] + 1e-9]
    noised = [row for row in mia if row["epsilon"] is not None and not math.isinf(row["epsilon"])]
    lines.append(
        f"- Membership inference: the mean AUC lies within the (ε, δ) bound in {len(within)} of "
        f"{len(mia)} settings; without DP it is {mia[0]['auc_mean']:.3f}, and at the smallest ε "
        f"({noised[0]['epsilon']:g}) {noised[0]['auc_mean']:.3f}."
        if noised
        else "- Membership inference: no noised setting was measured."
    )
    return lines


def write_plot(
    outcomes: list[dict[str, Any]], epsilons: tuple[float, ...], mia: list[dict], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    # ε axis: the targets, with "no DP" drawn one step right of the largest.
    positions = {e: math.log2(e) for e in epsilons}
    no_dp_at = max(positions.values()) + 2
    ticks = [*positions.values(), no_dp_at]
    tick_labels = [f"{e:g}" for e in epsilons] + ["no DP"]

    ax = axes[0]
    styles = {"mi": "-", "fedavg": "--"}
    colours = {
        ("iid", False): "tab:blue",
        ("iid", True): "tab:red",
        ("dirichlet", False): "tab:green",
        ("dirichlet", True): "tab:orange",
    }
    for (partition, attacked), colour in colours.items():
        for aggregator in AGGREGATORS:
            xs, ys = [], []
            for epsilon in (*epsilons, NO_DP):
                run = cell(
                    outcomes,
                    epsilon=epsilon,
                    aggregator=aggregator,
                    partition=partition,
                    attacked=attacked,
                )
                if run and "error" not in run:
                    xs.append(no_dp_at if epsilon is None else positions[epsilon])
                    ys.append(run["accuracy"])
            label = f"{aggregator}, {PARTITIONS[partition]}, {'attacked' if attacked else 'clean'}"
            ax.plot(xs, ys, styles[aggregator], marker="o", color=colour, label=label)
    ax.set(
        xlabel="target ε (δ = 1e-5), after all rounds",
        ylabel="final test accuracy",
        title="Accuracy against ε",
        ylim=(0, 1),
    )
    ax.set_xticks(ticks, tick_labels)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)

    ax = axes[1]
    for partition, colour in (("iid", "tab:blue"), ("dirichlet", "tab:green")):
        xs, attackers, honest = [], [], []
        for epsilon in (*epsilons, NO_DP):
            run = cell(
                outcomes, epsilon=epsilon, aggregator="mi", partition=partition, attacked=True
            )
            if run and "error" not in run:
                xs.append(no_dp_at if epsilon is None else positions[epsilon])
                attackers.append(run["malicious_flagged"])
                honest.append(run["honest_flagged"])
        ax.plot(
            xs,
            attackers,
            "-",
            marker="o",
            color=colour,
            label=f"{PARTITIONS[partition]}: attackers flagged",
        )
        ax.plot(
            xs,
            honest,
            ":",
            marker="x",
            color=colour,
            label=f"{PARTITIONS[partition]}: honest flagged",
        )
    ax.set(
        xlabel="target ε (δ = 1e-5)",
        ylabel="share of submissions flagged",
        title="MI filter under DP (sign-flip attackers)",
        ylim=(-0.02, 1.02),
    )
    ax.set_xticks(ticks, tick_labels)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)

    ax = axes[2]
    noised = [r for r in mia if r["epsilon"] is not None and not math.isinf(r["epsilon"])]
    xs = [r["epsilon"] for r in noised]
    ax.errorbar(
        xs,
        [r["auc_mean"] for r in noised],
        yerr=[r["auc_std"] for r in noised],
        marker="o",
        capsize=3,
        label="loss-threshold attack (mean ± std)",
    )
    dense = np.geomspace(min(xs) / 2, max(xs) * 2, 200)
    ax.plot(
        dense,
        [max_auc_under_dp(e, DELTA) for e in dense],
        "k--",
        label="largest AUC (ε, δ)-DP allows",
    )
    for row, style in ((mia[0], "tab:red"), (mia[1], "tab:purple")):
        ax.axhline(row["auc_mean"], color=style, linestyle=":", label=f"{row['setting']}")
    ax.axhline(0.5, color="gray", linewidth=0.8)
    ax.set_xscale("log")
    ax.set(
        xlabel="ε of the attacked release (δ = 1e-5)",
        ylabel="ROC AUC",
        title="Membership inference on a published update",
        ylim=(0.4, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict[str, Any]) -> str:
    settings = results["settings"]
    outcomes, mia = results["runs"], results["membership_inference"]
    epsilons = tuple(settings["epsilons"])
    failures = [o for o in outcomes if "error" in o]
    lines = [
        "# Privacy benchmark: client-level DP",
        "",
        f"Produced by `{results['command']}`. {environment_line(results['environment'])} "
        f"{len(outcomes)} simulations and the attack took {results['wall_seconds'] / 60:.1f} min "
        f"of wall time on {settings['workers']} single-threaded worker processes.",
        "",
        f"Setup: digits, logistic regression, {CLIENTS} clients, {settings['rounds']} rounds, "
        f"seeds {', '.join(map(str, settings['seeds']))}, offline simulations. DP: each "
        f"device clips its update to L2 norm {CLIP:g} and adds Gaussian noise, z calibrated "
        f"so that a client taking part in every round ends at the target ε at δ = {DELTA:g} "
        "(RDP accountant of `dp_accounting`, replace-one neighbouring, sensitivity 2·clip; "
        "docs/privacy.md). Attacked: "
        f"{MALICIOUS} of {CLIENTS} clients mount `{ATTACK}` (they run the same client software, "
        "so their update starts from the clipped, noised honest one).",
        "",
        "![accuracy, MI filter and membership inference against ε](privacy.png)",
        "",
        "## Final accuracy (%)",
        "",
        f"Test accuracy after round {settings['rounds']}, mean ± sample standard deviation "
        f"over {len(settings['seeds'])} seed(s) (each seed changes the data split, the "
        "attackers, the initial model and the noise); z is the calibrated noise multiplier.",
        "",
        *accuracy_table(outcomes, epsilons),
        "",
        "## MI filter detection at each ε (%)",
        "",
        "Share of submissions flagged over all rounds: of attackers (higher is better) and of "
        "honest clients (lower is better); mean ± std over seeds.",
        "",
        *detection_table(outcomes, epsilons),
        "",
        "## Membership inference on a published update",
        "",
        f"{settings['mia_clients']} clients (about {settings['mia_samples_per_client']} samples "
        f"each) train {settings['mia_local_epochs']} local epochs from the initial model; each "
        "update is privatised with the z that spends exactly ε on this one release, encoded, "
        "decoded, and added to the initial model. The attacker ranks the client's own samples "
        "against as many held-out test samples by loss; AUC per client"
        f" and noise draw ({settings['mia_draws']} draws per client for noised settings). "
        "The last column is the area under the ROC envelope TPR ≤ e^ε·FPR + δ, "
        "1 − FPR ≤ e^ε·(1 − TPR) + δ: no test, however clever, beats it.",
        "",
        *mia_table(mia),
        "",
        "## Reading",
        "",
        *reading(outcomes, epsilons, mia),
        "",
    ]
    if failures:
        lines += [f"## Failed runs ({len(failures)})", ""]
        for outcome in failures:
            last_line = outcome["error"].strip().splitlines()[-1]
            lines.append(
                f"- {outcome['aggregator']} / {outcome['partition']} / "
                f"{epsilon_label(outcome['epsilon'])}: `{last_line}` (traceback in the JSON)"
            )
        lines.append("")
    return "\n".join(lines)

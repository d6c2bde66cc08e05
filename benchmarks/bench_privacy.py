"""Privacy benchmark: client-level DP's cost in accuracy, its effect on the MI filter, and
a membership-inference attack on published updates against the accountant's bound.

Run from the repository root:

    .venv/bin/python benchmarks/bench_privacy.py [--quick] [--workers 2] [--rounds 10]

Three measurements, all on digits with logistic regression (see docs/privacy.md for why
that model):

1. Accuracy against ε: offline simulations (the protocol adds nothing to what DP does)
   at each target ε and without DP, on IID and Dirichlet(0.5) data, with no attacker and
   with sign-flip attackers, under ``mi`` and ``fedavg``.
2. The MI filter's detection rates at each ε, from the same runs: how many attackers it
   flags, and how many honest (now noisy) clients.
3. A loss-threshold membership-inference attack on one published update per client:
   the attacker decodes the update blob, adds it to the global model it was computed
   from, and scores each sample by its loss; AUC of members (the client's training
   data) against non-members (held-out test data), with and without DP, next to the
   largest AUC any attack can reach under the accountant's (ε, δ).

Writes docs/bench/privacy.md, docs/bench/privacy.json and docs/bench/privacy.png.
"""

import argparse
import math
import shlex
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    OUTPUT_DIR,
    environment,
    environment_line,
    run_in_workers,
    write_results,
)
from sklearn.metrics import roc_auc_score

from flare.compression import decode_update
from flare.compression.base import UpdateBinding
from flare.federation.config import SimulationConfig
from flare.federation.setup import build_federation
from flare.federation.simulation import Simulation
from flare.privacy import DPParams, calibrate_noise_multiplier, epsilon_after, privatize
from flare.tensors import add

NAME = "privacy"
MODEL = "logreg"
CLIENTS = 10
MALICIOUS = 3
ATTACK = "sign-flip"
AGGREGATORS = ("mi", "fedavg")
DIRICHLET_ALPHA = 0.5
PARTITIONS = {"iid": "IID", "dirichlet": f"Dirichlet α={DIRICHLET_ALPHA:g}"}
CLIP = 1.0
DELTA = 1e-5
EPSILONS = (4.0, 16.0, 64.0, 256.0)
QUICK_EPSILONS = (16.0, 256.0)
NO_DP = None

EXP_LIMIT = 700.0
"""Above this ε, e^ε overflows a float64."""

MIA_CLIENTS = 40
"""Many small clients that train long: the regime where an update leaks membership most."""
MIA_LOCAL_EPOCHS = 20
MIA_EPSILONS = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)
MIA_DRAWS = 3
"""Noise draws per client and ε: the AUC's spread comes from the noise, not just the data."""


@dataclass(frozen=True)
class RunSpec:
    """One simulation of the accuracy grid; ``epsilon`` None is the run without DP."""

    aggregator: str
    partition: str
    attacked: bool
    epsilon: float | None
    rounds: int
    seed: int

    def config(self) -> SimulationConfig:
        dp = {} if self.epsilon is None else {"dp_clip": CLIP, "dp_epsilon": self.epsilon}
        return SimulationConfig(
            dataset="digits",
            model=MODEL,
            clients=CLIENTS,
            rounds=self.rounds,
            partition=self.partition,
            alpha=DIRICHLET_ALPHA,
            malicious=MALICIOUS if self.attacked else 0,
            attack=ATTACK,
            aggregator=self.aggregator,
            seed=self.seed,
            dp_delta=DELTA,
            **dp,
        )


def simulate(spec: RunSpec) -> dict[str, Any]:
    """Run one simulation; a crash becomes a recorded failure so the grid still completes."""
    started = time.perf_counter()
    outcome: dict[str, Any] = asdict(spec)
    try:
        report = Simulation(spec.config()).run()
    except Exception:
        outcome["error"] = traceback.format_exc()
    else:
        final = report.final
        outcome.update(
            accuracy=final["accuracy"],
            malicious_flagged=final["detection"]["malicious_flagged"],
            honest_flagged=final["detection"]["honest_flagged"],
            epsilon_reached=final["epsilon"],
            noise_multiplier=(report.privacy or {}).get("noise_multiplier"),
            accuracy_per_round=[record.accuracy for record in report.rounds],
        )
    outcome["seconds"] = round(time.perf_counter() - started, 3)
    return outcome


def grid(epsilons: tuple[float, ...], rounds: int, seeds: list[int]) -> list[RunSpec]:
    """The MI filter first: its runs are the longest, so they should not be left to the end."""
    return [
        RunSpec(aggregator, partition, attacked, epsilon, rounds, seed)
        for aggregator in AGGREGATORS
        for partition in PARTITIONS
        for attacked in (False, True)
        for epsilon in (NO_DP, *epsilons)
        for seed in seeds
    ]


# -- membership inference ----------------------------------------------------------------


def max_auc_under_dp(epsilon: float, delta: float) -> float:
    """The largest ROC AUC any membership test can reach against an (ε, δ)-DP release.

    (ε, δ)-DP confines every test's ROC curve to TPR ≤ e^ε·FPR + δ and, swapping the two
    worlds, 1 − FPR ≤ e^ε·(1 − TPR) + δ; the area under that envelope is the bound.
    """
    if epsilon > EXP_LIMIT:
        return 1.0  # e^ε overflows a float; the envelope is the whole square to within 1e-300
    fpr = np.linspace(0.0, 1.0, 200_001)
    envelope = np.minimum.reduce(
        [
            np.ones_like(fpr),
            math.exp(epsilon) * fpr + delta,
            1.0 - math.exp(-epsilon) * (1.0 - delta - fpr),
        ]
    )
    return float(np.trapezoid(np.clip(envelope, 0.0, 1.0), fpr))


def membership_attack(
    clients: int, local_epochs: int, epsilons: tuple[float, ...], draws: int, seed: int
) -> tuple[list[dict[str, Any]], float]:
    """AUC of a loss-threshold attack on each client's published round-1 update.

    Each client trains from the initial global model; its update is privatised at the
    noise multiplier that spends exactly ε on this one release (or sent raw: no DP, or
    only clipped), encoded as the device would, and decoded as the attacker would from
    IPFS. The attacker adds it to the global model and ranks samples by loss. Returns a
    row per setting and the clients' mean number of samples.
    """
    config = SimulationConfig(
        dataset="digits",
        model=MODEL,
        clients=clients,
        malicious=0,
        local_epochs=local_epochs,
        seed=seed,
    )
    federation = build_federation(config)
    dataset, spec = federation.dataset, federation.spec
    global_weights = federation.initial_weights
    settings: list[tuple[str, float | None, DPParams | None]] = [
        ("no DP", None, None),
        ("clip only", math.inf, DPParams(CLIP, 0.0)),
    ]
    for epsilon in epsilons:
        z = calibrate_noise_multiplier(epsilon, DELTA, releases=1)
        settings.append((f"ε = {epsilon:g}", epsilon, DPParams(CLIP, z)))
    aucs: dict[str, list[float]] = {label: [] for label, _, _ in settings}
    choose = np.random.default_rng([seed, 7])
    for index, client in enumerate(federation.clients):
        raw = client.local_update(federation.trainer, global_weights, seed=index).delta
        outsiders = choose.choice(len(dataset.test_labels), size=client.num_samples, replace=False)
        features = np.concatenate([client.features, dataset.test_features[outsiders]])
        labels = np.concatenate([client.labels, dataset.test_labels[outsiders]])
        membership = np.r_[np.ones(client.num_samples), np.zeros(len(outsiders))]
        for label, _, params in settings:
            for draw in range(draws if params and params.noise_multiplier else 1):
                sent = raw
                if params is not None:
                    noise = np.random.default_rng([seed, index, draw, 11])
                    sent = privatize(raw, params, noise)
                published = published_delta(federation, sent, client.client_id, spec)
                losses = per_sample_loss(
                    federation, add(global_weights, published), features, labels
                )
                aucs[label].append(float(roc_auc_score(membership, -losses)))
    rows = []
    for label, epsilon, params in settings:
        values = np.array(aucs[label])
        spent = None if params is None else epsilon_after(1, params.noise_multiplier, DELTA)
        rows.append(
            {
                "setting": label,
                "epsilon": epsilon,
                "noise_multiplier": None if params is None else params.noise_multiplier,
                "accountant_epsilon": spent,
                "auc_mean": float(values.mean()),
                "auc_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "auc_max": float(values.max()),
                "attacks": len(values),
                "auc_bound": 1.0 if spent is None else max_auc_under_dp(spent, DELTA),
            }
        )
    return rows, float(np.mean([c.num_samples for c in federation.clients]))


def published_delta(federation, delta, sender: str, spec) -> dict[str, np.ndarray]:
    """What the attacker reads: the update encoded as the device sends it, then decoded."""
    encoder = federation.codec.new_encoder(spec, 0)
    binding = UpdateBinding(sender, "bench", 1, 0, "initial", 1)
    return decode_update(encoder.encode(delta, binding), spec).delta


def per_sample_loss(federation, weights, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each sample under ``weights``: the attack's score (lower: member)."""
    federation.evaluator.set_weights(weights)
    module = federation.evaluator.module
    module.eval()
    with torch.no_grad():
        logits = module(torch.as_tensor(features, dtype=torch.float32))
        losses = torch.nn.functional.cross_entropy(
            logits, torch.as_tensor(labels, dtype=torch.int64), reduction="none"
        )
    return losses.numpy().astype(np.float64)


# -- report -------------------------------------------------------------------------------


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


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 rounds, 2 ε values, one seed"
    )
    parser.add_argument("--rounds", type=int, help="rounds per simulation (default 10; quick 2)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="simulation seeds (default 0 1 2; quick 0)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--output-dir", type=Path, default=OUTPUT_DIR, help="where the .md, .json, .png go"
    )
    return parser.parse_args()


def main() -> None:
    argv = sys.argv[1:]
    arguments = parse_arguments()
    quick = arguments.quick
    rounds = arguments.rounds or (2 if quick else 10)
    seeds = arguments.seeds or ([0] if quick else [0, 1, 2])
    epsilons = QUICK_EPSILONS if quick else EPSILONS
    mia_clients = CLIENTS if quick else MIA_CLIENTS
    mia_draws = 1 if quick else MIA_DRAWS
    env = environment()
    started = time.perf_counter()
    outcomes = run_in_workers(
        simulate, grid(epsilons, rounds, seeds), arguments.workers, "privacy runs"
    )
    torch.set_num_threads(1)
    mia, samples_per_client = membership_attack(
        mia_clients, MIA_LOCAL_EPOCHS, MIA_EPSILONS, mia_draws, seeds[0]
    )
    results = {
        "command": shlex.join([".venv/bin/python", "benchmarks/bench_privacy.py", *argv]),
        "environment": env,
        "settings": {
            "rounds": rounds,
            "seeds": seeds,
            "workers": arguments.workers,
            "model": MODEL,
            "clients": CLIENTS,
            "malicious": MALICIOUS,
            "attack": ATTACK,
            "clip": CLIP,
            "delta": DELTA,
            "epsilons": list(epsilons),
            "dirichlet_alpha": DIRICHLET_ALPHA,
            "mia_clients": mia_clients,
            "mia_samples_per_client": round(samples_per_client),
            "mia_local_epochs": MIA_LOCAL_EPOCHS,
            "mia_draws": mia_draws,
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
        "runs": outcomes,
        "membership_inference": mia,
    }
    arguments.output_dir.mkdir(parents=True, exist_ok=True)
    write_plot(outcomes, epsilons, mia, arguments.output_dir / f"{NAME}.png")
    text = markdown(results)
    write_results(NAME, text, results, arguments.output_dir)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

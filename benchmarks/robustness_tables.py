"""Tables, verdicts and heatmaps of ``bench_robustness.py``, drawn from the runs alone."""

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import environment_line

MI_FILTER = "mi"
NO_ATTACK = "none"
BACKDOOR = "backdoor"
CLEAN_TOLERANCE_POINTS = 3.0
"""Under an untargeted attack ``mi`` should stay within this many points of its clean run."""
BACKDOOR_LIMIT = 0.10
"""A backdoor is held off while its success rate stays below this."""

Block = tuple[str, int, str]
"""(dataset, clients, partition): one table of the report."""


def mean_std(values: list[float | None]) -> tuple[float, float] | None:
    """Mean and sample standard deviation (0 for one value); ``None`` if nothing is there."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    spread = statistics.stdev(present) if len(present) > 1 else 0.0
    return statistics.fmean(present), spread


def summarise(outcomes: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Per (dataset, clients, partition, aggregator, attack): mean ± sd over the seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in outcomes:
        key = (run["dataset"], run["clients"], run["partition"], run["aggregator"], run["attack"])
        groups[key].append(run)
    summary = {}
    for key, runs in groups.items():
        done = [run for run in runs if "error" not in run]
        summary[key] = {
            "runs": len(runs),
            "crashed": len(runs) - len(done),
            **{
                measure: mean_std([run[measure] for run in done])
                for measure in ("accuracy", "attack_success", "malicious_flagged", "honest_flagged")
            },
        }
    return summary


def percent(statistic: tuple[float, float] | None) -> str:
    return "—" if statistic is None else f"{100 * statistic[0]:.1f} ± {100 * statistic[1]:.1f}"


def axes(summary: dict) -> tuple[list[Block], list[str], list[str]]:
    """The blocks, aggregators and attacks present, in the grid's order."""
    blocks = sorted({key[:3] for key in summary}, key=lambda b: (b[0] != "digits", b[1], b[2]))
    aggregators = list(dict.fromkeys(key[3] for key in summary))
    aggregators.sort(key=lambda name: name != MI_FILTER)
    attacks = list(dict.fromkeys(key[4] for key in summary))
    attacks.sort(key=lambda name: name != NO_ATTACK)
    return blocks, aggregators, attacks


def block_title(block: Block) -> str:
    dataset, clients, partition = block
    label = "IID" if partition == "iid" else "Dirichlet α=0.5"
    return f"{dataset}, {clients} clients, {label}"


def block_table(
    summary: dict, block: Block, aggregators: list[str], attacks: list[str]
) -> list[str]:
    """Rules down, attacks across, final accuracy; the best mean of each column in bold.
    A backdoor column shows accuracy and then the backdoor's success rate."""
    lines = ["| rule | " + " | ".join(attacks) + " |", "|---|" + "---:|" * len(attacks)]
    best = {
        attack: max(
            (
                round(100 * c["accuracy"][0], 1)
                for name in aggregators
                if (c := summary.get((*block, name, attack))) and c["accuracy"]
            ),
            default=None,
        )
        for attack in attacks
    }
    for name in aggregators:
        cells = []
        for attack in attacks:
            cell = summary.get((*block, name, attack))
            statistic = cell["accuracy"] if cell else None
            text = percent(statistic)
            if statistic and round(100 * statistic[0], 1) == best[attack]:
                text = f"**{text}**"
            if attack == BACKDOOR and cell and cell["attack_success"]:
                text += f" / ASR {percent(cell['attack_success'])}"
            if cell and cell["crashed"]:
                text += f" ({cell['crashed']} of {cell['runs']} crashed)"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def judged_rules(aggregators: list[str], variants: dict[str, dict[str, Any]]) -> list[str]:
    """The rows the verdicts judge: ``mi`` and its variants; every other row is a baseline."""
    return [
        name
        for name in aggregators
        if name == MI_FILTER or variants.get(name, {}).get("rule") == MI_FILTER
    ]


def detection_table(summary: dict, blocks: list[Block], attacks: list[str], rule: str) -> list[str]:
    """What ``rule`` flagged, in %: malicious submissions (want 100), honest ones (want 0)."""
    lines = [
        "| setting | " + " | ".join(attacks) + " |",
        "|---|" + "---:|" * len(attacks),
    ]
    for block in blocks:
        cells = []
        for attack in attacks:
            cell = summary.get((*block, rule, attack))
            if not cell:
                cells.append("—")
                continue
            malicious = cell["malicious_flagged"]
            honest = cell["honest_flagged"]
            caught = "—" if malicious is None else f"{100 * malicious[0]:.0f}"
            cells.append(f"{caught} / {'—' if honest is None else f'{100 * honest[0]:.0f}'}")
        lines.append(f"| {block_title(block)} | " + " | ".join(cells) + " |")
    return lines


def verdicts(
    summary: dict,
    blocks: list[Block],
    aggregators: list[str],
    attacks: list[str],
    judged: list[str],
) -> list[dict]:
    """For each judged rule, block and attack: the rule against its own clean run and the
    best baseline (a row not judged: a variant of ``mi`` is no baseline for ``mi``)."""
    baselines = [name for name in aggregators if name not in judged]
    return [
        row
        for rule in judged
        for block in blocks
        for attack in attacks
        if (row := verdict(summary, block, attack, rule, baselines)) is not None
    ]


def verdict(
    summary: dict, block: Block, attack: str, rule: str, baselines: list[str]
) -> dict[str, Any] | None:
    """``rule`` in one block under one attack; ``None`` for the clean column or no runs."""
    judged = summary.get((*block, rule, attack))
    if attack == NO_ATTACK or not judged or not judged["accuracy"]:
        return None
    cells = {n: c for n in baselines if (c := summary.get((*block, n, attack))) and c["accuracy"]}
    row: dict[str, Any] = {
        "rule": rule,
        "block": block,
        "attack": attack,
        "accuracy": judged["accuracy"][0],
    }
    if attack == BACKDOOR:
        successes = {n: c["attack_success"][0] for n, c in cells.items() if c["attack_success"]}
        best = min(successes, key=successes.__getitem__, default=None)
        success = judged["attack_success"][0] if judged["attack_success"] else None
        row.update(
            best=best,
            best_value=successes.get(best) if best else None,
            success=success,
            holds=success is not None
            and (
                success < BACKDOOR_LIMIT or (best is not None and successes[best] >= BACKDOOR_LIMIT)
            ),
        )
        return row
    best = max(cells, key=lambda n: cells[n]["accuracy"][0], default=None)
    best_value = cells[best]["accuracy"][0] if best else None
    clean = summary.get((*block, rule, NO_ATTACK))
    drop = 100 * (clean["accuracy"][0] - row["accuracy"]) if clean and clean["accuracy"] else None
    row.update(
        best=best,
        best_value=best_value,
        drop_points=drop,
        holds=(drop is None or drop <= CLEAN_TOLERANCE_POINTS)
        and (best_value is None or row["accuracy"] >= best_value - 0.005),
    )
    return row


def verdict_table(rows: list[dict]) -> list[str]:
    lines = [
        "| rule | setting | attack | value | drop from its clean run (points) "
        "| best baseline | baseline's value | holds |",
        "|---|---|---|---:|---:|---|---:|---|",
    ]
    for row in rows:
        if row["attack"] == BACKDOOR:
            judged = "ASR " + ("—" if row["success"] is None else f"{100 * row['success']:.1f}")
            value = "—" if row["best_value"] is None else f"ASR {100 * row['best_value']:.1f}"
            drop = ""
        else:
            judged = f"{100 * row['accuracy']:.1f}"
            value = "—" if row["best_value"] is None else f"{100 * row['best_value']:.1f}"
            drop = "—" if row["drop_points"] is None else f"{row['drop_points']:+.1f}"
        lines.append(
            f"| {row['rule']} | {block_title(row['block'])} | {row['attack']} | {judged} | {drop} "
            f"| {row['best'] or '—'} | {value} | {'yes' if row['holds'] else '**no**'} |"
        )
    return lines


def holds_sentence(rule: str, rows: list[dict]) -> str:
    """How many of ``rule``'s cells hold, naming those that do not."""
    own = [row for row in rows if row["rule"] == rule]
    failing = [row for row in own if not row["holds"]]
    sentence = f"`{rule}` holds in {len(own) - len(failing)} of {len(own)} cells"
    if not failing:
        return sentence + "."
    return (
        sentence
        + "; it does not in: "
        + "; ".join(f"{block_title(r['block'])} / {r['attack']}" for r in failing)
        + "."
    )


def variants_line(variants: dict[str, dict[str, Any]]) -> list[str]:
    """The header's statement of which settings each variant row stands for."""
    if not variants:
        return []
    described = [
        f"`{label}` is `{definition['rule']}` with "
        + ", ".join(
            f"`{name}={json.dumps(value)}`" for name, value in definition["settings"].items()
        )
        for label, definition in variants.items()
    ]
    return [
        "Rows that are variants of a rule (library defaults otherwise): "
        + "; ".join(described)
        + ".",
        "",
    ]


def markdown(results: dict[str, Any], summary: dict) -> str:
    settings = results["settings"]
    blocks, aggregators, attacks = axes(summary)
    variants = results.get("variants", {})
    judged = judged_rules(aggregators, variants)
    rows = verdicts(summary, blocks, aggregators, attacks, judged)
    failures = [run for run in results["runs"] if "error" in run]
    lines = [
        "# Robustness benchmark: every rule under every attack",
        "",
        f"Produced by `{results['command']}`. {environment_line(results['environment'])} "
        f"{len(results['runs'])} runs took {results['wall_seconds'] / 60:.1f} min of wall time "
        f"on {settings['workers']} single-threaded worker processes.",
        *[
            f"Rerun since, replacing the same cells and seeds: `{rerun['command']}` "
            f"({rerun['runs']} runs). {environment_line(rerun['environment'])}"
            for rerun in results.get("reruns", [])
        ],
        "",
        f"Setup: the default MLP, {settings['rounds']} rounds, {settings['malicious_share']:.0%} "
        "of the clients malicious under each attack (none in the `none` column), library "
        f"defaults otherwise; seeds {', '.join(map(str, settings['seeds']))}. `tabular` is a "
        "fixed synthetic 4-class problem (3000 rows, 20 features) read from an `.npz`. "
        f"`counts x100`: sign-flip ×1 updates claiming 100× their sample count. See "
        "[attacks.md](../attacks.md) for every attack.",
        "",
        *variants_line(variants),
        "Cells: final test accuracy in %, mean ± sample standard deviation over the seeds; "
        "bold: the best mean of the column. The backdoor column adds its attack success rate "
        "(ASR: triggered test samples of other classes classified as the target).",
        "",
    ]
    for block in blocks:
        lines += [
            f"## {block_title(block)}",
            "",
            *block_table(summary, block, aggregators, attacks),
            "",
        ]
    for rule in judged:
        lines += [
            f"## What `{rule}` flagged",
            "",
            "Mean share of submissions flagged over all rounds, in %: malicious / honest.",
            "",
            *detection_table(summary, blocks, attacks, rule),
            "",
        ]
    lines += [
        "## Where `mi` holds",
        "",
        f"Untargeted attacks: `mi` holds when it stays within {CLEAN_TOLERANCE_POINTS:g} points of "
        "its own clean run and is at least as accurate as the best baseline (within half a "
        f"point). Backdoor: when its ASR stays below {BACKDOOR_LIMIT:.0%}, or no baseline's "
        "does either. Baselines are the rows other than `mi` and its variants; a variant is "
        "judged the same way.",
        "",
        *verdict_table(rows),
        "",
        *[holds_sentence(rule, rows) for rule in judged],
        "",
    ]
    if failures:
        lines += [f"## Failed runs ({len(failures)})", ""]
        for run in failures:
            last = run["error"].strip().splitlines()[-1]
            block = (run["dataset"], run["clients"], run["partition"])
            lines.append(
                f"- {run['aggregator']} / {run['attack']} / {block_title(block)} / "
                f"seed {run['seed']}: `{last}`"
            )
        lines.append("")
    return "\n".join(lines)


def heatmaps(results: dict[str, Any], summary: dict, path: Path) -> None:
    """One heatmap of mean final accuracy per block; backdoor cells also give the ASR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    blocks, aggregators, attacks = axes(summary)
    fig, panels = plt.subplots(
        len(blocks),
        1,
        figsize=(
            max(6.0, 1.6 + 0.9 * len(attacks)),
            1.0 + (0.6 + 0.42 * len(aggregators)) * len(blocks),
        ),
        squeeze=False,
    )
    for ax, block in zip(panels[:, 0], blocks, strict=True):
        grid = np.full((len(aggregators), len(attacks)), np.nan)
        for i, name in enumerate(aggregators):
            for j, attack in enumerate(attacks):
                cell = summary.get((*block, name, attack))
                if cell and cell["accuracy"]:
                    grid[i, j] = cell["accuracy"][0]
                    text = f"{100 * cell['accuracy'][0]:.0f}"
                    if attack == BACKDOOR and cell["attack_success"]:
                        text += f"\nASR {100 * cell['attack_success'][0]:.0f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7)
        ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(attacks)), attacks, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(aggregators)), aggregators, fontsize=8)
        ax.set_title(block_title(block), fontsize=9)
    fig.suptitle("Final test accuracy, % (backdoor: and its success rate)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

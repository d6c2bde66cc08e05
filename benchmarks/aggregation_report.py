"""The report of ``bench_aggregation.py``: ``docs/bench/aggregation.md`` from its results."""

from typing import Any

from common import environment_line


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Robust aggregation: Flare vs Flower",
        "",
        f"Produced by `{results['command']}`. {environment_line(results['environment'])} "
        f"Flower {results['flower']} runs in a venv of its own on the same numpy; both "
        "sides load the same `.npy` inputs in their own process, one after the other, "
        f"with one BLAS thread ({results['threads']['flare']}), taking "
        f"{results['turns']} turns each, alternately. Times are the fastest of "
        f"{results['repeats']} calls per turn, after one warm-up, over all turns; "
        "CPU time is the process's own, which the load of a shared machine disturbs less.",
        "",
        "Inputs: float32 updates around a common direction (σ = 0.05) with noise "
        "(σ = 0.02), 30 % of them attackers sending −4× their update, in two tensors "
        "(a weight matrix and a 1,000-value bias). `f` is 30 % of the round for both; "
        "Multi-Krum keeps `n − f` and, like Flower, weights them by the claimed sample "
        'counts (`count_weighting="claimed"`; Flare\'s default caps each claim at the '
        "round's median claim); trimmed mean cuts 30 % from each end. Flare's time "
        "includes checking the inputs and the per-client scores it reports.",
        "",
        "| rule | clients | coordinates | Flare (s) | Flower (s) | speed-up | "
        "speed-up (CPU) | target | identical? |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in results["rows"]:
        verdict = "yes" if row["identical"] else "**no**"
        verdict += f" (rel. diff {row['relative_difference']:.1e}"
        if row["rule"] in ("krum", "multi-krum"):
            verdict += ", same selection" if row["same_selection"] else ", **other selection**"
        verdict += ")"
        met = "" if row["meets_target"] else " (missed)"
        lines.append(
            f"| {row['rule']} | {row['clients']} | {row['coordinates']:,} | "
            f"{row['flare_wall_min']:.3f} | {row['flower_wall_min']:.3f} | "
            f"{row['speedup_wall']:.1f}× | {row['speedup_cpu']:.1f}× | "
            f"≥ {row['target']:.0f}×{met} | {verdict} |"
        )
    lines += ["", *floor_table(results["rows"])]
    lines += [
        "Flare's time includes the checks and scores; the rest of it is filling blocks of "
        "coordinates with the clients' values (one row per coordinate) and the selection "
        "itself: numpy's vectorised sort of each row (trimmed mean; median up to 256 "
        "clients) or partition and the largest value below the middle (median beyond), and "
        "the trimmed mean's ascending float64 adds, one per kept rank."
        + missed_targets(results["rows"])
        + thin_margins(results["rows"]),
        "",
        "How Flare gets there: Krum's pairwise distances come from a BLAS Gram matrix of "
        "block-centred float64 updates, each with a proven error interval around the "
        "reproducible elementwise distance; only distances whose interval leaves a "
        "neighbour set or a nine-digit score undecided are computed elementwise "
        "(`flare/aggregation/distances.py`), so scores, selection and bytes are those of "
        "the elementwise computation on every machine. Median and trimmed mean sort or "
        "partition each coordinate's client values a block of coordinates at a time (1 MiB "
        "of values, widened to at least 1,024 coordinates where 4 MiB hold them; the "
        "median orders −0.0 before +0.0 by counting, only where it selected a zero, how "
        "many clients' own values there have their sign bit set), and check "
        "finiteness through the distances they report instead of a pass of their own (a "
        "client's squared distance to a finite result is finite only if all its values "
        "are; the distances are formed for about 1 MiB of widened clients at a time, each "
        "client's still summed as one contiguous vector). The trimmed mean adds the kept "
        "values in ascending order, starting from +0.0, each rank widened once to float64 "
        "and added as one contiguous float64 add over the block, so its bytes depend on "
        "the values alone. Flower computes all n² distances pair by pair and takes "
        "`np.median`/`np.partition` over the stacked layers.",
        "",
    ]
    if results["openblas_environment"]:
        lines += [
            "OpenBLAS variables set on this machine, for both sides: "
            + ", ".join(f"`{k}={v}`" for k, v in results["openblas_environment"].items())
            + ".",
            "",
        ]
    return "\n".join(lines)


def floor_table(rows: list[dict[str, Any]]) -> list[str]:
    """Where the coordinate-wise rules' floor lies: the bare ordering of the same values
    (its copying shown apart) plus the checks and scores Flare reports, and the speed-up
    over Flower that leaves."""
    measured = [row for row in rows if "flare_selection_floor_wall_min" in row]
    if not measured:
        return []
    lines = [
        "Where the floor lies for the coordinate-wise rules: *checks + scores* is checking "
        "the updates' structure and computing each client's reproducible distance to the "
        "result (reported, and read to refuse non-finite values; Flower does neither); "
        "*bare ordering* is copying the same values into one row per coordinate and "
        "ordering every row with numpy alone (`np.partition` at the middle and the largest "
        "value below it for the median, `np.sort` for the trimmed mean: no checks, no "
        "scores, no sums), of which *copying* is the copy alone, one transposing "
        "`np.copyto` per tensor out of the stacked `.npy` array (Flare gets one array per "
        "client and copies each client's slice of a block on its own, which costs more); "
        "*Flower ÷ floor* is the speed-up an exact rule reporting these scores would show "
        "if it cost no more than checks, scores and bare ordering together.",
        "",
        "| rule | clients | Flare (s) | checks + scores (s) | bare ordering (s) | "
        "of which copying (s) | Flower (s) | Flower ÷ floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in measured:
        floor = row["flare_bookkeeping_wall_min"] + row["flare_selection_floor_wall_min"]
        copying = row.get("flare_filling_floor_wall_min")
        lines.append(
            f"| {row['rule']} | {row['clients']} | {row['flare_wall_min']:.3f} | "
            f"{row['flare_bookkeeping_wall_min']:.3f} | "
            f"{row['flare_selection_floor_wall_min']:.3f} | "
            f"{'—' if copying is None else f'{copying:.3f}'} | {row['flower_wall_min']:.3f} | "
            f"{row['flower_wall_min'] / floor:.1f}× |"
        )
    return [*lines, ""]


def missed_targets(rows: list[dict[str, Any]]) -> str:
    missed = [
        f"{row['rule']} at {row['clients']} clients ({row['speedup_wall']:.1f}× of "
        f"{row['target']:.0f}×)"
        for row in rows
        if not row["meets_target"]
    ]
    return f" Targets missed in this run: {', '.join(missed)}." if missed else ""


THIN_MARGIN = 1.15
"""A speed-up under 1.15× its target is reported as thin: between runs on the shared
benchmark machine, the ratio has moved by more than that."""


def thin_margins(rows: list[dict[str, Any]]) -> str:
    thin = [
        f"{row['rule']} at {row['clients']} clients ({row['speedup_wall']:.1f}× of "
        f"{row['target']:.0f}×)"
        for row in rows
        if row["meets_target"] and row["speedup_wall"] < THIN_MARGIN * row["target"]
    ]
    if not thin:
        return ""
    return (
        f" Met by a thin margin (under {THIN_MARGIN - 1:.0%} above the target), which the load "
        f"of a shared machine can undo in another run: {', '.join(thin)}."
    )

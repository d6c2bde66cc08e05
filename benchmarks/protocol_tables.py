"""The tables of ``bench_protocol.py``: its results as the Markdown of docs/bench/protocol.md."""


def render(result: dict) -> str:
    crypto, over = result["crypto"], result["overhead"]
    lines = [
        "# Protocol overhead",
        "",
        f"Command: `{result['command'].strip()}` — {result['date']}{at_revision(result)}, "
        f"{result['machine']}.",
        f"{result['config']['clients']} clients ({result['config']['malicious']} sign-flip "
        f"attackers), MI filter, committee of {over['committee_median']:g} (median seats), "
        f"{result['config']['rounds']} rounds, its chain and store in memory, as `flare "
        "simulate` runs by default. The same protocol with its chain journaled to a file and "
        "its blobs in a directory (`--state`, `--store`) runs beside them (the journaled rows), "
        "and the auditor replays those runs. Medians over repeats; the runs alternate, each side "
        "first in every other repeat, and a ratio is the median of the repeats' ratios. "
        "Members side by side: the round less the aggregate-phase time "
        "of every member but the slowest (members holding the same blobs share one recomputation, "
        "which counts in full in the member that ran it). 1-minute load average at the end "
        f"{over['load_average_1min']}: other jobs share the two cores, and CPU time moves "
        "less with them than wall time.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| offline simulation, s/round | {over['offline_s_per_round']:.3f} |",
        f"| protocol simulation, s/round | {over['protocol_s_per_round']:.3f} |",
        f"| **protocol / offline**, members one after another | **{over['ratio']:.2f}x** |",
        f"| protocol, members side by side as deployed, s/round "
        f"| {over['parallel_members_s_per_round']:.3f} |",
        f"| **protocol / offline**, members side by side | **{over['parallel_ratio']:.2f}x** |",
        f"| offline simulation, CPU s/round | {over['offline_cpu_s_per_round']:.3f} |",
        f"| protocol simulation, CPU s/round | {over['protocol_cpu_s_per_round']:.3f} |",
        f"| protocol / offline, CPU time | {over['cpu_ratio']:.2f}x |",
        *rounds_alone_row(over),
        f"| VRF prove / s | {crypto['vrf_prove_per_s']:.0f} |",
        f"| VRF verify / s | {crypto['vrf_verify_per_s']:.0f} |",
        f"| PoP verify / s | {crypto['pop_verify_per_s']:.0f} |",
        "",
        "Where a protocol round's time goes (median seconds per round):",
        "",
        "| phase | s/round | what it covers |",
        "|---|---:|---|",
    ]
    meaning = {
        "train": "local training of every client",
        "encode": "update encoding (codec + canonical container)",
        "storage": "blob puts (each hashed to name it) and pins; gets verified against "
        "their CID, but for a blob put in the same attempt, served from the bytes hashed",
        "chain": "submit, propose and vote transactions",
        "vrf": "every participant's VRF proof, plus the winners' seat claims",
        "aggregate": "the committee's aggregate work, every member's summed (members holding "
        "the same blobs share one recomputation, counted once)",
        "evaluate": "test accuracy of the new global model (reporting only)",
        "verify (auditor)": "`flare verify` recomputing the round from chain and store",
    }
    for name, seconds in over["phase_median_s"].items():
        lines.append(f"| {name} | {seconds:.4f} | {meaning.get(name, '')} |")
    lines += extra_lines(result)
    anvil = result["anvil"]
    if anvil is None:
        lines += ["", "Anvil not installed: no real-node comparison (run scripts/setup.sh)."]
    else:
        lines += [
            "",
            "The same protocol run on a local Anvil (every call a signed, mined transaction) "
            f"against the in-memory chain, alternating, {anvil.get('rounds', 3)} rounds each:",
            "",
            "| chain | s/round |",
            "|---|---:|",
            f"| in-memory | {anvil['memory_s_per_round']:.3f} |",
            f"| Anvil | {anvil['anvil_s_per_round']:.3f} |",
            f"| **Anvil / in-memory** | **{anvil['ratio']:.2f}x** |",
        ]
    return "\n".join(lines + fleet_lines(result["fleet"])) + "\n"


def extra_lines(result: dict) -> list[str]:
    """Where the protocol's extra time goes, and the share of it that is the chain's pairing
    checks, estimated from the rates measured above (older tables did not record it)."""
    over, crypto = result["overhead"], result["crypto"]
    if "extra_median_s" not in over:
        return []
    extra = over["extra_median_s"]
    claims = extra["seat_claims_per_round"]
    registrations = result["config"]["clients"] / result["config"]["rounds"]
    pairing = claims / crypto["vrf_verify_per_s"] + registrations / crypto["pop_verify_per_s"]
    said = {
        "total": "**the whole**: protocol (members side by side) less offline",
        "set-up": "set-up and teardown beyond the offline run's: chain, task, "
        "every registration (its proof of possession checked on chain)",
        "vrf": "VRF proofs and the chain's checks of the seat claims",
        "chain": "the other transactions: seal, submit, propose, vote",
        "storage": "update and model puts (hashed to name them) and pins, model reads",
        "aggregate": "aggregate phase beyond the offline aggregate and decode",
        "train": "train phase beyond the offline one (the same work: noise)",
        "evaluate": "evaluate phase beyond the offline one (the same work)",
        "rest": "the rest of the rounds: stepping the actors, the chain's views, the report",
    }
    lines = [
        "",
        "Where the protocol's extra time goes (median over repeats of each part, s/round; "
        "each repeat's parts sum to its whole, the medians need not):",
        "",
        "| part | s/round | what it covers |",
        "|---|---:|---|",
    ]
    lines += [f"| {name} | {extra[name]:.4f} | {said[name]} |" for name in said]
    lines += [
        "",
        f"Of that, the chain's pairing checks alone, at the rates above: {claims:g} seat "
        f"claims a round and {registrations:.3g} registrations a round (the run's "
        f"{result['config']['clients']}, over {result['config']['rounds']} rounds) come to "
        f"{pairing:.4f} s/round, {pairing / over['offline_s_per_round']:.1%} of the offline "
        "round: each check is one pairing equation (two Miller loops, one final "
        "exponentiation), which no work outside the chain can stand in for.",
    ]
    return lines


def rounds_alone_row(over: dict) -> list[str]:
    """The rounds-alone ratio's row (older tables did not record it)."""
    if "rounds_alone_ratio" not in over:
        return []
    rows = [
        "| protocol / offline, the rounds alone (set-up and teardown apart) "
        f"| {over['rounds_alone_ratio']:.2f}x |"
    ]
    if "journaled_parallel_ratio" in over:  # older tables had the journaled run alone
        rows += [
            "| journaled protocol, members side by side, s/round "
            f"| {over['journaled_parallel_s_per_round']:.3f} |",
            "| journaled protocol / offline, members side by side "
            f"| {over['journaled_parallel_ratio']:.2f}x |",
            "| journaled protocol / offline, the rounds alone "
            f"| {over['journaled_rounds_alone_ratio']:.2f}x |",
        ]
    return rows


def at_revision(section: dict) -> str:
    """Where a section says which revision it measured (older tables did not record it)."""
    return f" at `{section['revision']}`" if "revision" in section else ""


def fleet_lines(fleet: dict) -> list[str]:
    phases = ", ".join(f"{name} {seconds:.2f}" for name, seconds in fleet["timings"].items())
    walls = fleet.get("run_wall_s_of_each", [])  # older tables recorded one run
    each_run = (
        f" (the median of {len(walls)} runs: {', '.join(f'{w:.1f}' for w in walls)}; "
        "every other row is that run's, but peak RSS, the largest of them)"
        if len(walls) > 1
        else ""
    )
    return [
        "",
        f"## A fleet: {fleet['clients']:,} clients, one round",
        "",
        f"Command: `{fleet['command']}` — {fleet['date']}{at_revision(fleet)}. "
        f"{fleet['clients']:,} clients ({fleet['malicious']} sign-flip attackers), `mi`, one "
        "round through the protocol on the in-memory chain and store, in a fresh "
        "single-threaded process (1-minute load average at its end "
        f"{fleet['load_average_1min']}: other jobs share the two cores). The run includes "
        "set-up: building the federation, every participant's keys and registration. "
        "Issue 13's target: at most 10 s and 1 GB.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| run, wall s{each_run} | {fleet['run_wall_s']:.1f} |",
        f"| run, CPU s | {fleet['run_cpu_s']:.1f} |",
        f"| set-up (before the round), s | {fleet['setup_s']:.1f} |",
        f"| the round, s | {fleet['round_s']:.1f} |",
        f"| run with the {fleet['committee']} members side by side, s "
        f"| {fleet['side_by_side_s']:.1f} |",
        f"| the slowest member's aggregate phase, s | {fleet['slowest_member_aggregate_s']:.1f} |",
        f"| recomputations of the aggregate (shared by members holding the same blobs) "
        f"| {fleet['recomputations']} |",
        f"| accepted / flagged | {fleet['accepted']} / {fleet['flagged']} |",
        f"| peak RSS, MiB | {fleet['peak_rss_mb']:.0f} |",
        f"| RSS after imports, MiB | {fleet['imports_rss_mb']:.0f} |",
        "",
        f"The round's phases (wall s, every client's summed): {phases}.",
    ]

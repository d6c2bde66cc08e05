"""Dishonest committee: ``flare simulate --dishonest-committee`` at default parameters, 20 seeds.

Why: issue 11 found that the README's command finalized a poisoned aggregate (round 7 of
seed 0; seeds 1 and 5 too), because a committee of 4 seats could be captured by 3
attackers. This runs the same command, unchanged but for ``--seed``, in a fresh process per
seed (``--workers`` at a time, single-threaded as the CLI is by default), keeps each run's
chain and blobs, and then:

- reads the run's JSON report: per attempt, the seats, the attackers among them, the
  proposals the attackers made and what became of each (finalized, or the approvals it got);
  per round, whether the finalized model is the one an honest member recomputes;
- replays the task with ``flare verify`` on the kept chain and blobs: a poisoned aggregate
  (one the task's rule does not give) would not re-derive.

Run::

    .venv/bin/python benchmarks/bench_dishonest_committee.py   # docs/bench/committee.{md,json}
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import (
    OUTPUT_DIR,
    SINGLE_THREAD_ENVIRONMENT,
    environment,
    environment_line,
    write_results,
)

from flare.federation.report import proposal_tally

COMMAND = ("simulate", "--dishonest-committee")
"""The README's command; the benchmark adds only the seed and where to keep the run."""
CONFIG_SHOWN = ("clients", "malicious", "attack", "rounds", "committee", "min_committee", "quorum")
"""The defaults the table's caption names, as each run's report records them."""
VERIFIED = re.compile(r"task \d+: (\d+)/(\d+) rounds re-derived")


def flare(*arguments: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``flare *arguments`` in a fresh single-threaded interpreter, and its wall seconds."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "flare", *arguments],
        env={**os.environ, **SINGLE_THREAD_ENVIRONMENT},
        capture_output=True,
        text=True,
        check=False,
    )
    return completed, time.perf_counter() - started


def run_seed(seed: int, workdir: Path) -> dict[str, Any]:
    """One seed's run and its replay: the report's account of every attempt, the printed
    round table, and what ``flare verify`` re-derived."""
    run_dir = workdir / f"seed-{seed}"
    state, store, report_path = run_dir / "chain.db", run_dir / "blobs", run_dir / "report.json"
    kept = ("--state", str(state), "--store", str(store))
    simulated, seconds = flare(*COMMAND, "--seed", str(seed), *kept, "--report", str(report_path))
    outcome: dict[str, Any] = {
        "seed": seed,
        "exit_code": simulated.returncode,
        "seconds": round(seconds, 1),
        # The last line names the run's temporary report path: nothing the table needs.
        "table": "\n".join(
            line for line in simulated.stdout.splitlines() if not line.startswith("report written")
        ),
        "stderr": simulated.stderr[-2000:],
    }
    if not report_path.exists():
        return outcome
    outcome.update(summarize(json.loads(report_path.read_text())))
    verified, _ = flare("verify", *kept)
    match = VERIFIED.search(verified.stdout)
    outcome["verify"] = {
        "exit_code": verified.returncode,
        "rounds_rederived": int(match[1]) if match else 0,
        "rounds_on_chain": int(match[2]) if match else None,
    }
    return outcome


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Per round and attempt, from the report alone: seats, attackers, their proposals."""
    rounds = []
    for record in report["rounds"]:
        protocol = record["protocol"]
        attempts = [attempt_summary(a) for a in (*protocol["failed_attempts"], protocol)]
        rounds.append(
            {
                "round": record["round"],
                "attempts": attempts,
                "accuracy": record["accuracy"],
                "global_model": protocol["global_model"],
                "honest_model": protocol["honest_model"],
                "poisoned": protocol["global_model"] != protocol["honest_model"]
                or any(p["attacker"] and p["finalized"] for p in attempts[-1]["proposals"]),
            }
        )
    last = report["rounds"][-1]["protocol"] if report["rounds"] else None
    return {
        "config": {name: report["config"][name] for name in CONFIG_SHOWN},
        "rounds_configured": report["config"]["rounds"],
        "interrupted": report["interrupted"],
        "task_completed": bool(last and last["task_completed"]),
        "rounds": rounds,
    }


def attempt_summary(attempt: dict[str, Any]) -> dict[str, Any]:
    """Marks each proposal of the attempt with whether an attacker made it and how it fared."""
    attackers = set(attempt["attackers_seated"])
    proposals = []
    for proposal in attempt["proposals"]:
        tally = proposal_tally(attempt, proposal)
        proposals.append(
            {
                "proposer": proposal["proposer"],
                "attacker": proposal["proposer"] in attackers,
                "approvals": tally.approvals,
                "rejections": tally.rejections,
                "finalized": tally.finalized,
                "model": proposal["model"],
            }
        )
    return {
        "attempt": attempt["attempt"],
        "seats": len(attempt["committee"]),
        "attackers_seated": len(attackers),
        "approvals_needed": attempt["approvals_needed"],
        "finalized": attempt["finalized"],
        "proposals": proposals,
    }


def seed_row(outcome: dict[str, Any]) -> dict[str, Any]:
    """The table's figures for one seed."""
    rounds = outcome.get("rounds", [])
    attempts = [a for r in rounds for a in r["attempts"]]
    theirs = [p for a in attempts for p in a["proposals"] if p["attacker"]]
    verify = outcome.get("verify", {})
    finished = (
        outcome["exit_code"] == 0
        and not outcome.get("interrupted")
        and outcome.get("task_completed", False)
        and len(rounds) == outcome.get("rounds_configured")
    )
    return {
        "seed": outcome["seed"],
        "rounds": len(rounds),
        "attempts": len(attempts),
        "rounds_with_attackers_seated": sum(
            any(a["attackers_seated"] for a in r["attempts"]) for r in rounds
        ),
        "attacker_seats": sorted({(a["attackers_seated"], a["seats"]) for a in attempts}),
        "attacker_proposals": len(theirs),
        "attacker_proposals_finalized": sum(p["finalized"] for p in theirs),
        "attacker_best_approvals": max((p["approvals"] for p in theirs), default=0),
        "approvals_needed": sorted({a["approvals_needed"] for a in attempts}),
        "poisoned_rounds_final": sum(r["poisoned"] for r in rounds),
        "rounds_rederived": verify.get("rounds_rederived", 0),
        "verify_ok": verify.get("exit_code") == 0,
        "finished": finished,
        "final_accuracy": rounds[-1]["accuracy"] if rounds else None,
        "seconds": outcome["seconds"],
    }


def seats_text(pairs: list[tuple[int, int]]) -> str:
    return ", ".join(f"{attackers} of {seats}" for attackers, seats in pairs)


def defaults_text(config: dict[str, Any]) -> str:
    return (
        f"{config['clients']} clients, {config['malicious']} {config['attack']} attackers, "
        f"{config['rounds']} rounds, committee k = {config['committee']}, minCommittee "
        f"{config['min_committee']}, quorum {config['quorum']} bps"
    )


def markdown(result: dict[str, Any], env: dict[str, Any]) -> str:
    rows = result["rows"]
    totals = result["totals"]
    lines = [
        "# Dishonest committee at default parameters",
        "",
        "Produced by `.venv/bin/python benchmarks/bench_dishonest_committee.py`. "
        + environment_line(env),
        "",
        f"Each seed ran `flare {' '.join(COMMAND)} --seed S` (every other option at its "
        f"default: {defaults_text(result['config'])}) in a fresh process, keeping its chain "
        "and blobs; then `flare verify` replayed the task from them. Attackers who win seats "
        "propose the plain average of every submission and approve only their own proposal. "
        "**attackers' seats**: attackers of seats, over the seed's attempts; **their "
        "proposals**: proposals an attacker made, how many of them finalized, and the most "
        "approvals one got against the quorum; **poisoned final**: rounds whose finalized model "
        "is an attacker's proposal or not what an honest member recomputes (from the report); "
        "**verify**: rounds `flare verify` re-derived from the chain and blobs; **finished**: "
        "exit code 0, the task completed on chain with every round.",
        "",
        "| seed | rounds | attempts | rounds with attackers seated | attackers' seats "
        "| their proposals | finalized | most approvals | poisoned final | verify | finished "
        "| final accuracy | wall s |",
        "|---:|---:|---:|---:|---|---:|---:|---|---:|---|:-:|---:|---:|",
    ]
    for row in rows:
        needed = "/".join(str(n) for n in row["approvals_needed"])
        accuracy = "—" if row["final_accuracy"] is None else f"{row['final_accuracy']:.3f}"
        lines.append(
            f"| {row['seed']} | {row['rounds']} | {row['attempts']} "
            f"| {row['rounds_with_attackers_seated']} | {seats_text(row['attacker_seats'])} "
            f"| {row['attacker_proposals']} | {row['attacker_proposals_finalized']} "
            f"| {row['attacker_best_approvals']} of {needed} | {row['poisoned_rounds_final']} "
            f"| {row['rounds_rederived']}/{row['rounds']} | "
            f"{'yes' if row['finished'] else '**no**'} | {accuracy} | {row['seconds']:.1f} |"
        )
    lines += [
        "",
        f"**Over {len(rows)} seeds**: {totals['finished']} of {len(rows)} runs finished, "
        f"{totals['rounds']} rounds in {totals['attempts']} attempts; attackers held seats in "
        f"{totals['rounds_with_attackers_seated']} rounds and made "
        f"{totals['attacker_proposals']} proposals, of which "
        f"{totals['attacker_proposals_finalized']} finalized; "
        f"{totals['poisoned_rounds_final']} poisoned rounds final; `flare verify` re-derived "
        f"{totals['rounds_rederived']} of {totals['rounds']} rounds.",
        "",
        f"The round table of seed {rows[0]['seed']}, as the command prints it:",
        "",
        "```",
        result["first_table"].rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0 .. SEEDS-1")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args()
    env = environment()
    with (
        tempfile.TemporaryDirectory(prefix="flare-bench-committee-") as scratch,
        ThreadPoolExecutor(args.workers) as pool,
    ):
        outcomes = list(pool.map(lambda s: run_seed(s, Path(scratch)), range(args.seeds)))
    for outcome in outcomes:
        if outcome["exit_code"] != 0:
            print(f"seed {outcome['seed']} exited {outcome['exit_code']}:\n{outcome['stderr']}")
    rows = [seed_row(o) for o in outcomes]
    summed = (
        "rounds",
        "attempts",
        "rounds_with_attackers_seated",
        "attacker_proposals",
        "attacker_proposals_finalized",
        "poisoned_rounds_final",
        "rounds_rederived",
        "finished",
    )
    result = {
        "command": ["flare", *COMMAND],
        "config": outcomes[0]["config"],
        "rows": rows,
        "totals": {key: sum(int(row[key]) for row in rows) for key in summed},
        "first_table": outcomes[0]["table"],
        "runs": [{k: v for k, v in o.items() if k not in ("table", "stderr")} for o in outcomes],
    }
    write_results(
        "committee", markdown(result, env), {"environment": env, **result}, args.output_dir
    )
    print(markdown(result, env))


if __name__ == "__main__":
    main()

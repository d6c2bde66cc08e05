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
import shlex
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from common import OUTPUT_DIR, environment, run_in_workers, write_results
from privacy_membership import membership_attack
from privacy_report import markdown, write_plot
from privacy_settings import (
    ATTACK,
    CLIENTS,
    CLIP,
    DELTA,
    DIRICHLET_ALPHA,
    EPSILONS,
    MALICIOUS,
    MIA_CLIENTS,
    MIA_DRAWS,
    MIA_EPSILONS,
    MIA_LOCAL_EPOCHS,
    MODEL,
    NAME,
    QUICK_EPSILONS,
    RunSpec,
    grid,
)

from flare.federation.simulation import Simulation


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

"""Protocol overhead: where a round's time goes, VRF throughput, and protocol vs offline.

Run: ``.venv/bin/python benchmarks/bench_protocol.py`` (writes docs/bench/protocol.md and
docs/bench/protocol.json). The overhead ratio is measured in one run, alternating the
offline and the protocol simulation of the same configuration, and compares medians,
because these machines are noisy. A fleet (``--fleet``, 1,000 clients by default) then runs
one round through the protocol in a fresh single-threaded process, for its time and peak
memory; ``--fleet-only`` re-runs just the fleet and replaces its section of the existing
tables, and ``--keep-fleet`` runs everything but the fleet and keeps the section the tables
hold (each section names the revision it was measured at).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import torch
from common import measure_in_child, source_revision
from protocol_tables import render

from flare.chain import InMemoryChain
from flare.crypto import vrf
from flare.crypto.bls import SecretKey, prove_possession, verify_possession
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.protocol.verify import verify_task
from flare.federation.report import RoundRecord, SimulationReport, process_peak_rss_mb
from flare.federation.simulation import Simulation
from flare.storage import DirectoryStore

DOCS = Path(__file__).resolve().parent.parent / "docs" / "bench"


def crypto_rates(samples: int) -> dict[str, float]:
    """Operations per second of the VRF and proof-of-possession primitives."""
    key = SecretKey.from_seed(bytes(range(32)))
    public = key.public_key()
    message = vrf.vrf_input(31337, bytes(20), 1, 1, 0, bytes(32))
    address = bytes(range(20))

    def rate(operation) -> float:
        start = time.perf_counter()
        for _ in range(samples):
            operation()
        return samples / (time.perf_counter() - start)

    proof = vrf.prove(key, message)
    pop = prove_possession(key, address)
    return {
        "vrf_prove_per_s": rate(lambda: vrf.prove(key, message)),
        "vrf_verify_per_s": rate(lambda: vrf.verify(public, message, proof)),
        "pop_verify_per_s": rate(lambda: verify_possession(public, address, pop)),
    }


SIDES = ("offline", "protocol", "journaled")
"""The runs of each repeat: offline; the protocol as ``flare simulate`` runs it by default
(chain and store in this process's memory); and the protocol with its chain journaled to a
file and its blobs in a directory (``--state``, ``--store``), which the auditor replays."""


def overhead(config: SimulationConfig, repeats: int, workdir: Path) -> dict:
    """Seconds per round offline and through the protocol, alternating, plus phase splits."""
    wall: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    rounds_alone: dict[str, list[float]] = {side: [] for side in SIDES}
    side_by_side: dict[str, list[float]] = {"protocol": [], "journaled": []}
    phases, verify_seconds, committees = [], [], []
    extra: list[dict[str, float]] = []
    for repeat in range(repeats):
        run_dir = workdir / f"run-{repeat}"
        shutil.rmtree(run_dir, ignore_errors=True)  # a chain file left there would be reopened
        journaled = ProtocolConfig(state=run_dir / "chain.db", store=run_dir / "blobs")
        runs = {
            "offline": Simulation(config).run,
            "protocol": ProtocolSimulation(config).run,
            "journaled": ProtocolSimulation(config, journaled).run,
        }
        # Each side goes first in every other repeat and last in the others: a load that
        # rises or falls while a repeat runs weighs on every side alike over the repeats.
        order = SIDES if repeat % 2 == 0 else SIDES[::-1]
        timed = {side: timed_run(runs[side], config.rounds) for side in order}
        for side in SIDES:
            report, wall_s, cpu_s = timed[side]
            wall[side].append(wall_s)
            cpu[side].append(cpu_s)
            rounds_alone[side].append(seconds_per_round(report))
        serial_extra = {
            side: sum(members_one_after_another(record) for record in timed[side][0].rounds)
            for side in side_by_side
        }
        for side, seconds in side_by_side.items():
            seconds.append(wall[side][-1] - serial_extra[side] / config.rounds)
        report = timed["protocol"][0]
        phases += [record.timings for record in report.rounds]
        committees += [max(1, len(record.protocol["committee"])) for record in report.rounds]
        protocol_s = side_by_side["protocol"][-1]
        offline_report, offline_s = timed["offline"][0], wall["offline"][-1]
        extra.append(
            extra_time(offline_report, offline_s, report, protocol_s, serial_extra["protocol"])
        )
        with InMemoryChain(run_dir / "chain.db") as chain:
            started = time.perf_counter()
            verdict = verify_task(chain, DirectoryStore(run_dir / "blobs"), 1)
            verify_seconds.append((time.perf_counter() - started) / config.rounds)
        assert verdict.ok, "benchmark run failed its own audit"
    names = sorted({name for p in phases for name in p})
    split = {name: statistics.median(p.get(name, 0.0) for p in phases) for name in names}
    split["verify (auditor)"] = statistics.median(verify_seconds)

    def ratio(numerators: list[float], denominators: list[float]) -> float:
        return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))

    return {
        "offline_s_per_round": statistics.median(wall["offline"]),
        "protocol_s_per_round": statistics.median(wall["protocol"]),
        "ratio": ratio(wall["protocol"], wall["offline"]),
        "parallel_members_s_per_round": statistics.median(side_by_side["protocol"]),
        "parallel_ratio": ratio(side_by_side["protocol"], wall["offline"]),
        "offline_cpu_s_per_round": statistics.median(cpu["offline"]),
        "protocol_cpu_s_per_round": statistics.median(cpu["protocol"]),
        "cpu_ratio": ratio(cpu["protocol"], cpu["offline"]),
        "rounds_alone_ratio": ratio(rounds_alone["protocol"], rounds_alone["offline"]),
        "journaled_parallel_s_per_round": statistics.median(side_by_side["journaled"]),
        "journaled_parallel_ratio": ratio(side_by_side["journaled"], wall["offline"]),
        "journaled_rounds_alone_ratio": ratio(rounds_alone["journaled"], rounds_alone["offline"]),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "extra_median_s": {name: statistics.median(e[name] for e in extra) for name in extra[0]},
        "phase_median_s": split,
        "committee_median": statistics.median(committees),
        "repeats": repeats,
    }


def timed_run(
    run: Callable[[], SimulationReport], rounds: int
) -> tuple[SimulationReport, float, float]:
    """``run()``'s report, and its wall and CPU seconds per round."""
    started, cpu = time.perf_counter(), time.process_time()
    report = run()
    return report, (time.perf_counter() - started) / rounds, (time.process_time() - cpu) / rounds


def extra_time(
    offline: SimulationReport,
    offline_s: float,
    protocol: SimulationReport,
    protocol_s: float,
    serial_extra: float,
) -> dict[str, float]:
    """Where one protocol run's seconds per round (members side by side) exceed the offline
    run's beside it: set-up, each phase less its offline counterpart, and the rest of the
    rounds (stepping the actors, the chain's views, the report); the parts sum to the whole."""
    rounds = len(protocol.rounds)

    def phases(report: SimulationReport) -> dict[str, float]:
        summed: dict[str, float] = {}
        for record in report.rounds:
            for name, seconds in record.timings.items():
                summed[name] = summed.get(name, 0.0) + seconds / len(report.rounds)
        return summed

    p, o = phases(protocol), phases(offline)
    p["aggregate"] = p.get("aggregate", 0.0) - serial_extra / rounds
    p_rounds = seconds_per_round(protocol) - serial_extra / rounds
    o_rounds = seconds_per_round(offline)
    parts = {
        "set-up": (protocol_s - p_rounds) - (offline_s - o_rounds),
        **{name: p.get(name, 0.0) for name in ("vrf", "chain", "storage")},
        "aggregate": p.get("aggregate", 0.0) - o.get("aggregate", 0.0) - o.get("decode", 0.0),
        "train": p.get("train", 0.0) - o.get("train", 0.0),
        "evaluate": p.get("evaluate", 0.0) - o.get("evaluate", 0.0),
        "rest": (p_rounds - sum(p.values())) - (o_rounds - sum(o.values())),
    }
    seats = statistics.median(len(record.protocol["committee"]) for record in protocol.rounds)
    return {"total": protocol_s - offline_s, **parts, "seat_claims_per_round": seats}


def seconds_per_round(report: SimulationReport) -> float:
    """The rounds' own seconds, on average: the run less its set-up (data, and for the
    protocol the task's creation and every registration) and its teardown."""
    return sum(record.seconds for record in report.rounds) / len(report.rounds)


ANVIL_ROUNDS = 3
"""Rounds of each Anvil comparison run: a mined transaction per call makes a round some
seconds long there."""


def anvil_versus_memory(config: SimulationConfig, repeats: int, workdir: Path) -> dict | None:
    """Seconds per round on a real Anvil (signed transactions) and on the in-memory chain,
    :data:`ANVIL_ROUNDS` rounds of ``config`` each."""
    config = replace(config, rounds=ANVIL_ROUNDS)
    import socket

    from flare.node.anvil import AnvilConfig, AnvilNode, find_anvil
    from flare.node.process import NodeError

    try:
        binary = find_anvil()
    except NodeError:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = AnvilNode(AnvilConfig(state_dir=workdir / "anvil", port=port), binary)
    node.start()
    memory, anvil = [], []
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            ProtocolSimulation(config).run()
            memory.append((time.perf_counter() - started) / config.rounds)
            started = time.perf_counter()
            ProtocolSimulation(config, ProtocolConfig(chain_url=node.config.rpc_url)).run()
            anvil.append((time.perf_counter() - started) / config.rounds)
    finally:
        node.stop()
    return {
        "memory_s_per_round": statistics.median(memory),
        "anvil_s_per_round": statistics.median(anvil),
        "ratio": statistics.median(a / m for a, m in zip(anvil, memory, strict=True)),
        "rounds": ANVIL_ROUNDS,
    }


def fleet_round(clients: int) -> dict:
    """One round of ``clients`` (three in ten sign-flip attackers, ``mi``) through the
    protocol on the in-memory chain and store, in this process, which must be fresh."""
    torch.set_num_threads(1)
    imports_rss_mb = process_peak_rss_mb()
    config = SimulationConfig(
        clients=clients, malicious=clients * 3 // 10, aggregator="mi", rounds=1
    )
    wall, cpu = time.perf_counter(), time.process_time()
    report = ProtocolSimulation(config).run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    (record,) = report.rounds
    members = max(1, len(record.protocol["committee"]))
    return {
        "clients": clients,
        "malicious": config.malicious,
        "run_wall_s": round(wall, 3),
        "run_cpu_s": round(cpu, 3),
        "setup_s": round(wall - record.seconds, 3),
        "round_s": round(record.seconds, 3),
        "side_by_side_s": round(wall - members_one_after_another(record), 3),
        "slowest_member_aggregate_s": record.protocol["slowest_member_aggregate_s"],
        "committee": members,
        "recomputations": record.protocol["recomputations"]["count"],
        "accepted": len(record.accepted),
        "flagged": len(record.flagged),
        "timings": record.timings,
        "imports_rss_mb": round(imports_rss_mb, 1),
        "peak_rss_mb": round(process_peak_rss_mb(), 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def members_one_after_another(record: RoundRecord) -> float:
    """Seconds of a round's aggregate phase that only one process playing every member
    spends: deployed, each member is its own device and they work side by side, so the
    round waits for the slowest member's aggregate phase, not for their sum."""
    return record.timings.get("aggregate", 0.0) - record.protocol["slowest_member_aggregate_s"]


def fleet_in_child(clients: int, repeats: int) -> dict:
    """:func:`fleet_round` ``repeats`` times, each in a fresh single-threaded interpreter (its
    own peak memory): the run of median wall time, with every run's wall time and the
    largest peak memory of them all, since one run's time moves with the machine's load."""
    runs = [measure_in_child(__file__, "--fleet-child", str(clients)) for _ in range(repeats)]
    median_run = sorted(runs, key=lambda run: run["run_wall_s"])[(repeats - 1) // 2]
    command = " ".join(["python benchmarks/bench_protocol.py", *sys.argv[1:]])
    return {
        "command": command,
        "revision": source_revision(),
        **median_run,
        "run_wall_s_of_each": [run["run_wall_s"] for run in runs],
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=SimulationConfig.rounds, help="rounds of each run"
    )
    parser.add_argument("--crypto-samples", type=int, default=200)
    parser.add_argument("--fleet", type=int, default=1000, help="clients of the one-round fleet")
    parser.add_argument(
        "--fleet-repeats", type=int, default=3, help="fleet runs, the median one reported"
    )
    parser.add_argument(
        "--fleet-only",
        action="store_true",
        help="run only the fleet and replace its section of docs/bench/protocol.{json,md}",
    )
    parser.add_argument(
        "--keep-fleet",
        action="store_true",
        help="run all but the fleet and keep its section of docs/bench/protocol.{json,md}",
    )
    parser.add_argument("--fleet-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/flare-bench-protocol"))
    args = parser.parse_args()
    if args.fleet_child is not None:
        print(json.dumps(fleet_round(args.fleet_child)))
        return
    if args.fleet_only:
        fleet = fleet_in_child(args.fleet, args.fleet_repeats)
        # Read last: a run keeping the fleet may have rewritten the rest meanwhile.
        result = json.loads((DOCS / "protocol.json").read_text())
        result["fleet"] = fleet
        write(result)
        return
    torch.set_num_threads(1)
    config = SimulationConfig(clients=10, malicious=3, aggregator="mi", rounds=args.rounds)
    result = {
        "command": "python benchmarks/bench_protocol.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": source_revision(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "config": config.to_dict(),
        "crypto": crypto_rates(args.crypto_samples),
        "overhead": overhead(config, args.repeats, args.workdir),
        "anvil": anvil_versus_memory(config, args.repeats, args.workdir),
    }
    # The kept section is read last: a --fleet-only run may have replaced it meanwhile.
    kept = json.loads((DOCS / "protocol.json").read_text()) if args.keep_fleet else None
    result["fleet"] = kept["fleet"] if kept else fleet_in_child(args.fleet, args.fleet_repeats)
    write(result)


def write(result: dict) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "protocol.json").write_text(json.dumps(result, indent=2))
    (DOCS / "protocol.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()

"""Kubo add/cat throughput through ``KuboStore`` vs Kubo's CLI; processes vs in-memory.

Why: every model update and global model goes through ``KuboStore``, which does more
than Kubo's CLI does (it computes the CID itself before the upload, and re-hashes every
byte it reads back). This measures what that costs, against the same daemon and on the
same bytes, in alternation so that machine load hits both sides alike.

The CLI side is ``ipfs add --cid-version=1 --raw-leaves -Q --pin=false`` and ``ipfs cat``
with ``IPFS_PATH`` on the daemon's repository, so it talks to the running daemon through
the same RPC API; its times include starting the ``ipfs`` process, which is reported
separately (``ipfs version`` as the floor). Each repetition uses fresh bytes, so neither
side finds its blocks already stored.

Second part: the run of ``tests/federation/test_e2e_processes.py`` without the kills (six
``flare participant run`` processes on Anvil with one-second blocks and this Kubo, two
sign-flip attackers, three rounds), timed per round from the chain's own block numbers,
against ``ProtocolSimulation`` of the same task on the in-memory chain.

Run::

    .venv/bin/python benchmarks/bench_kubo.py            # writes docs/bench/kubo.{md,json}
"""

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import OUTPUT_DIR, environment, environment_line, write_results

from flare.chain import RoundFinalized, RoundOpened, TaskStatus, UpdateSubmitted
from flare.chain.rpc.chain import RpcChain
from flare.cli import main as flare_cli
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.task_parameters import TaskParameters
from flare.node import AnvilConfig, AnvilNode, KuboConfig, KuboNode
from flare.storage import KuboStore

CLIENTS = 6
ATTACKERS = (1, 4)
ROUNDS = 3
TASK_OPTIONS = ["--model", "logreg", "--rounds", str(ROUNDS), "--min-clients", "4",
                "--committee", "4", "--min-committee", "2",
                "--submission-window", "20", "--vote-window", "20"]  # fmt: skip
FUNDING = hex(10**21)
SIZES = {"16 KiB": 16 * 1024, "1 MiB": 1024 * 1024, "16 MiB": 16 * 1024 * 1024}
REPETITIONS = {"16 KiB": 21, "1 MiB": 11, "16 MiB": 5}


def fresh_bytes(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def timed(
    action: Callable[..., object], *arguments: object, **options: object
) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action(*arguments, **options)
    return time.perf_counter() - start, result


def cli(node: KuboNode, *arguments: str, data: bytes | None = None) -> bytes:
    return subprocess.run(
        [str(node.binary), *arguments],
        input=data,
        env=node.environment(),
        capture_output=True,
        check=True,
    ).stdout


def measure(node: KuboNode, store: KuboStore, size: int, repetitions: int) -> dict[str, float]:
    """Median seconds for each of the four operations, alternating Flare and CLI."""
    samples: dict[str, list[float]] = {
        "flare_add": [],
        "cli_add": [],
        "flare_cat": [],
        "cli_cat": [],
    }
    for repetition in range(repetitions):
        flare_blob = fresh_bytes(size, 2 * repetition)
        cli_blob = fresh_bytes(size, 2 * repetition + 1)
        seconds, flare_cid = timed(store.put, flare_blob)
        samples["flare_add"].append(seconds)
        seconds, output = timed(
            cli, node, "add", "--cid-version=1", "--raw-leaves", "-Q", "--pin=false", data=cli_blob
        )
        samples["cli_add"].append(seconds)
        cli_cid = output.decode().strip()
        seconds, read = timed(store.get, flare_cid)
        assert read == flare_blob
        samples["flare_cat"].append(seconds)
        seconds, read = timed(cli, node, "cat", cli_cid)
        assert read == cli_blob
        samples["cli_cat"].append(seconds)
    return {name: statistics.median(values) for name, values in samples.items()}


def run(output_dir: Path, fleet: bool) -> None:
    env = environment()
    with tempfile.TemporaryDirectory(prefix="flare-bench-kubo-") as directory:
        node = KuboNode(KuboConfig(Path(directory), api_port=_free_port()))
        node.start()
        try:
            startup = statistics.median(timed(cli, node, "version")[0] for _ in range(11))
            with KuboStore(node.api_url) as store:
                rows = {
                    label: measure(node, store, SIZES[label], REPETITIONS[label]) for label in SIZES
                }
            version = cli(node, "version", "--number").decode().strip()
            rounds = processes_versus_memory(Path(directory) / "fleet", node) if fleet else None
        finally:
            node.stop()
    lines = [
        "# Kubo throughput: Flare's KuboStore vs Kubo's CLI",
        "",
        "Produced by `.venv/bin/python benchmarks/bench_kubo.py`. " + environment_line(env),
        "",
        f"One offline Kubo {version} daemon (`KuboNode`, loopback only); both sides talk to "
        "it over its RPC API. **add**: `KuboStore.put` (computes the CID in Python, uploads, "
        "checks Kubo's CID) vs `ipfs add --cid-version=1 --raw-leaves -Q --pin=false` on "
        "stdin. **cat**: `KuboStore.get` (downloads and re-verifies the CID) vs `ipfs cat`. "
        "Medians over the repetitions shown, fresh bytes each time, the two sides "
        "alternating. **x CLI** = Flare time / CLI time (below 1: Flare is faster). The CLI "
        f"times include starting the `ipfs` process: `ipfs version` takes {startup * 1e3:.0f} "
        "ms here, and **x CLI-start** divides by the CLI time less that.",
        "",
        "| blob | reps | Flare add ms | CLI add ms | add x CLI | add x CLI-start | "
        "Flare add MB/s | Flare cat ms | CLI cat ms | cat x CLI | cat x CLI-start | "
        "Flare cat MB/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, times in rows.items():
        megabytes = SIZES[label] / 1e6
        cells = [label, str(REPETITIONS[label])]
        for operation in ("add", "cat"):
            flare_time, cli_time = times[f"flare_{operation}"], times[f"cli_{operation}"]
            cells += [
                f"{flare_time * 1e3:.1f}",
                f"{cli_time * 1e3:.1f}",
                f"{flare_time / cli_time:.2f}",
                _ratio(flare_time, cli_time - startup),
                f"{megabytes / flare_time:.1f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_rounds_section(rounds), ""]
    data = {
        "environment": env,
        "kubo_version": version,
        "cli_startup_seconds": startup,
        "sizes_bytes": SIZES,
        "repetitions": REPETITIONS,
        "median_seconds": rows,
        "rounds": rounds,
    }
    write_results("kubo", "\n".join(lines), data, output_dir)
    print("\n".join(lines))


def processes_versus_memory(root: Path, kubo: KuboNode) -> dict[str, object]:
    """Seconds per round of six participant processes on Anvil, and of the simulation.

    Phases come from block numbers (one block a second): **submit** is round open to the
    last submission, **wait** the rest of the submission window (a window is counted in
    blocks, so nobody can vote before it ends however early everyone submitted), **vote**
    the window's end to finalization (downloads, aggregation, proposal stagger, votes).
    """
    anvil = AnvilNode(AnvilConfig(root / "anvil", port=_free_port(), block_time=1))
    anvil.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        config, contract = _prepare_task(root, anvil, kubo)
        chain = RpcChain(anvil.rpc_url, contract, chain_id=31337)
        launched = time.monotonic()
        for index in range(CLIENTS):
            processes.append(_launch_participant(root, config, index))
        while chain.task(1).registered_count < CLIENTS:
            time.sleep(0.5)
        startup = time.monotonic() - launched
        keystore = ["--keystore", str(root / "keys" / "creator")]
        flare_cli(["task", "start", "--config", str(config), *keystore, "--task", "1"])
        started = time.monotonic()
        while chain.task(1).status != TaskStatus.COMPLETED:
            time.sleep(0.5)
        wall = (time.monotonic() - started) / ROUNDS
        phases = _round_phases(chain)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        anvil.stop()
    memory_started = time.perf_counter()
    ProtocolSimulation(
        SimulationConfig(model="logreg", clients=CLIENTS, malicious=len(ATTACKERS), rounds=ROUNDS),
        ProtocolConfig(task=TaskParameters(expected_committee=4, min_committee=2, min_clients=4)),
    ).run()
    memory = (time.perf_counter() - memory_started) / ROUNDS
    return {
        "startup_s": startup,
        "processes_s_per_round": wall,
        "memory_s_per_round": memory,
        "phases_blocks": phases,
    }


def _prepare_task(root: Path, anvil: AnvilNode, kubo: KuboNode) -> tuple[Path, str]:
    """Deploy, write the network file, split data, make and fund keys, create the task."""
    deployment = root / "deployment.json"
    flare_cli(["deploy", "--dev-account", "--rpc", anvil.rpc_url, "--out", str(deployment)])
    password = root / "password.txt"
    password.write_text("benchmark passphrase\n")
    config = root / "flare.json"
    network = {
        "chain_id": 31337,
        "rpc_url": anvil.rpc_url,
        "deployment": str(deployment),
        "ipfs_api_url": kubo.api_url,
        "poll_interval": 0.5,
        "password_file": str(password),
    }
    config.write_text(json.dumps(network))
    flare_cli(["task", "split-data", "--clients", str(CLIENTS), "--out", str(root / "data")])
    for who in ["creator", *(f"client-{i}" for i in range(CLIENTS))]:
        keystore = root / "keys" / who
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            flare_cli(["participant", "keys", "new", "--keystore", str(keystore),
                       "--password-file", str(password)])  # fmt: skip
        address = printed.getvalue().split()[0]
        body = {"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance",
                "params": [address, FUNDING]}  # fmt: skip
        httpx.post(anvil.rpc_url, json=body, timeout=10).raise_for_status()
    creator = ["--keystore", str(root / "keys" / "creator")]
    flare_cli(["task", "create", "--config", str(config), *creator, *TASK_OPTIONS])
    return config, json.loads(deployment.read_text())["address"]


def _launch_participant(root: Path, config: Path, index: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "flare", "participant", "run", "--config", str(config),
        "--keystore", str(root / "keys" / f"client-{index}"), "--task", "1",
        "--data", str(root / "data" / f"client-{index}.npz"), "--name", f"client-{index}",
    ]  # fmt: skip
    if index in ATTACKERS:
        command += ["--attack", "sign-flip"]
    with (root / f"client-{index}.log").open("ab") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip


def _round_phases(chain: RpcChain) -> list[dict[str, int]]:
    """Blocks per phase of each finalized attempt (see :func:`processes_versus_memory`)."""
    events = chain.events([RoundOpened, UpdateSubmitted, RoundFinalized], task_id=1)
    phases = []
    for final in (e for e in events if isinstance(e, RoundFinalized)):
        opened = next(
            e for e in events
            if isinstance(e, RoundOpened) and (e.round, e.attempt) == (final.round, final.attempt)
        )  # fmt: skip
        last_submission = max(
            e.block_number for e in events
            if isinstance(e, UpdateSubmitted)
            and (e.round, e.attempt) == (final.round, final.attempt)
        )  # fmt: skip
        phases.append(
            {
                "round": final.round,
                "attempt": final.attempt,
                "submit": last_submission - opened.block_number,
                "wait": opened.submission_deadline - last_submission,
                "vote": final.block_number - opened.submission_deadline,
                "total": final.block_number - opened.block_number,
            }
        )
    return phases


def _rounds_section(rounds: dict[str, Any] | None) -> list[str]:
    if rounds is None:
        return ["Processes vs in-memory: not run (`--no-processes`)."]
    lines = [
        "## Six participant processes vs the in-memory simulation",
        "",
        f"Same task (logreg on digits, 6 clients of which 2 sign-flip, MI aggregator, "
        f"{ROUNDS} rounds, committee 4 expected / 2 minimum, 20-block windows). Processes: "
        f"{rounds['processes_s_per_round']:.1f} s per round on Anvil (1 s blocks) and Kubo, "
        f"after {rounds['startup_s']:.0f} s from launch to all six registered. In-memory "
        f"`ProtocolSimulation`: {rounds['memory_s_per_round']:.2f} s per round. Where a "
        "round's blocks (= seconds) go:",
        "",
        "| round | attempt | submit | wait for window end | vote to finalized | total |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in rounds["phases_blocks"]:
        lines.append(
            f"| {phase['round']} | {phase['attempt']} | {phase['submit']} | {phase['wait']} | "
            f"{phase['vote']} | {phase['total']} |"
        )
    lines += [
        "",
        "The submission window is counted in blocks, so a round lasts at least that window "
        "however fast the participants are; the rest is the vote phase (downloads, one "
        "aggregation per member, the proposal stagger, votes). The in-memory simulation has "
        "no clock and no process boundaries, so it measures computation alone.",
    ]
    return lines


def _ratio(flare_time: float, daemon_time: float) -> str:
    """Flare / CLI-less-startup; a dash where the CLI's own work is lost in the noise."""
    return f"{flare_time / daemon_time:.2f}" if daemon_time > 1e-3 else "-"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument(
        "--no-processes", action="store_true", help="Kubo throughput only (no Anvil run)"
    )
    arguments = parser.parse_args()
    run(arguments.output_dir, not arguments.no_processes)


if __name__ == "__main__":
    main()

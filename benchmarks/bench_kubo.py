"""Kubo add/cat throughput through Flare's ``KuboStore`` against Kubo's own CLI.

Why: every model update and global model goes through ``KuboStore``, which does more
than Kubo's CLI does (it computes the CID itself before the upload, and re-hashes every
byte it reads back). This measures what that costs, against the same daemon and on the
same bytes, in alternation so that machine load hits both sides alike.

The CLI side is ``ipfs add --cid-version=1 --raw-leaves -Q --pin=false`` and ``ipfs cat``
with ``IPFS_PATH`` on the daemon's repository, so it talks to the running daemon through
the same RPC API; its times include starting the ``ipfs`` process, which is reported
separately (``ipfs version`` as the floor). Each repetition uses fresh bytes, so neither
side finds its blocks already stored.

Run::

    .venv/bin/python benchmarks/bench_kubo.py            # writes docs/bench/kubo.{md,json}
"""

import argparse
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import OUTPUT_DIR, environment, environment_line, write_results

from flare.node import KuboConfig, KuboNode
from flare.storage import KuboStore

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


def run(output_dir: Path) -> None:
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
    lines += [
        "",
        "Not measured here: time per round of the multi-process run against the in-memory "
        "simulation (no end-to-end multi-process test exists yet to drive it).",
        "",
    ]
    data = {
        "environment": env,
        "kubo_version": version,
        "cli_startup_seconds": startup,
        "sizes_bytes": SIZES,
        "repetitions": REPETITIONS,
        "median_seconds": rows,
    }
    write_results("kubo", "\n".join(lines), data, output_dir)
    print("\n".join(lines))


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
    run(parser.parse_args().output_dir)


if __name__ == "__main__":
    main()

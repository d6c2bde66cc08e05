"""What every simulation benchmark records beside its numbers, and where it writes them.

Timings on a shared 2-core machine move with load, and the library moves with the
working tree, so each result file names the machine, its load and the exact revision.
"""

import json
import math
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

REPOSITORY = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPOSITORY / "docs" / "bench"

SINGLE_THREAD_ENVIRONMENT = {
    name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
}
"""BLAS and OpenMP thread caps for child processes, so that one process uses one core
and the number of worker processes is the benchmark's whole parallelism."""

Item = TypeVar("Item")


def use_one_thread() -> None:
    """Pool initialiser: torch's intra-op pool would otherwise claim every core per worker."""
    import torch

    torch.set_num_threads(1)


def run_in_workers(
    function: Callable[[Item], dict[str, Any]],
    items: Sequence[Item],
    workers: int,
    label: str,
) -> list[dict[str, Any]]:
    """``function`` over ``items`` in ``workers`` spawned single-threaded processes, in order.

    A progress bar counts finished items; results come back in the items' order so the
    JSON follows the grid, while the workers still run ahead.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    os.environ.update(SINGLE_THREAD_ENVIRONMENT)  # inherited by the spawned workers
    context = multiprocessing.get_context("spawn")
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    outcomes = []
    with (
        context.Pool(workers, initializer=use_one_thread) as pool,
        Progress(*columns) as progress,
    ):
        task = progress.add_task(label, total=len(items))
        for outcome in pool.imap(function, items):
            outcomes.append(outcome)
            progress.advance(task)
    return outcomes


def source_revision() -> str:
    """The commit the library came from, marked ``-dirty`` when ``flare/`` differs from it.

    Only the library's own tree counts: other files changing (tests, docs, these
    benchmarks) cannot move a benchmark's numbers.
    """

    def git(*arguments: str) -> str:
        completed = subprocess.run(
            ["git", *arguments], cwd=REPOSITORY, capture_output=True, text=True, check=False
        )
        return completed.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--", "flare") else "")


def environment() -> dict[str, Any]:
    """Machine, software and load at the start of a run: the context its timings need."""
    import numpy
    import torch

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "revision": source_revision(),
    }


def environment_line(env: dict[str, Any]) -> str:
    """One markdown sentence saying where and when the numbers were taken."""
    return (
        f"Run on {env['date']} at library revision `{env['revision']}` (Python {env['python']}, "
        f"torch {env['torch']}, numpy {env['numpy']}, {env['cpus']} CPUs, {env['machine']}; "
        f"1-minute load average {env['load_average_1min']} at start — a shared 2-core "
        "machine, so wall times are upper bounds)."
    )


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities (a diverged model's loss) by ``None``: JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def write_results(name: str, markdown: str, data: dict[str, Any], output_dir: Path) -> None:
    """Write ``<name>.md`` and ``<name>.json`` side by side."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"{name}.md").write_text(markdown)
    text = json.dumps(json_safe(data), indent=2, allow_nan=False)
    (output_dir / f"{name}.json").write_text(text + "\n")


def measure_in_child(*arguments: str) -> dict[str, Any]:
    """``python *arguments`` in a fresh single-threaded interpreter: the JSON object it
    prints on its last line.

    A benchmark reruns its own script (an ``internal:`` flag) this way for each
    measurement: peak RSS is a high-water mark per process and imports are per process,
    so only a process of its own gives a configuration its own peak and its own start.
    """
    completed = subprocess.run(
        [sys.executable, *arguments],
        env={**os.environ, **SINGLE_THREAD_ENVIRONMENT},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{shlex.join(arguments)}: child failed\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])

"""Start-up: the wall time of every ``flare ... --help`` in fresh processes, and what it loads.

Why: a command that does not train should not pay for torch; ``flare --help`` is to take at
most 0.5 s. Each help runs as ``python -m flare ... --help`` in a fresh interpreter, as a
shell starts it, several times; the table gives the median wall time and the median CPU
time of the child (user + system, steadier than wall time on a loaded machine), beside the
floors: the bare interpreter with this environment's site-packages, and numpy and torch
imported alone. One more run of each under ``python -X importtime`` says which heavy
libraries it loaded and what its imports cost.

Before and after, side by side: the first-level helps of the library at a baseline revision
(by default the commit before ``--help`` stopped importing torch), unpacked with ``git
archive`` into a temporary directory and run from there, alternating with the current tree
so that the machine's load hits both alike.

Run::

    .venv/bin/python benchmarks/bench_startup.py     # writes docs/bench/startup.{md,json}
"""

import argparse
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

from common import OUTPUT_DIR, REPOSITORY, environment, environment_line, write_results

from flare.cli import build_parser

TARGET_SECONDS = 0.5
HEAVY = ("torch", "numpy", "matplotlib", "sklearn", "scipy", "web3", "eth_account", "rich")
"""Libraries whose import costs a help text a tenth of a second or more."""
BASELINE_COMMANDS = ((), ("simulate",), ("verify",), ("inspect",), ("node",), ("task",))
"""What the baseline runs: the helps the issue names, and two with sub-commands."""
INTRODUCING_PATH = "flare/cli/help_values.py"
"""Added by the commit that made every help torch-free; its parent is the default baseline."""
FLOORS = {"python -c pass": "pass", "import numpy": "import numpy", "import torch": "import torch"}


def command_paths() -> list[tuple[str, ...]]:
    """Every command of the current parser: the top level, then each sub-command, depth first."""

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, (*path, name))

    return list(walk(build_parser(), ()))


def timed_child(argv: Sequence[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and exit code of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    finished = subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, finished.returncode


def help_argv(path: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "flare", *path, "--help"]


def import_profile(path: tuple[str, ...], cwd: Path) -> dict[str, Any]:
    """The heavy libraries one help loads (with each one's cumulative import time) and the
    time of all its imports, from ``python -X importtime``."""
    argv = [sys.executable, "-X", "importtime", "-m", "flare", *path, "--help"]
    finished = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    heavy: dict[str, float] = {}
    total_us = 0
    for line in finished.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not cumulative.strip().isdigit():
            continue  # the header line
        module = name.strip()
        if not name.startswith("  "):  # a top-level import: its time holds its children's
            total_us += int(cumulative)
        if module in HEAVY:
            heavy[module] = max(heavy.get(module, 0.0), int(cumulative) / 1e3)
    return {"heavy_ms": heavy, "imports_ms": total_us / 1e3}


def baseline_tree(revision: str, directory: Path) -> Path:
    """The library at ``revision``, unpacked under ``directory`` (``python -m flare`` run
    from there imports it instead of the working tree)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "flare"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def default_baseline() -> str | None:
    """The parent of the commit that added :data:`INTRODUCING_PATH`, if history has it."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", INTRODUCING_PATH],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return f"{added[-1]}^" if added else None


def short(revision: str) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", revision],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def measure(repetitions: int, baseline: str | None) -> dict[str, Any]:
    paths = command_paths()
    with tempfile.TemporaryDirectory(prefix="flare-bench-startup-") as scratch:
        old_tree = baseline_tree(baseline, Path(scratch)) if baseline else None
        samples: dict[str, dict[str, list[float]]] = {}
        codes: dict[str, int] = {}

        def record(key: str, argv: Sequence[str], cwd: Path) -> None:
            wall, cpu, code = timed_child(argv, cwd)
            entry = samples.setdefault(key, {"wall": [], "cpu": []})
            entry["wall"].append(wall)
            entry["cpu"].append(cpu)
            codes[key] = max(codes.get(key, 0), code)

        for _ in range(repetitions):  # one round of everything at a time: load hits all alike
            for name, code in FLOORS.items():
                record(f"floor:{name}", [sys.executable, "-c", code], REPOSITORY)
            for path in paths:
                record(f"now:{' '.join(path)}", help_argv(path), REPOSITORY)
                if old_tree is not None and path in BASELINE_COMMANDS:
                    record(f"baseline:{' '.join(path)}", help_argv(path), old_tree)
        profiles = {f"now:{' '.join(path)}": import_profile(path, REPOSITORY) for path in paths}
        if old_tree is not None:
            for path in BASELINE_COMMANDS:
                profiles[f"baseline:{' '.join(path)}"] = import_profile(path, old_tree)
    medians = {
        key: {kind: statistics.median(values) for kind, values in entry.items()}
        for key, entry in samples.items()
    }
    return {
        "commands": [" ".join(path) for path in paths],
        "median_seconds": medians,
        "exit_codes": codes,
        "imports": profiles,
    }


def shown(command: str) -> str:
    return " ".join(["flare", *command.split(), "--help"])


def markdown(result: dict[str, Any], env: dict[str, Any]) -> str:
    medians, imports = result["median_seconds"], result["imports"]
    baseline = result["baseline"]

    def loaded(key: str) -> str:
        heavy = imports[key]["heavy_ms"]
        return ", ".join(f"{name} ({ms:.0f} ms)" for name, ms in sorted(heavy.items())) or "—"

    lines = [
        "# Start-up: `flare ... --help`",
        "",
        "Produced by `.venv/bin/python benchmarks/bench_startup.py`. " + environment_line(env),
        "",
        f"Each help ran {result['repetitions']} times as `python -m flare ... --help` in a "
        "fresh interpreter; **wall** and **CPU** (user + system of the child) are medians. "
        "**heavy libraries** and **imports** come from one more run under `python -X "
        "importtime` (cumulative import times, which that flag inflates a little). "
        f"Target: `flare --help` and every sub-command's help within {TARGET_SECONDS} s.",
        "",
        "| floor | wall s | CPU s |",
        "|---|---:|---:|",
    ]
    for name in FLOORS:
        times = medians[f"floor:{name}"]
        lines.append(f"| `python -c '{FLOORS[name]}'` | {times['wall']:.3f} | {times['cpu']:.3f} |")
    lines += [
        "",
        f"| command | wall s | CPU s | ≤ {TARGET_SECONDS} s | heavy libraries loaded "
        "| imports ms |",
        "|---|---:|---:|:-:|---|---:|",
    ]
    for command in result["commands"]:
        key = f"now:{command}"
        times = medians[key]
        within = "yes" if times["wall"] <= TARGET_SECONDS else "**no**"
        lines.append(
            f"| `{shown(command)}` | {times['wall']:.3f} | {times['cpu']:.3f} | {within} "
            f"| {loaded(key)} | {imports[key]['imports_ms']:.0f} |"
        )
    slow = [
        command
        for command in result["commands"]
        if medians[f"now:{command}"]["wall"] > TARGET_SECONDS
    ]
    if slow:
        floor = medians["floor:python -c pass"]["wall"]
        numpy_alone = medians["floor:import numpy"]["wall"]
        loading = [c for c in slow if imports[f"now:{c}"]["heavy_ms"]]
        why = (
            f" Of these, {', '.join(f'`{shown(c)}`' for c in loading)} load a heavy library "
            "(see the table)."
            if loading
            else " None of them loads a heavy library: the rest is the interpreter, argparse "
            "and Flare's own modules, on a shared machine."
        )
        lines += [
            "",
            f"Over {TARGET_SECONDS} s in this run: {', '.join(f'`{shown(c)}`' for c in slow)}. "
            f"Here, now, the bare interpreter takes {floor:.3f} s and `import numpy` alone "
            f"{numpy_alone:.3f} s.{why}",
        ]
    if baseline is None:
        lines += ["", "No baseline: this history lacks the commit that made the helps light."]
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"## Before and after, side by side (baseline `{baseline}`)",
        "",
        f"The baseline is the library at `{baseline}`, whose command line imported the "
        "registries (and so torch) to build its parser; the two ran alternately.",
        "",
        "| command | baseline wall s | now wall s | baseline / now | baseline CPU s | now CPU s "
        "| baseline loaded |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for path in BASELINE_COMMANDS:
        command = " ".join(path)
        old, new = medians[f"baseline:{command}"], medians[f"now:{command}"]
        lines.append(
            f"| `{shown(command)}` | {old['wall']:.3f} | {new['wall']:.3f} | "
            f"{old['wall'] / new['wall']:.1f}× | {old['cpu']:.3f} | {new['cpu']:.3f} | "
            f"{loaded(f'baseline:{command}')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument("--repetitions", type=int, default=7, help="runs of each help")
    parser.add_argument(
        "--baseline",
        help="git revision to compare with (default: the commit before the helps got light)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="measure the current tree only")
    arguments = parser.parse_args()
    if arguments.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    baseline = None if arguments.no_baseline else (arguments.baseline or default_baseline())
    baseline = short(baseline) if baseline else None
    env = environment()
    result = measure(arguments.repetitions, baseline)
    result.update(repetitions=arguments.repetitions, baseline=baseline, environment=env)
    failed = {key: code for key, code in result["exit_codes"].items() if code != 0}
    if failed:
        sys.exit(f"some runs failed: {failed}")
    text = markdown(result, env)
    write_results("startup", text, result, arguments.output_dir)
    print(text)


if __name__ == "__main__":
    main()

"""bench_ray's driver peaks are the child run's own: not its parent's, not its set-up's
once the rounds start (``ru_maxrss`` would give both)."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from bench_ray import process_peak_rss_mb, reset_peak_rss

inherited = process_peak_rss_mb()
setup = bytearray(200 << 20)
setup[::4096] = b"x" * len(setup[::4096])
setup_peak = process_peak_rss_mb()
del setup
reset_peak_rss()
print(inherited, setup_peak, process_peak_rss_mb())
"""


def test_the_peaks_are_the_childs_own_and_restart_at_the_reset() -> None:
    parents_peak = bytearray(300 << 20)
    parents_peak[::4096] = b"x" * len(parents_peak[::4096])
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(BENCHMARKS)], capture_output=True, text=True, check=True
    )
    del parents_peak
    inherited, setup_peak, rounds_peak = map(float, completed.stdout.split())
    assert inherited < 150  # the parent held 300 MB when it started the child
    assert setup_peak > inherited + 190
    assert rounds_peak < setup_peak - 150

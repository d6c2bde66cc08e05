"""A run reports its own process's peak memory, not the peak of the process that started it."""

import subprocess
import sys

CHILD = """
from flare.federation.report import process_peak_rss_mb
before = process_peak_rss_mb()
held = bytearray(200 << 20)
held[::4096] = b"x" * len(held[::4096])
print(before, process_peak_rss_mb())
"""


def test_a_child_reports_its_own_peak_not_its_parents() -> None:
    parents_peak = bytearray(300 << 20)
    parents_peak[::4096] = b"x" * len(parents_peak[::4096])
    completed = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
    )
    del parents_peak
    before, after = map(float, completed.stdout.split())
    assert before < 150  # the parent held over 300 MB when it started the child
    assert after > before + 190

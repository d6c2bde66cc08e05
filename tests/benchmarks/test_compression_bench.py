"""``bench_compression.py``'s per-layer rows and tables: what they record and what they say."""

from compression_layers import TIMINGS, measure, with_timings
from compression_tables import layer_markdown, markdown

ENVIRONMENT = {
    "date": "2026-12-01 23:00 UTC",
    "revision": "abc1234",
    "python": "3.11.7",
    "numpy": "2.4.6",
    "cpus": 2,
    "machine": "x86_64",
    "load_average_1min": 1.5,
}


def test_a_layer_row_records_size_error_and_time_against_the_floor() -> None:
    row = measure("test 48x40", (48, 40), 2)
    assert row["low_rank"] and row["ratio"] > 1
    assert row["optimal_error"] <= row["error"] < 1
    assert row["feedback_sum_error"] < row["error"]  # error feedback pays the debt back
    assert row["time_vs_float32_floor"] == row["codec_seconds"] / row["float32_floor_seconds"]


def test_the_verdict_counts_the_rows_within_the_target_and_names_the_rest() -> None:
    row = measure("test 48x40", (48, 40), 2)
    fast = dict(row, codec_seconds=2 * row["float32_floor_seconds"], time_vs_float32_floor=2.0)
    slow = dict(row, codec_seconds=9 * row["float32_floor_seconds"], time_vs_float32_floor=9.0)
    all_met = layer_markdown([fast, fast], ENVIRONMENT)[-1]
    assert "is met in 2 of 2." in all_met and "Over the target" not in all_met
    verdict = layer_markdown([fast, slow], ENVIRONMENT)[-1]
    assert "2.0-9.0x" in verdict and "is met in 1 of 2." in verdict
    assert "Over the target: test 48x40 at rank 2 (9.0x)." in verdict


def test_each_section_names_the_revision_it_was_run_at() -> None:
    results = {
        "environments": {"layers": ENVIRONMENT, "task": dict(ENVIRONMENT, revision="def5678")},
        "rows": [],
        "models": [],
        "task": [],
    }
    text = markdown(results)
    layers, task = text.split("## Codecs on the default task")
    assert "`abc1234`" in layers and "`def5678`" in task
    assert "not recorded" in markdown(dict(results, environments={}))


def test_a_row_shows_the_native_calls_the_python_lane_and_the_uncompressed_blob() -> None:
    row = measure("test 48x40", (48, 40), 2)
    assert min(row["native_seconds"], row["python_seconds"], row["framing_seconds"]) > 0
    table = "\n".join(layer_markdown([row], ENVIRONMENT))
    floor = row["float32_floor_seconds"]
    assert f"| {row['native_seconds'] * 1e6:.1f} | {row['python_seconds'] * 1e6:.0f} | " in table
    assert f"| {row['framing_seconds'] * 1e6:.1f} | {row['framing_seconds'] / floor:.1f} |" in table


def test_each_time_is_the_median_of_its_rounds_and_the_ratio_is_taken_from_those() -> None:
    row = measure("test 48x40", (48, 40), 2)
    burst = dict.fromkeys(TIMINGS, 1.0) | {"codec_seconds": 50.0}
    rounds = [
        dict.fromkeys(TIMINGS, 1.0) | {"codec_seconds": 2.0},
        burst,
        dict.fromkeys(TIMINGS, 1.0) | {"codec_seconds": 3.0, "float32_floor_seconds": 1.5},
    ]
    timed = with_timings(row, rounds)
    assert timed["codec_seconds"] == 3.0  # the burst's 50 is voted out
    assert timed["float32_floor_seconds"] == 1.0
    assert timed["time_vs_float32_floor"] == 3.0
    assert timed["error"] == row["error"]  # sizes and errors are kept as measured

"""``bench_compression.py``'s per-layer rows and tables: what they record and what they say."""

from compression_layers import measure
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


def test_the_verdict_counts_the_rows_within_the_target_and_explains_the_rest() -> None:
    row = measure("test 48x40", (48, 40), 2)
    fast = dict(row, codec_seconds=2 * row["float32_floor_seconds"], time_vs_float32_floor=2.0)
    slow = dict(row, codec_seconds=9 * row["float32_floor_seconds"], time_vs_float32_floor=9.0)
    all_met = layer_markdown([fast, fast], ENVIRONMENT)[-1]
    assert "is met in 2 of 2." in all_met and "The floor here" not in all_met
    verdict = layer_markdown([fast, slow], ENVIRONMENT)[-1]
    assert "2-9x" in verdict and "is met in 1 of 2." in verdict and "The floor here" in verdict


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


def test_the_verdict_counts_the_shapes_whose_uncompressed_blob_alone_misses_the_target() -> None:
    """Each shape is judged at its first row, its lowest rank; a blob sent as it is that costs
    more than 3x that row's floor is counted, one that costs less is not."""
    row = measure("test 48x40", (48, 40), 2)
    floor = row["float32_floor_seconds"]
    slow = dict(row, codec_seconds=9 * floor, time_vs_float32_floor=9.0)
    cheap_framing = dict(slow, framing_seconds=2 * floor)
    dear_framing = dict(slow, shape=[40, 48], framing_seconds=5 * floor)
    higher_rank = dict(dear_framing, rank=8, framing_seconds=1 * floor)  # not its first row
    verdict = layer_markdown([cheap_framing, dear_framing, higher_rank], ENVIRONMENT)[-1]
    assert "for 1 of the 2 layer shapes that alone is over 3x the floor" in verdict
    assert row["framing_seconds"] > 0
    table = "\n".join(layer_markdown([row], ENVIRONMENT))
    assert f"| {row['framing_seconds'] * 1e6:.0f} | " in table

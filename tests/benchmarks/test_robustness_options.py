"""``bench_robustness.py``'s rows: variants of a rule, parsed, typed, validated, recorded."""

import pytest
from bench_robustness import RunSpec, grid, merge, parse_arguments
from robustness_rows import Row
from robustness_tables import markdown, summarise

from flare.aggregation import make_aggregator
from flare.errors import ConfigError

CLIP = "mi+clip=mi:clip_to_median_norm=true"


def arguments(*argv: str):
    return parse_arguments(list(argv))


def parse_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        arguments(*argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_variant_is_a_row_with_typed_settings() -> None:
    parsed = arguments(
        "--aggregators", "mi", "mi+loose", "median",
        "--variant", "mi+loose=mi:z=2,aggregate_margin_bits=none,check_direction=False",
    )  # fmt: skip
    assert parsed.rows == [
        Row("mi", "mi"),
        Row(
            "mi+loose",
            "mi",
            (("aggregate_margin_bits", None), ("check_direction", False), ("z", 2.0)),
        ),
        Row("median", "median"),
    ]
    assert type(parsed.rows[1].settings[2][1]) is float


def test_plain_rules_are_rows_without_settings() -> None:
    assert arguments("--aggregators", "fedavg", "geomedian").rows == [
        Row("fedavg", "fedavg"),
        Row("geomedian", "geomedian"),
    ]


def test_a_variant_reaches_the_simulated_aggregator() -> None:
    parsed = arguments("--aggregators", "mi+clip", "--variant", CLIP, "--datasets", "digits")
    parsed.clients, parsed.partitions, parsed.attacks, parsed.seeds = [10], ["iid"], ["alie"], [0]
    (spec,) = grid(parsed, {"digits": "digits"})
    assert (spec.aggregator, spec.rule) == ("mi+clip", "mi")
    config = spec.config()
    assert (config.aggregator, config.aggregator_params) == ("mi", {"clip_to_median_norm": True})
    assert make_aggregator(config.aggregator, **config.aggregator_params).clip_to_median_norm


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("mi+x=nosuchrule:z=1", "unknown rule 'nosuchrule'"),
        ("mi+x=mi:nosuchsetting=1", "rule 'mi' has no setting 'nosuchsetting'"),
        ("mi+x=mi:clip_to_median_norm=maybe", "clip_to_median_norm='maybe' is not a"),
        ("mi+x=mi:z=high", "z='high' is not a"),
        ("mi+x=mi:norm_ratio_limit=0.5", "norm_ratio_limit must be at least 1"),
        ("mi+x=mi:z=1,z=2", "setting 'z' given twice"),
        ("mi+x=mi", "expected LABEL=RULE:NAME=VALUE"),
        ("median=mi:z=1", "is a rule's own name"),
        ("geomedian+x=geomedian:iterations=2.5", "iterations='2.5' is not a"),
    ],
)
def test_a_bad_variant_is_refused_with_the_reason(
    capsys: pytest.CaptureFixture[str], variant: str, message: str
) -> None:
    assert message in parse_error(capsys, "--aggregators", "mi", "--variant", variant)


def test_a_row_must_be_a_rule_or_a_declared_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert "'mi+clip' is neither a rule" in parse_error(capsys, "--aggregators", "mi+clip")
    assert "mi+clip declared but not in --aggregators" in parse_error(
        capsys, "--aggregators", "mi", "--variant", CLIP
    )


def run(aggregator: str, attack: str, seed: int, accuracy: float, success: float = 0.0) -> dict:
    return {
        "dataset": "digits",
        "clients": 10,
        "partition": "iid",
        "attack": attack,
        "aggregator": aggregator,
        "seed": seed,
        "accuracy": accuracy,
        "attack_success": success,
        "malicious_flagged": 0.5,
        "honest_flagged": 0.0,
    }


def results_with(runs: list[dict], variants: dict) -> dict:
    environment = dict.fromkeys(
        ("date", "revision", "python", "torch", "numpy", "cpus", "machine", "load_average_1min"),
        "-",
    )
    settings = {"workers": 2, "rounds": 8, "malicious_share": 0.3, "seeds": [0]}
    return {
        "command": "c",
        "environment": environment,
        "settings": settings,
        "wall_seconds": 1.0,
        "variants": variants,
        "runs": runs,
    }


CLIP_DEFINITION = {"rule": "mi", "settings": {"clip_to_median_norm": True}}


def test_the_report_names_the_settings_and_judges_a_variant_apart_from_the_baselines() -> None:
    runs = [
        run("mi", "none", 0, 0.95),
        run("mi", "alie", 0, 0.80),
        run("mi+clip", "none", 0, 0.95),
        run("mi+clip", "alie", 0, 0.94),
        run("median", "none", 0, 0.93),
        run("median", "alie", 0, 0.85),
    ]
    text = markdown(results_with(runs, {"mi+clip": CLIP_DEFINITION}), summarise(runs))
    assert "`mi+clip` is `mi` with `clip_to_median_norm=true`" in text
    # the variant beats mi by 14 points, but mi is judged against the baselines only
    assert "| mi | digits, 10 clients, IID | alie | 80.0 | +15.0 | median | 85.0 | **no** |" in text
    assert (
        "| mi+clip | digits, 10 clients, IID | alie | 94.0 | +1.0 | median | 85.0 | yes |" in text
    )
    assert "`mi+clip` holds in 1 of 1 cells." in text
    assert "## What `mi+clip` flagged" in text


def test_a_merge_records_variants_and_refuses_a_label_redefined() -> None:
    previous = results_with([run("mi", "none", 0, 0.9)], {})
    merged = merge(
        previous, [run("mi+clip", "none", 0, 0.9)], {"mi+clip": CLIP_DEFINITION}, "c", {}
    )
    assert merged["variants"] == {"mi+clip": CLIP_DEFINITION}
    assert [r["aggregator"] for r in merged["runs"]] == ["mi", "mi+clip"]
    other = {"mi+clip": {"rule": "mi", "settings": {"z": 2.0}}}
    with pytest.raises(ConfigError, match="'mi\\+clip' is"):
        merge(merged, [], other, "c", {})


def test_a_run_records_its_rule_and_settings() -> None:
    spec = RunSpec("digits", "digits", 10, "iid", "none", "mi+clip", "mi", (("z", 2.0),), 0, 1)
    assert spec.config().aggregator_params == {"z": 2.0}

"""bench_protocol's account of the protocol's extra time: each part is the protocol's phase
less its offline counterpart, and the parts sum to the whole."""

from types import SimpleNamespace

import pytest
from bench_protocol import extra_time
from protocol_tables import extra_lines


def report(rounds: list[tuple[float, dict[str, float], int]]) -> SimpleNamespace:
    """A stand-in report: each round's seconds, phase timings and seats claimed."""
    return SimpleNamespace(
        rounds=[
            SimpleNamespace(seconds=s, timings=t, protocol={"committee": ["seat"] * seats})
            for s, t, seats in rounds
        ]
    )


OFFLINE = report(
    [
        (0.20, {"train": 0.10, "decode": 0.01, "aggregate": 0.06, "evaluate": 0.01}, 0),
        (0.22, {"train": 0.12, "decode": 0.01, "aggregate": 0.06, "evaluate": 0.01}, 0),
    ]
)
PROTOCOL = report(
    [
        (
            0.30,
            {
                "train": 0.11,
                "aggregate": 0.09,
                "evaluate": 0.01,
                "vrf": 0.03,
                "chain": 0.01,
                "storage": 0.02,
            },
            10,
        ),
        (
            0.28,
            {
                "train": 0.11,
                "aggregate": 0.07,
                "evaluate": 0.01,
                "vrf": 0.03,
                "chain": 0.01,
                "storage": 0.01,
            },
            8,
        ),
    ]
)


def test_the_parts_are_phase_differences_and_sum_to_the_whole() -> None:
    serial_extra = 0.02  # aggregate seconds of members who were not the slowest, two rounds
    offline_s, protocol_s = 0.25, 0.33
    parts = extra_time(OFFLINE, offline_s, PROTOCOL, protocol_s, serial_extra)
    assert parts["total"] == pytest.approx(protocol_s - offline_s)
    # the offline run's rounds take 0.21 s of its 0.25; the protocol's 0.29 - 0.01 of 0.33
    assert parts["set-up"] == pytest.approx((0.33 - 0.28) - (0.25 - 0.21))
    assert parts["vrf"] == pytest.approx(0.03)
    assert parts["storage"] == pytest.approx(0.015)
    # side by side: 0.08 - 0.01 against the offline aggregate and decode, 0.06 + 0.01
    assert parts["aggregate"] == pytest.approx(0.0)
    assert parts["train"] == pytest.approx(0.0)
    summed = sum(
        value for name, value in parts.items() if name not in {"total", "seat_claims_per_round"}
    )
    assert summed == pytest.approx(parts["total"])
    assert parts["seat_claims_per_round"] == 9


def test_the_pairing_share_counts_claims_and_registrations_at_the_measured_rates() -> None:
    parts = extra_time(OFFLINE, 0.25, PROTOCOL, 0.33, 0.02)
    result = {
        "config": {"clients": 10, "rounds": 2},
        "crypto": {"vrf_verify_per_s": 1000.0, "pop_verify_per_s": 500.0},
        "overhead": {"offline_s_per_round": 0.25, "extra_median_s": parts},
    }
    text = "\n".join(extra_lines(result))
    # 9 claims at 1 ms and 5 registrations a round at 2 ms
    assert "come to 0.0190 s/round, 7.6% of the offline round" in text
    assert "| rest |" in text


def test_a_table_from_before_the_breakdown_renders_without_it() -> None:
    assert extra_lines({"overhead": {}, "crypto": {}, "config": {}}) == []

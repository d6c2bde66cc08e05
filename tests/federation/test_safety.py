"""The committee safety bound: exact against an enumeration of every seat draw and a Monte
Carlo of the contract's own sortition rule, ordered as an adversary's odds must be, and met by
the defaults."""

import itertools
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.crypto.vrf import seat_granted, seat_threshold
from flare.errors import ConfigError
from flare.federation.safety import (
    DEFAULT_ADVERSARY_SHARE,
    DEFAULT_MAX_CAPTURE_PROBABILITY,
    adversaries_for_share,
    check_capture_bound,
    committee_risk,
    open_committee_risk,
    staked_committee_risk,
)
from flare.federation.task_parameters import DEFAULT_TASK_PARAMETERS, TaskParameters


def enumerated_risk(parameters: TaskParameters, participants: int, adversaries: int):
    """Capture and stall by walking every subset of seated participants, with the contract's
    threshold ``ceil(quorum * size / 10000)`` and the real seat probability."""
    seat = Fraction(seat_threshold(parameters.expected_committee, participants), 2**256)
    capture = stall = Fraction(0)
    for seated in itertools.product((False, True), repeat=participants):
        weight = Fraction(1)
        for won in seated:
            weight *= seat if won else 1 - seat
        hostile = sum(seated[:adversaries])
        honest = sum(seated[adversaries:])
        size = hostile + honest
        threshold = -(-parameters.quorum_bps * size // 10_000)
        if size >= parameters.min_committee and hostile >= threshold:
            capture += weight
        if honest < parameters.min_committee or honest < threshold:
            stall += weight
    return float(capture), float(stall)


@pytest.mark.parametrize(
    ("parameters", "participants", "adversaries"),
    [
        (TaskParameters(expected_committee=3, min_committee=2), 7, 2),
        (TaskParameters(expected_committee=4, min_committee=1, quorum_bps=5001), 8, 3),
        (TaskParameters(expected_committee=5, min_committee=3, quorum_bps=10_000), 9, 4),
        (TaskParameters(expected_committee=8, min_committee=3), 8, 3),  # everyone seated
    ],
)
def test_exact_sums_equal_an_enumeration_of_every_draw(parameters, participants, adversaries):
    risk = committee_risk(parameters, participants, adversaries)
    assert (risk.capture, risk.honest_stall) == enumerated_risk(
        parameters, participants, adversaries
    )


def test_capture_matches_a_monte_carlo_of_the_contracts_seat_rule():
    parameters = TaskParameters(expected_committee=4, min_committee=2)
    participants, adversaries, draws = 10, 3, 20_000
    rng = random.Random(7)
    captured = 0
    for _ in range(draws):
        seats = [
            seat_granted(rng.getrandbits(256).to_bytes(32, "big"), 4, participants)
            for _ in range(participants)
        ]
        hostile, size = sum(seats[:adversaries]), sum(seats)
        captured += size >= 2 and hostile * 10_000 >= parameters.quorum_bps * size
    expected = committee_risk(parameters, participants, adversaries).capture
    sigma = (expected * (1 - expected) / draws) ** 0.5
    assert expected > 0.01
    assert abs(captured / draws - expected) < 4 * sigma


def test_the_open_limit_bounds_finite_populations_and_is_approached():
    parameters = TaskParameters(expected_committee=10, min_committee=3)
    limit = open_committee_risk(parameters, 0.2)
    captures = [
        committee_risk(parameters, n, adversaries_for_share(n, 0.2)).capture
        for n in (20, 40, 80, 320)
    ]
    assert captures == sorted(captures)
    # Binomial(n, k/n) approaches Poisson(k) at a rate of about k/n.
    assert captures[-1] <= limit.capture < captures[-1] * 1.15


hostile_counts = st.integers(min_value=0, max_value=14)


@settings(max_examples=40, deadline=None)
@given(
    participants=st.integers(min_value=1, max_value=14),
    hostile=hostile_counts,
    expected=st.integers(min_value=1, max_value=14),
    quorum=st.integers(min_value=5001, max_value=9999),
)
def test_more_adversaries_or_a_lower_quorum_never_help_the_honest(
    participants, hostile, expected, quorum
):
    hostile = min(hostile, participants - 1)
    parameters = TaskParameters(expected_committee=expected, min_committee=1, quorum_bps=quorum)
    base = committee_risk(parameters, participants, hostile)
    stronger = committee_risk(parameters, participants, hostile + 1)
    assert stronger.capture >= base.capture and stronger.honest_stall >= base.honest_stall
    stricter = committee_risk(
        TaskParameters(expected_committee=expected, min_committee=1, quorum_bps=quorum + 1),
        participants,
        hostile,
    )
    assert stricter.capture <= base.capture and stricter.honest_stall >= base.honest_stall


@settings(max_examples=30, deadline=None)
@given(share=st.floats(min_value=0, max_value=0.6), committee=st.integers(1, 60))
def test_the_open_limit_grows_with_the_adversary_share(share, committee):
    parameters = TaskParameters(expected_committee=committee, min_committee=1)
    base = open_committee_risk(parameters, share)
    stronger = open_committee_risk(parameters, share + 0.05)
    assert stronger.capture >= base.capture * (1 - 1e-9)
    assert 0 <= base.capture <= 1 and 0 <= base.honest_stall <= 1


def test_the_defaults_meet_the_bound_and_the_old_committee_did_not():
    risk = open_committee_risk(DEFAULT_TASK_PARAMETERS, DEFAULT_ADVERSARY_SHARE)
    assert risk.capture <= DEFAULT_MAX_CAPTURE_PROBABILITY
    check_capture_bound(risk, DEFAULT_MAX_CAPTURE_PROBABILITY, "a 0.2 share")
    # The README's dishonest committee: 3 attackers of 10 clients, k = 5 seats.
    old = committee_risk(TaskParameters(expected_committee=5), 10, 3)
    assert old.capture > 0.005  # one attempt in 128
    with pytest.raises(ConfigError, match="exceeds --max-capture-probability 1e-06"):
        check_capture_bound(old, DEFAULT_MAX_CAPTURE_PROBABILITY, "its 3 attackers")
    # The default simulation seats all 10 clients: 3 attackers never reach 7 approvals.
    assert committee_risk(DEFAULT_TASK_PARAMETERS, 10, 3).capture == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: committee_risk(DEFAULT_TASK_PARAMETERS, 0, 0), "at least one participant"),
        (lambda: committee_risk(DEFAULT_TASK_PARAMETERS, 5, 6), "adversaries must lie in"),
        (lambda: open_committee_risk(DEFAULT_TASK_PARAMETERS, 1.0), "--adversary-share must"),
        (lambda: adversaries_for_share(10, -0.1), "--adversary-share must"),
    ],
)
def test_impossible_adversaries_are_refused(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_a_share_counts_whole_keys():
    assert adversaries_for_share(10, 0.2) == 2
    assert adversaries_for_share(11, 0.2) == 3


@pytest.mark.parametrize("seed", range(4))
def test_the_open_limit_bounds_staked_committees_for_a_share_of_stake(seed):
    """A 0.2 share of stake split over 25 keys against honest stake over 100, both split
    at random with no key above T/k: the Poisson limit that ``task create --min-stake``
    prints is at least the exact capture probability."""
    rng = random.Random(seed)
    parameters = DEFAULT_TASK_PARAMETERS
    honest = [rng.randint(1, 1_000) for _ in range(100)]
    attacker_weights = [rng.randint(1, 1_000) for _ in range(25)]
    attacker_total = sum(honest) // 4  # 0.2 of all stake
    adversary = [attacker_total * w // sum(attacker_weights) for w in attacker_weights]
    total = sum(honest) + sum(adversary)
    assert max(honest + adversary) * parameters.expected_committee <= total
    exact = staked_committee_risk(parameters, adversary, honest)
    share = sum(adversary) / total
    limit = open_committee_risk(parameters, share)
    assert 0 < exact.capture <= limit.capture
    assert exact.honest_stall <= limit.honest_stall


def test_staked_sums_equal_the_exact_sums_when_every_key_holds_the_same_stake():
    parameters = TaskParameters(expected_committee=5, min_committee=3, quorum_bps=6_667)
    exact = committee_risk(parameters, 12, 4)
    staked = staked_committee_risk(parameters, [7] * 4, [7] * 8)
    assert staked.capture == pytest.approx(exact.capture, rel=1e-9)
    assert staked.honest_stall == pytest.approx(exact.honest_stall, rel=1e-9)

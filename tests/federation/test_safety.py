"""The committee safety bound: exact against an enumeration of every seat draw and a Monte
Carlo of the contract's own sortition rule, ordered as an adversary's odds must be, and met by
the defaults."""

import itertools
import random
from dataclasses import replace
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


def enumerated_risk(
    parameters: TaskParameters, participants: int, adversaries: int, committee: int
):
    """Capture and stall at expected committee ``committee`` by walking every subset of seated
    participants, with the contract's threshold ``ceil(quorum * size / 10000)`` and the real
    seat probability."""
    seat = Fraction(seat_threshold(committee, participants), 2**256)
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
    """Each figure is the worst over the committee sizes escalation can reach: k, 2k, … up to
    the first that seats everyone (escalation never goes further in effect)."""
    sizes, size = [], parameters.expected_committee
    while not sizes or sizes[-1] < participants:
        sizes.append(size)
        size *= 2
    enumerated = [enumerated_risk(parameters, participants, adversaries, k) for k in sizes]
    risk = committee_risk(parameters, participants, adversaries)
    assert risk.committees == tuple(sizes)
    assert risk.capture == max(capture for capture, _ in enumerated)
    assert risk.honest_stall == max(stall for _, stall in enumerated)
    single = committee_risk(replace(parameters, max_attempts=1), participants, adversaries)
    assert (single.capture, single.honest_stall) == enumerated[0]


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
    # Over every escalated size the worst is the task's own k = 40 (docs/protocol.md §11).
    at_k = open_committee_risk(replace(DEFAULT_TASK_PARAMETERS, max_attempts=1), 0.2)
    assert (risk.capture, risk.honest_stall) == (at_k.capture, at_k.honest_stall)
    assert (round(risk.capture, 10), round(risk.honest_stall, 3)) == (6.3e-9, 0.028)
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


@pytest.mark.parametrize(
    ("parameters", "share"),
    [
        (DEFAULT_TASK_PARAMETERS, 0.2),
        (TaskParameters(expected_committee=5, min_committee=3), 0.2),
        (TaskParameters(expected_committee=4, min_committee=2, quorum_bps=5001), 0.4),
        (TaskParameters(expected_committee=8, min_committee=1, quorum_bps=9000), 0.05),
    ],
)
def test_the_open_limit_covers_every_escalated_committee(parameters, share):
    """The figure is the worst over k·2^j: each size summed on its own stays below it, for the
    sizes summed and for the larger ones the Chernoff bounds certified."""
    risk = open_committee_risk(parameters, share)
    assert risk.committees[0] == parameters.expected_committee
    sizes = [parameters.expected_committee * 2**j for j in range(6)]
    single = [
        open_committee_risk(replace(parameters, expected_committee=k, max_attempts=1), share)
        for k in sizes
    ]
    assert risk.capture == max(one.capture for one in single[: len(risk.committees)])
    assert all(one.capture <= risk.capture for one in single)
    assert all(one.honest_stall <= risk.honest_stall * (1 + 1e-12) for one in single)
    # Without escalation (one attempt) only k counts.
    assert open_committee_risk(replace(parameters, max_attempts=1), share) == single[0]


def test_an_escalated_committee_can_be_the_worst():
    """Where a larger committee is worse for the honest side, the figure reports it: against
    a 0.45 share with a 51 % quorum, k = 1 is captured with odds 0.234 but k = 4 with 0.322."""
    parameters = TaskParameters(expected_committee=1, min_committee=1, quorum_bps=5001)
    first = open_committee_risk(replace(parameters, max_attempts=1), 0.45)
    fourfold = open_committee_risk(replace(parameters, expected_committee=4, max_attempts=1), 0.45)
    risk = open_committee_risk(parameters, 0.45)
    assert first.capture == pytest.approx(0.234, abs=1e-3)
    assert fourfold.capture == pytest.approx(0.322, abs=1e-3)
    assert risk.capture >= fourfold.capture > first.capture


def test_a_finite_population_stops_where_every_key_is_seated():
    risk = committee_risk(TaskParameters(expected_committee=5, min_committee=3), 50, 10)
    assert risk.committees == (5, 10, 20, 40, 80)
    assert "escalation reaches from k = 5" in risk.describe("10 keys")
    capped = committee_risk(TaskParameters(expected_committee=5, max_attempts=3), 50, 10)
    assert capped.committees == (5, 10, 20)


def test_a_staked_population_stops_where_every_stake_is_seated():
    # T = 20, the smallest stake 1: k = 20 seats every key, so 5, 10, 20.
    risk = staked_committee_risk(TaskParameters(expected_committee=5), [5, 5], [1] * 10)
    assert risk.committees == (5, 10, 20)

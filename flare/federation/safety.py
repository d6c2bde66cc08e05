"""How likely one round attempt's committee is captured, or stalled, by a declared adversary.

The contract seats each of the ``n`` participants in an attempt's snapshot independently, with
probability ``p = min(1, k/n)`` (:func:`flare.crypto.vrf.seat_granted`; its threshold rounds
``k/n`` up to a multiple of ``2^-256``, which moves the figures below by less than
``n·2^-256``, far below a double's precision). The adversary holds ``a`` of
them, the honest members the other ``h = n - a``: its seats ``X ~ Bin(a, p)`` and theirs
``Y ~ Bin(h, p)`` are independent. A committee of ``c = X + Y`` seats finalizes a proposal with
``t(c) = ceil(quorumBps * c / 10000)`` approvals, and only once ``c >= minCommittee``.

- **Capture**: the adversary alone reaches quorum in a committee that decides,
  ``X + Y >= minCommittee`` and ``X >= t(X + Y)``. It claims all its seats: each extra seat
  raises the threshold by at most one, so withholding one never helps it.
- **Honest stall**: the honest members alone cannot finalize whatever the adversary does,
  ``Y < minCommittee`` (it withholds its seats) or ``Y < t(X + Y)`` (it claims them all and
  never approves). An attempt that stalls times out and the next one draws afresh.

Both assume every honest member is online and approves the one honest aggregate (docs/protocol.md
§11). For ``n`` participants the sums are exact rationals, returned as correctly rounded floats.
When ``n`` is unknown, as for an open task at creation, :func:`open_committee_risk` takes the
limit of many participants (``X`` and ``Y`` Poisson with means ``a·k`` and ``(1-a)·k``), summed
in log space; tests check it bounds the exact figures for the finite ``n`` they try.

**Escalation.** An attempt that seats fewer than ``minCommittee`` hands the next attempt of
its round twice its ``k`` (docs/protocol.md §4.12), so a task draws committees with
``k·2^j`` for ``j < maxAttempts``. Every figure here is the worst over those sizes, each
probability maximized on its own. For a known ``n`` (or known stakes) the sizes from the
first that seats every key are all alike, so the sums run up to it. In the limit of many
participants the sizes never saturate: the sums run up the sizes until Chernoff bounds,
which fall as the size grows, certify that no larger size can exceed the worst so far, and
past :data:`_LARGEST_SUMMED_COMMITTEE` those bounds stand for the sizes left (a bound of 1,
for an adversary holding the share it needs, stands for them at once).

In a staked task a key holding stake ``s`` of the snapshot's ``T`` is seated with probability
``min(1, k·s/T)`` (docs/protocol.md §2.6), so ``X`` and ``Y`` are sums of unequal Bernoulli
draws: :func:`staked_committee_risk` sums them exactly (in floats) for given stakes. For an
adversary *share of stake* ``a`` however it is split, and honest stake however it is split,
the same Poisson limit is the figure ``task create --min-stake`` prints; tests check it bounds
the exact figures of the splits they try while no key holds more than ``T/k``.

This module imports nothing heavy: ``task create`` and ``simulate`` print it before any work.
"""

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TypeVar

from flare.errors import ConfigError
from flare.federation.task_parameters import BASIS_POINTS, UINT32_MAX, TaskParameters

DEFAULT_ADVERSARY_SHARE = 0.2
"""The share of keys (or stake) the bound assumes hostile unless told otherwise: well below the
third that a two-thirds quorum tolerates, so that committees of a few dozen seats meet the
bound instead of hundreds."""
DEFAULT_MAX_CAPTURE_PROBABILITY = 1e-6
"""The capture probability per attempt that ``task create`` and ``simulate`` accept unforced."""

_LARGEST_SUMMED_COMMITTEE = 2**14
"""The largest ``k`` the many-participants limit sums exactly (its weights run to about
``k + 40·sqrt(k)`` seats); Chernoff bounds cover the escalated sizes beyond."""

_POISSON_TAIL_SIGMAS = 40
"""How far past its mean a Poisson sum runs: the tail beyond is below 1e-300."""

Weight = TypeVar("Weight", int, float)
"""Exact integer weights for a known number of participants, floats for the open limit."""


@dataclass(frozen=True)
class CommitteeRisk:
    """Per-attempt probabilities for one adversary against one set of task parameters."""

    capture: float
    """The adversary alone reaches quorum in a committee of at least ``minCommittee``."""
    honest_stall: float
    """The honest members alone cannot finalize the attempt."""
    participants: int | None
    """The ``n`` the figures hold for; ``None`` for the limit of many participants."""
    committees: tuple[int, ...]
    """The expected committee sizes summed: the task's ``k`` and its escalations (in the
    many-participants limit, Chernoff bounds stand for the larger ones)."""

    def describe(self, adversary: str) -> str:
        """One line for a command's output, naming the adversary."""
        population = (
            "any number of participants"
            if self.participants is None
            else f"{self.participants} participants"
        )
        return (
            f"per attempt, against {adversary} of {population}: capture "
            f"{self.capture:.3g}, honest stall {self.honest_stall:.3g} (the worst over "
            f"every committee size escalation reaches from k = {self.committees[0]})"
        )


def committee_risk(
    parameters: TaskParameters, participants: int, adversaries: int
) -> CommitteeRisk:
    """The exact risk when ``adversaries`` of the ``participants`` snapshotted keys are hostile,
    the worst over every committee size the task can reach."""
    if participants < 1:
        raise ConfigError(f"the bound needs at least one participant, got {participants}")
    if not 0 <= adversaries <= participants:
        raise ConfigError(f"adversaries must lie in [0, {participants}], got {adversaries}")
    return _worst(
        [
            _keyed_risk(replace(parameters, expected_committee=size), participants, adversaries)
            for size in escalated_committees(parameters, saturation=participants)
        ]
    )


def _keyed_risk(parameters: TaskParameters, participants: int, adversaries: int) -> CommitteeRisk:
    """:func:`committee_risk` at the one size ``parameters.expected_committee``."""
    k = parameters.expected_committee
    # p = won / scale exactly: every participant is seated once k >= n.
    won, scale = (1, 1) if k >= participants else (k, participants)
    captured, stalled = _capture_and_stall(
        _binomial_weights(adversaries, won, scale),
        _binomial_weights(participants - adversaries, won, scale),
        parameters,
    )
    denominator = scale**participants
    return CommitteeRisk(
        capture=float(Fraction(captured, denominator)),
        honest_stall=float(Fraction(stalled, denominator)),
        participants=participants,
        committees=(k,),
    )


def open_committee_risk(parameters: TaskParameters, adversary_share: float) -> CommitteeRisk:
    """The risk in the limit of many participants, an ``adversary_share`` of them hostile,
    the worst over every committee size the task can reach."""
    check_adversary_share(adversary_share)
    summed: list[CommitteeRisk] = []
    for size in escalated_committees(parameters, saturation=None):
        capture_bound, stall_bound = _chernoff_bounds(parameters, adversary_share, size)
        if summed:
            worst = _worst(summed)
            # A bound of 1 (an adversary with the share it needs) says nothing more to sum.
            pairs = ((capture_bound, worst.capture), (stall_bound, worst.honest_stall))
            settled = all(bound <= figure or bound >= 1 for bound, figure in pairs)
            if settled or size > _LARGEST_SUMMED_COMMITTEE:
                return CommitteeRisk(
                    capture=max(worst.capture, capture_bound),
                    honest_stall=max(worst.honest_stall, stall_bound),
                    participants=None,
                    committees=worst.committees,
                )
        summed.append(_poisson_risk(replace(parameters, expected_committee=size), adversary_share))
    return _worst(summed)


def _poisson_risk(parameters: TaskParameters, adversary_share: float) -> CommitteeRisk:
    """:func:`open_committee_risk` at the one size ``parameters.expected_committee``."""
    k = parameters.expected_committee
    captured, stalled = _capture_and_stall(
        _poisson_weights(adversary_share * k),
        _poisson_weights((1 - adversary_share) * k),
        parameters,
    )
    return CommitteeRisk(
        capture=min(1.0, captured),
        honest_stall=min(1.0, stalled),
        participants=None,
        committees=(k,),
    )


def escalated_committees(parameters: TaskParameters, saturation: int | None) -> list[int]:
    """The expected committee sizes a round can draw with: ``k·2^j`` for ``j < maxAttempts``,
    saturating at the largest uint32 as the contract does, up to the first that reaches
    ``saturation`` (the ``k`` from which every key is seated), if given."""
    sizes = [parameters.expected_committee]
    while len(sizes) < parameters.max_attempts and sizes[-1] < UINT32_MAX:
        if saturation is not None and sizes[-1] >= saturation:
            break
        sizes.append(min(2 * sizes[-1], UINT32_MAX))
    return sizes


def _worst(risks: list[CommitteeRisk]) -> CommitteeRisk:
    """Each probability's largest value over ``risks`` (one per committee size)."""
    return CommitteeRisk(
        capture=max(risk.capture for risk in risks),
        honest_stall=max(risk.honest_stall for risk in risks),
        participants=risks[0].participants,
        committees=tuple(size for risk in risks for size in risk.committees),
    )


def _chernoff_bounds(
    parameters: TaskParameters, adversary_share: float, size: int
) -> tuple[float, float]:
    """Upper bounds on capture and stall in the many-participants limit at expected committee
    ``size``, each falling as ``size`` grows (so each also bounds every larger size).

    With ``q = quorumBps / 10000``, ``X ~ Poisson(a·m)`` and ``Y ~ Poisson((1-a)·m)``:
    capture implies ``(1-q)·X - q·Y >= 0`` and a stall ``Y < minCommittee`` or
    ``q·X - (1-q)·Y > 0``; each linear event gets its optimal exponential-moment bound
    ``exp(m·rate)`` (``rate < 0`` when the adversary is short of the share it needs, else the
    bound is 1) and ``P(Y <= c)`` its Poisson tail bound ``e^-μ·(eμ/c)^c`` for ``μ > c``.
    """
    a, q = adversary_share, parameters.quorum_bps / BASIS_POINTS
    capture = _linear_tail(a, q, size)
    short = _poisson_lower_tail((1 - a) * size, parameters.min_committee - 1)
    stall = min(1.0, short + _linear_tail(a, 1 - q, size))
    return capture, stall


def _linear_tail(a: float, share_needed: float, mean: float) -> float:
    """A Chernoff bound on ``P((1-s)·X - s·Y >= 0)`` for ``X ~ Poisson(a·m)``,
    ``Y ~ Poisson((1-a)·m)`` and ``s = share_needed``: the chance that a side holding ``a``
    of the expected seats holds ``s`` of the drawn ones."""
    if a == 0:
        return 0.0
    if a >= share_needed:
        return 1.0
    s = share_needed
    # The optimal tilt gives rate = exp(-D(s || a)) - 1, D the Bernoulli relative entropy.
    divergence = s * math.log(s / a) + (1 - s) * math.log((1 - s) / (1 - a))
    return math.exp(mean * math.expm1(-divergence))


def _poisson_lower_tail(mean: float, most: int) -> float:
    """A bound on ``P(Y <= most)`` for ``Y ~ Poisson(mean)``, falling in ``mean`` past
    ``most``; 1 up to there."""
    if most < 0:
        return 0.0
    if mean <= most:
        return 1.0
    if most == 0:
        return math.exp(-mean)
    return math.exp(-mean + most * (1 + math.log(mean / most)))


def _capture_and_stall(
    adversary: list[Weight], honest: list[Weight], parameters: TaskParameters
) -> tuple[Weight, Weight]:
    """The capture and stall sums over the joint seat distribution, in the weights' scale:
    ``adversary[x]`` and ``honest[y]`` weigh ``x`` adversary and ``y`` honest seats."""
    quorum = parameters.quorum_bps
    minimum = parameters.min_committee
    honest_prefix = _prefix_sums(honest)
    captured = honest[0] * 0
    for seats, weight in enumerate(adversary):
        low = max(0, minimum - seats)
        high = min(len(honest) - 1, _most_honest_seats_captured(seats, quorum))
        if low <= high:
            captured += weight * (honest_prefix[high + 1] - honest_prefix[low])

    adversary_suffix = _suffix_sums(adversary)
    stalled = honest[0] * 0
    for seats, weight in enumerate(honest):
        fewest = 0 if seats < minimum else _fewest_adversary_seats_blocking(seats, quorum)
        if fewest < len(adversary):
            stalled += weight * adversary_suffix[fewest]
    return captured, stalled


def staked_committee_risk(
    parameters: TaskParameters, adversary_stakes: list[int], honest_stakes: list[int]
) -> CommitteeRisk:
    """The risk when the snapshot's keys hold these stakes, the adversary's and the honest
    members': each key is seated with probability ``min(1, k·stake/T)``."""
    total = sum(adversary_stakes) + sum(honest_stakes)
    if total <= 0 or min(adversary_stakes + honest_stakes, default=0) < 0:
        raise ConfigError("the bound needs non-negative stakes with a positive total")
    # Every key with a stake is seated once k·stake >= T for the smallest of them.
    smallest = min(stake for stake in adversary_stakes + honest_stakes if stake > 0)
    saturation = -(-total // smallest)
    return _worst(
        [
            _staked_risk(
                replace(parameters, expected_committee=size), adversary_stakes, honest_stakes
            )
            for size in escalated_committees(parameters, saturation)
        ]
    )


def _staked_risk(
    parameters: TaskParameters, adversary_stakes: list[int], honest_stakes: list[int]
) -> CommitteeRisk:
    """:func:`staked_committee_risk` at the one size ``parameters.expected_committee``."""
    total = sum(adversary_stakes) + sum(honest_stakes)
    k = parameters.expected_committee
    captured, stalled = _capture_and_stall(
        _bernoulli_sum_weights([min(1.0, k * s / total) for s in adversary_stakes]),
        _bernoulli_sum_weights([min(1.0, k * s / total) for s in honest_stakes]),
        parameters,
    )
    participants = len(adversary_stakes) + len(honest_stakes)
    return CommitteeRisk(
        capture=min(1.0, captured),
        honest_stall=min(1.0, stalled),
        participants=participants,
        committees=(k,),
    )


def adversaries_for_share(participants: int, adversary_share: float) -> int:
    """Keys an adversary with at least ``adversary_share`` of ``participants`` holds."""
    check_adversary_share(adversary_share)
    # Rounded first so that 0.2 * 10 counts as 2 keys, not 3.
    return math.ceil(round(adversary_share * participants, 9))


def check_capture_bound(risk: CommitteeRisk, bound: float, adversary: str) -> None:
    """Refuse parameters whose capture probability per attempt exceeds ``bound``."""
    if not 0 <= bound <= 1:
        raise ConfigError(f"--max-capture-probability must lie in [0, 1], got {bound}")
    if risk.capture > bound:
        raise ConfigError(
            f"{risk.describe(adversary)} exceeds --max-capture-probability {bound:g}: "
            "raise --committee or --quorum, or give --force"
        )


def check_adversary_share(adversary_share: float) -> None:
    """Refuse a share that is not a probability below one."""
    if not 0 <= adversary_share < 1:
        raise ConfigError(f"--adversary-share must lie in [0, 1), got {adversary_share}")


def _binomial_weights(trials: int, won: int, scale: int) -> list[int]:
    """``C(trials, s) * won^s * (scale - won)^(trials - s)`` for each seat count ``s``: the
    probabilities of ``Bin(trials, won / scale)`` times ``scale^trials``."""
    lost = scale - won
    return [
        math.comb(trials, seats) * won**seats * lost ** (trials - seats)
        for seats in range(trials + 1)
    ]


def _bernoulli_sum_weights(probabilities: list[float]) -> list[float]:
    """The distribution of the number of successes of independent draws with these odds."""
    weights = [1.0]
    for p in probabilities:
        weights = [
            (weights[s] if s < len(weights) else 0.0) * (1 - p)
            + (weights[s - 1] * p if s > 0 else 0.0)
            for s in range(len(weights) + 1)
        ]
    return weights


def _poisson_weights(mean: float) -> list[float]:
    """``Poisson(mean)`` probabilities from 0 to far past the mean, each from its logarithm."""
    if mean == 0:
        return [1.0]
    last = math.ceil(mean + _POISSON_TAIL_SIGMAS * math.sqrt(mean) + _POISSON_TAIL_SIGMAS)
    log_mean = math.log(mean)
    return [math.exp(seats * log_mean - mean - math.lgamma(seats + 1)) for seats in range(last + 1)]


def _most_honest_seats_captured(adversary_seats: int, quorum_bps: int) -> int:
    """The most honest seats beside ``adversary_seats`` at which those alone reach quorum:
    ``10000 * x >= quorum * (x + y)``."""
    return adversary_seats * BASIS_POINTS // quorum_bps - adversary_seats


def _fewest_adversary_seats_blocking(honest_seats: int, quorum_bps: int) -> int:
    """The fewest adversary seats that lift the threshold above ``honest_seats``:
    ``10000 * y < quorum * (x + y)``."""
    return honest_seats * (BASIS_POINTS - quorum_bps) // quorum_bps + 1


def _prefix_sums(weights: list[Weight]) -> list[Weight]:
    """``sums[i]`` is the total of ``weights[:i]``; summed from the small lower tail up."""
    sums = [weights[0] * 0]
    for weight in weights:
        sums.append(sums[-1] + weight)
    return sums


def _suffix_sums(weights: list[Weight]) -> list[Weight]:
    """``sums[i]`` is the total of ``weights[i:]``; summed from the small upper tail down."""
    sums = [weights[0] * 0] * (len(weights) + 1)
    for index in range(len(weights) - 1, -1, -1):
        sums[index] = sums[index + 1] + weights[index]
    return sums

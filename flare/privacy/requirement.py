"""A task's demand for client-level DP, published in its manifest for anyone to audit.

The task creator states the largest ε (at δ) a participant may spend over the task's
rounds, and the clip and noise multiplier that meet it. A participant refuses to run
without DP settings at least that strong: a clip no larger than the task's (no update
carries more signal than the task allows) and a noise multiplier whose ε over all the
task's rounds stays within the task's maximum.
"""

import math
from dataclasses import dataclass
from typing import Any

from flare.errors import ConfigError
from flare.privacy.accounting import calibrate_noise_multiplier, epsilon_after
from flare.privacy.params import DPParams

REQUIREMENT_KEYS = ("clip", "delta", "max_epsilon", "noise_multiplier")


class PrivacyRequirementError(ConfigError):
    """A participant's DP settings do not meet what its task requires."""


@dataclass(frozen=True)
class PrivacyRequirement:
    """Client-level DP a task requires of every participant."""

    max_epsilon: float
    delta: float
    clip: float
    noise_multiplier: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_epsilon) and self.max_epsilon > 0):
            raise ConfigError(f"the maximum ε must be a positive number, got {self.max_epsilon}")
        if not (math.isfinite(self.delta) and 0 < self.delta < 1):
            raise ConfigError(f"δ must lie in (0, 1), got {self.delta}")
        if self.noise_multiplier == 0:
            raise ConfigError("a DP requirement needs noise: the noise multiplier must be > 0")
        DPParams(self.clip, self.noise_multiplier)  # checks both ranges

    @classmethod
    def calibrated(
        cls, max_epsilon: float, delta: float, clip: float, rounds: int
    ) -> "PrivacyRequirement":
        """The requirement whose noise multiplier spends exactly ``max_epsilon`` in ``rounds``."""
        z = calibrate_noise_multiplier(max_epsilon, delta, rounds)
        return cls(max_epsilon=max_epsilon, delta=delta, clip=clip, noise_multiplier=z)

    @property
    def params(self) -> DPParams:
        """The DP settings the requirement names: what a participant runs to meet it."""
        return DPParams(self.clip, self.noise_multiplier)

    def to_json(self) -> dict[str, float]:
        return {key: float(getattr(self, key)) for key in REQUIREMENT_KEYS}

    @classmethod
    def from_json(cls, value: Any) -> "PrivacyRequirement":
        """Parse the manifest's ``privacy`` object; :class:`ConfigError` for anything else."""
        if not isinstance(value, dict) or set(value) != set(REQUIREMENT_KEYS):
            raise ConfigError(
                f"privacy must be an object with exactly {', '.join(REQUIREMENT_KEYS)}"
            )
        for key in REQUIREMENT_KEYS:
            number = value[key]
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ConfigError(f"privacy.{key} must be a number")
        return cls(**{key: float(value[key]) for key in REQUIREMENT_KEYS})

    def describe(self, rounds: int) -> str:
        """One line: what the task requires, for logs, errors and ``flare task status``."""
        return (
            f"client-level DP with ε ≤ {self.max_epsilon:g} at δ = {self.delta:g} over "
            f"{rounds} rounds (clip {self.clip:g}, noise multiplier {self.noise_multiplier:.6g})"
        )


def check_participant_privacy(
    requirement: PrivacyRequirement | None, params: DPParams | None, rounds: int
) -> None:
    """Refuse, in one line, DP settings weaker than the task requires (none: no demand)."""
    if requirement is None:
        return
    advice = (
        f"run with --dp-clip {requirement.clip:g} "
        f"--dp-noise-multiplier {rounded_up(requirement.noise_multiplier)} or stronger"
    )
    if params is None:
        raise PrivacyRequirementError(
            f"this task requires {requirement.describe(rounds)}; this participant runs without "
            f"DP: {advice}"
        )
    if params.clip > requirement.clip:
        raise PrivacyRequirementError(
            f"--dp-clip {params.clip:g} exceeds the task's clip {requirement.clip:g}: {advice}"
        )
    spent = epsilon_after(rounds, params.noise_multiplier, requirement.delta)
    if spent > requirement.max_epsilon:
        raise PrivacyRequirementError(
            f"--dp-noise-multiplier {params.noise_multiplier:g} would spend ε {spent:.3g} at "
            f"δ = {requirement.delta:g} over the task's {rounds} rounds, above its maximum "
            f"{requirement.max_epsilon:g}: {advice}"
        )


def rounded_up(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits, rounded up: more noise is always allowed."""
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    return f"{math.ceil(value * scale) / scale:g}"

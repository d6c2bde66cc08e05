"""Every attack ``flare simulate --attack`` can mount, by name."""

import numpy as np

from flare.errors import ConfigError
from flare.federation.adaptive import AdaptiveMiAttack
from flare.federation.backdoor import BackdoorAttack
from flare.federation.clients import (
    Attack,
    LabelFlipAttack,
    NoiseAttack,
    RandomWeightsAttack,
    ScalingAttack,
    SignFlipAttack,
)
from flare.federation.collusion import (
    AlieAttack,
    CollusionAttack,
    IpmAttack,
    MinMaxAttack,
    MinSumAttack,
)
from flare.federation.config import check_count_factor

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (
        NoiseAttack,
        RandomWeightsAttack,
        SignFlipAttack,
        ScalingAttack,
        LabelFlipAttack,
        AlieAttack,
        IpmAttack,
        MinMaxAttack,
        MinSumAttack,
        AdaptiveMiAttack,
        BackdoorAttack,
    )
}
WITHOUT_STRENGTH = (LabelFlipAttack, MinMaxAttack, MinSumAttack, AdaptiveMiAttack)
"""Attacks with no main parameter: a given strength is ignored (min-max and adaptive-mi
search their own)."""


def make_attack(
    name: str,
    strength: float | None = None,
    knowledge: str = "full",
    count_factor: float = 1.0,
) -> Attack:
    """Instantiate a named attack; ``strength`` overrides its main parameter, ``knowledge``
    says what a colluding attack's bloc has seen (ignored by the others), and
    ``count_factor`` inflates every sample count the attackers claim."""
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    check_count_factor(count_factor)
    cls = ATTACKS[name]
    options: dict[str, str] = {"knowledge": knowledge} if issubclass(cls, CollusionAttack) else {}
    if strength is None or cls in WITHOUT_STRENGTH:
        attack = cls(**options)
    elif not np.isfinite(strength) or strength <= 0:
        raise ConfigError(f"attack strength must be a positive number, got {strength}")
    else:
        attack = cls(strength, **options)
    attack.count_factor = float(count_factor)
    return attack

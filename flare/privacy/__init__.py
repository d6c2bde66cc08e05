"""Client-level differential privacy: clipping and Gaussian noise on the device, accounting.

``mechanism`` is what a device runs before its update leaves it; ``accounting`` turns
the noise multiplier into ε at δ per client with Google's ``dp_accounting``, and back;
``requirement`` is what a task's manifest may demand of its participants.
"""

from flare.privacy.accounting import (
    DEFAULT_DELTA,
    PrivacyLedger,
    calibrate_noise_multiplier,
    epsilon_after,
    resolve_dp_params,
)
from flare.privacy.mechanism import DPParams, LocalDP, clip_update, l2_norm, privatize
from flare.privacy.requirement import (
    PrivacyRequirement,
    PrivacyRequirementError,
    check_participant_privacy,
)

__all__ = [
    "DEFAULT_DELTA",
    "DPParams",
    "LocalDP",
    "PrivacyLedger",
    "PrivacyRequirement",
    "PrivacyRequirementError",
    "calibrate_noise_multiplier",
    "check_participant_privacy",
    "clip_update",
    "epsilon_after",
    "l2_norm",
    "privatize",
    "resolve_dp_params",
]

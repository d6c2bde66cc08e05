"""Client-level differential privacy: clipping and Gaussian noise on the device, accounting.

``mechanism`` is what a device runs before its update leaves it; ``params`` the parameters
it runs with; ``accounting`` turns the noise multiplier into ε at δ per client with
Google's ``dp_accounting``, and back; ``requirement`` is what a task's manifest may demand
of its participants.
"""

from typing import TYPE_CHECKING, Any

from flare.privacy.accounting import (
    DEFAULT_DELTA,
    PrivacyLedger,
    calibrate_noise_multiplier,
    epsilon_after,
    resolve_dp_params,
)
from flare.privacy.params import DPParams
from flare.privacy.requirement import (
    PrivacyRequirement,
    PrivacyRequirementError,
    check_participant_privacy,
)

if TYPE_CHECKING:
    from flare.privacy.mechanism import LocalDP, clip_update, l2_norm, privatize

# The mechanism works on arrays and so imports numpy; importing this package (as the
# simulation's configuration does, for its DP checks) must not.
_MECHANISM_NAMES = frozenset({"LocalDP", "clip_update", "l2_norm", "privatize"})


def __getattr__(name: str) -> Any:
    if name in _MECHANISM_NAMES:
        from flare.privacy import mechanism

        return getattr(mechanism, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

"""Privacy accounting with Google's ``dp_accounting`` (its RDP accountant), per client.

The mechanism and its neighbouring relation (docs/privacy.md): each round a client
publishes ``clip(Δ) + N(0, (z·C)² I)``. Two neighbouring inputs are two whole local
datasets of one client, one replacing the other; their clipped updates differ by at most
``2C`` in L2. A Gaussian mechanism's privacy depends on the ratio of the noise's standard
deviation to that sensitivity, here ``z·C / 2C = z / 2``: that is the noise multiplier
handed to the accountant (``dp_accounting.GaussianDpEvent`` takes sensitivity 1). Each
round a client takes part in is one such release; releases compose.
"""

import functools
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flare.errors import ConfigError
from flare.privacy.params import DPParams

NEIGHBOURING_RELATION = "replace-one client's whole dataset"
SENSITIVITY_IN_CLIPS = 2.0
"""L2 distance between two clipped updates, in units of the clip, under replace-one."""
ACCOUNTANT = "dp_accounting RDP accountant"
DEFAULT_DELTA = 1e-5

if TYPE_CHECKING:
    import dp_accounting

# dp_accounting (with scipy) takes seconds to import; only runs with DP pay for it.


def release_event(noise_multiplier: float, releases: int) -> "dp_accounting.DpEvent":
    """The DP event of ``releases`` published updates noised with multiplier ``z``."""
    import dp_accounting

    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier / SENSITIVITY_IN_CLIPS)
    return dp_accounting.SelfComposedDpEvent(gaussian, releases)


@functools.lru_cache(maxsize=4096)
def epsilon_after(releases: int, noise_multiplier: float, delta: float) -> float:
    """ε at ``delta`` of one client after ``releases`` published updates (∞ without noise)."""
    if releases < 0:
        raise ValueError("releases must be non-negative")
    if releases == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    from dp_accounting import rdp

    accountant = rdp.RdpAccountant()
    accountant.compose(release_event(noise_multiplier, releases))
    return float(accountant.get_epsilon(delta))


def calibrate_noise_multiplier(target_epsilon: float, delta: float, releases: int) -> float:
    """The smallest noise multiplier whose ε after ``releases`` updates is at most the target."""
    check_epsilon_delta(target_epsilon, delta)
    if releases < 1:
        raise ConfigError("calibrating the noise needs at least one round")
    import dp_accounting
    from dp_accounting import rdp

    z = dp_accounting.calibrate_dp_mechanism(
        rdp.RdpAccountant,
        lambda multiplier: release_event(multiplier, releases),
        target_epsilon,
        delta,
        tol=1e-6,
    )
    return float(z)


def check_epsilon_delta(epsilon: float, delta: float) -> None:
    """Refuse a target ε that is not positive and a δ outside (0, 1)."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError(f"--dp-epsilon must be a positive number, got {epsilon}")
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ConfigError(f"--dp-delta must lie in (0, 1), got {delta}")


def resolve_dp_params(
    clip: float | None,
    noise_multiplier: float | None,
    target_epsilon: float | None,
    delta: float,
    rounds: int,
) -> DPParams | None:
    """The device's DP parameters from the options, or ``None`` when DP is off.

    Either ``noise_multiplier`` is given, or it is calibrated so that a client taking
    part in all ``rounds`` rounds ends at ``target_epsilon`` at ``delta``.
    """
    check_dp_options(clip, noise_multiplier, target_epsilon, delta)
    if clip is None:
        return None
    if noise_multiplier is None:
        assert target_epsilon is not None  # check_dp_options demands one of the two
        noise_multiplier = calibrate_noise_multiplier(target_epsilon, delta, rounds)
    return DPParams(clip=clip, noise_multiplier=noise_multiplier)


def check_dp_options(
    clip: float | None,
    noise_multiplier: float | None,
    target_epsilon: float | None,
    delta: float,
) -> None:
    """Refuse an incomplete or contradictory set of ``--dp-*`` options."""
    if clip is None:
        if noise_multiplier is not None or target_epsilon is not None:
            raise ConfigError("--dp-noise-multiplier and --dp-epsilon need --dp-clip")
        return
    if noise_multiplier is None and target_epsilon is None:
        raise ConfigError("--dp-clip needs --dp-noise-multiplier or --dp-epsilon")
    if noise_multiplier is not None and target_epsilon is not None:
        raise ConfigError("give --dp-noise-multiplier or --dp-epsilon, not both")
    if target_epsilon is not None:
        check_epsilon_delta(target_epsilon, delta)
    elif not (math.isfinite(delta) and 0 < delta < 1):
        raise ConfigError(f"--dp-delta must lie in (0, 1), got {delta}")
    # Constructing the parameters checks the clip's range (and the multiplier's, if given).
    DPParams(clip, 0.0 if noise_multiplier is None else noise_multiplier)


class PrivacyLedger:
    """How many updates each client has published, and its ε at δ after each round."""

    def __init__(self, params: DPParams, delta: float) -> None:
        self.params = params
        self.delta = delta
        self.releases: dict[str, int] = {}

    def record_round(self, senders: Iterable[str]) -> dict[str, Any]:
        """Count one release for each sender; return ε (max and per client) so far."""
        for client in senders:
            self.releases[client] = self.releases.get(client, 0) + 1
        per_client = {
            client: epsilon_after(count, self.params.noise_multiplier, self.delta)
            for client, count in self.releases.items()
        }
        return {"epsilon": max(per_client.values(), default=0.0), "clients": per_client}

    def describe(self) -> dict[str, Any]:
        """The mechanism and accountant, as the report states them."""
        return {
            "clip": self.params.clip,
            "noise_multiplier": self.params.noise_multiplier,
            "noise_std": self.params.noise_std,
            "delta": self.delta,
            "neighbouring_relation": NEIGHBOURING_RELATION,
            "sensitivity": SENSITIVITY_IN_CLIPS * self.params.clip,
            "accountant": ACCOUNTANT,
        }

"""A device's DP parameters, apart from the mechanism that applies them.

Configuration and accounting check and carry these parameters without touching an array;
keeping them out of :mod:`flare.privacy.mechanism` spares them (and ``flare simulate
--help``, which reads the configuration's defaults) the import of numpy.
"""

import math
from dataclasses import dataclass

from flare.errors import ConfigError

MAX_PARAMETER = 1e6
"""Upper bound on the clip and the noise multiplier: keeps the noise finite in float32."""


@dataclass(frozen=True)
class DPParams:
    """How one device privatises its updates: L2 clipping bound and noise multiplier ``z``."""

    clip: float
    noise_multiplier: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip) and 0 < self.clip <= MAX_PARAMETER):
            raise ConfigError(f"--dp-clip must lie in (0, {MAX_PARAMETER:g}], got {self.clip}")
        z = self.noise_multiplier
        if not (math.isfinite(z) and 0 <= z <= MAX_PARAMETER):
            raise ConfigError(f"--dp-noise-multiplier must lie in [0, {MAX_PARAMETER:g}], got {z}")

    @property
    def noise_std(self) -> float:
        """Standard deviation of the noise on each coordinate."""
        return self.noise_multiplier * self.clip

"""The configuration of one simulation run: every option of ``flare simulate``."""

import importlib.util
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from flare.errors import ConfigError
from flare.privacy.accounting import DEFAULT_DELTA, check_dp_options

BACKENDS = ("local", "ray")
"""Where clients train: in this process, or as Ray actors (``pip install 'flare[ray]'``)."""

MAX_SEED = 2**64 - 1
"""The largest seed every consumer accepts (torch's generator takes 64 bits)."""


def check_seed(seed: int) -> None:
    """Refuse a seed that numpy or torch would reject only once the run is under way."""
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must lie in [0, 2**64 - 1], got {seed}")


def check_alpha(alpha: float) -> None:
    """A Dirichlet concentration must be a positive finite number: an infinite one gives NaN
    shares, which split the data into empty clients."""
    if not (math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"--alpha must be a positive finite number, got {alpha}")


def check_count_factor(count_factor: float) -> None:
    """Refuse a count inflation that is not a finite factor of at least 1."""
    if not (math.isfinite(count_factor) and count_factor >= 1.0):
        raise ConfigError(
            f"--attack-count-factor must be a finite number of at least 1, got {count_factor}"
        )


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a run; with the same config, the same result."""

    dataset: str = "digits"
    model: str = "mlp"
    clients: int = 10
    rounds: int = 10
    partition: str = "iid"
    alpha: float = 0.5
    malicious: int = 3
    attack: str = "sign-flip"
    attack_strength: float | None = None
    attack_knowledge: str = "full"
    attack_count_factor: float = 1.0
    """Every attacker claims this many times its true sample count."""
    aggregator: str = "mi"
    codec: str = "none"
    rank: int = 4
    dropout: float = 0.0
    seed: int = 0
    local_epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 0.05
    max_update_bytes: int = 64 * 1024 * 1024
    aggregator_params: dict[str, Any] = field(default_factory=dict)
    dp_clip: float | None = None
    """Client-level DP: L2 bound on each update (``None``: DP off). See docs/privacy.md."""
    dp_noise_multiplier: float | None = None
    """Noise standard deviation per coordinate, in units of ``dp_clip``."""
    dp_epsilon: float | None = None
    """Target ε at ``dp_delta`` after all rounds; the noise multiplier is calibrated to it."""
    dp_delta: float = DEFAULT_DELTA
    backend: str = "local"
    """Where clients train and encode; the result is the same on every backend."""
    ray_address: str | None = None
    """``--backend ray``: the cluster to join (``None``: start a Ray on this machine)."""
    workers: int | None = None
    """``--backend ray``: actors holding the clients (``None``: one per CPU of the cluster)."""

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ConfigError("--clients must be at least 1")
        if self.rounds < 1:
            raise ConfigError("--rounds must be at least 1")
        if not 0 <= self.malicious <= self.clients:
            raise ConfigError(f"--malicious must lie in [0, {self.clients}]")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("--dropout must lie in [0, 1)")
        if self.attack_knowledge not in ("full", "partial"):
            raise ConfigError(
                f"--attack-knowledge must be 'full' or 'partial', got {self.attack_knowledge!r}"
            )
        check_count_factor(self.attack_count_factor)
        if self.rank < 1:
            raise ConfigError("--rank must be at least 1")
        check_alpha(self.alpha)
        check_seed(self.seed)
        if self.local_epochs < 1:
            raise ConfigError("--local-epochs must be at least 1")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(
                f"--learning-rate must be a positive finite number, got {self.learning_rate}"
            )
        if self.max_update_bytes < 1:
            raise ConfigError("the update size limit must be at least 1 byte")
        check_dp_options(self.dp_clip, self.dp_noise_multiplier, self.dp_epsilon, self.dp_delta)
        self._check_backend()

    def _check_backend(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.backend == "ray" and importlib.util.find_spec("ray") is None:
            raise ConfigError("--backend ray needs Ray: pip install 'flare[ray]'")
        if self.backend != "ray":
            given = [
                option
                for option, value in (
                    ("--ray-address", self.ray_address),
                    ("--workers", self.workers),
                )
                if value is not None
            ]
            if given:
                raise ConfigError(f"{', '.join(given)} only apply to --backend ray")
        if self.workers is not None and self.workers < 1:
            raise ConfigError("--workers must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

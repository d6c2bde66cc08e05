"""The configuration of one simulation run: every option of ``flare simulate``."""

from dataclasses import asdict, dataclass, field
from typing import Any

from flare.errors import ConfigError
from flare.privacy.accounting import DEFAULT_DELTA, check_dp_options


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

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ConfigError("--clients must be at least 1")
        if self.rounds < 1:
            raise ConfigError("--rounds must be at least 1")
        if not 0 <= self.malicious <= self.clients:
            raise ConfigError(f"--malicious must lie in [0, {self.clients}]")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("--dropout must lie in [0, 1)")
        if self.rank < 1:
            raise ConfigError("--rank must be at least 1")
        if not self.alpha > 0:
            raise ConfigError("--alpha must be positive")
        if self.local_epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ConfigError("local epochs, batch size and learning rate must be positive")
        check_dp_options(self.dp_clip, self.dp_noise_multiplier, self.dp_epsilon, self.dp_delta)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

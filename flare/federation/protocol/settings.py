"""How a simulated task is set up on chain, and where its chain and store live."""

from dataclasses import dataclass
from pathlib import Path

from flare.errors import ConfigError
from flare.federation.config import SimulationConfig

UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class ProtocolConfig:
    """How the task is set up on chain, and where chain and store live."""

    expected_committee: int = 5
    min_committee: int = 3
    quorum_bps: int = 6667
    min_clients: int = 1
    dishonest_committee: bool = False
    max_attempts: int = 20
    state: Path | None = None
    store: Path | None = None
    chain_url: str | None = None
    deployment: Path | None = None

    def __post_init__(self) -> None:
        if self.expected_committee < 1 or self.min_committee < 1:
            raise ConfigError("--committee and --min-committee must be at least 1")
        if not 1 <= self.quorum_bps <= 10_000:
            raise ConfigError("--quorum must lie in [1, 10000] basis points")
        if self.min_clients < 1 or self.max_attempts < 1:
            raise ConfigError("--min-clients and the attempt limit must be at least 1")
        if self.expected_committee > UINT32_MAX:
            raise ConfigError(f"--committee must be at most {UINT32_MAX} (a uint32 on chain)")

    def check_fits(self, config: SimulationConfig) -> None:
        """Refuse a task that could never decide a round, or that the contract cannot hold."""
        for option, needed in (
            ("--min-committee", self.min_committee),
            ("--min-clients", self.min_clients),
        ):
            if needed > config.clients:
                raise ConfigError(
                    f"{option} {needed} exceeds the {config.clients} clients: no round could "
                    "ever be decided"
                )
        if config.rounds > UINT32_MAX:
            raise ConfigError(f"--rounds must be at most {UINT32_MAX} (a uint32 on chain)")

"""How a simulated task is set up on chain, and where its chain and store live."""

from dataclasses import dataclass, replace
from pathlib import Path

from flare.config import NetworkConfig
from flare.errors import ConfigError
from flare.federation.config import SimulationConfig
from flare.federation.task_parameters import DEFAULT_TASK_PARAMETERS, TaskParameters


@dataclass(frozen=True)
class ProtocolConfig:
    """How the task is set up on chain, and where chain and store live.

    ``task`` holds the committee rules and the attempt limit; the task a run creates takes
    its rounds and windows from the run (:meth:`task_parameters`).
    """

    task: TaskParameters = DEFAULT_TASK_PARAMETERS
    dishonest_committee: bool = False
    state: Path | None = None
    store: Path | None = None
    chain_url: str | None = None
    deployment: Path | None = None

    def task_parameters(self, config: SimulationConfig) -> TaskParameters:
        """The parameters of the task a run of ``config`` creates (checked as it is built)."""
        # Every transaction mines one block, so windows must fit one per participant.
        window = 2 * config.clients + 8
        return replace(
            self.task, max_rounds=config.rounds, submission_window=window, vote_window=window
        )

    def check_fits(self, config: SimulationConfig) -> None:
        """Refuse a task that could never decide a round, or that the contract would refuse."""
        self.task_parameters(config)
        for option, needed in (
            ("--min-committee", self.task.min_committee),
            ("--min-clients", self.task.min_clients),
        ):
            if needed > config.clients:
                raise ConfigError(
                    f"{option} {needed} exceeds the {config.clients} clients: no round could "
                    "ever be decided"
                )

    def network(self) -> NetworkConfig | None:
        """The chain to open with :func:`flare.config.open_chain`: the development node at
        ``chain_url``, the embedded chain journaled to ``state``, or (``None``) a fresh
        embedded chain in memory."""
        if self.chain_url is not None:
            return NetworkConfig(rpc_url=self.chain_url, deployment=self.deployment)
        if self.state is not None:
            return NetworkConfig(rpc_url=None, state=self.state)
        return None

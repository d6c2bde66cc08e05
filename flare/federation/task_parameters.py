"""A task's on-chain parameters: their defaults and the one check of them, in one place.

``flare task create``, ``flare simulate``, :class:`~flare.federation.agents.TaskSpec` and
:class:`~flare.federation.protocol.settings.ProtocolConfig` all read the defaults here, and
every value the contract's ``createTask`` would refuse is refused here, before a blob is
uploaded or a transaction signed, in words that name the command-line option.

The module imports nothing but :mod:`flare.errors`: ``--help`` reads its defaults, and must
not wait for the chain layer, numpy or torch.
"""

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

from flare.errors import ConfigError

if TYPE_CHECKING:
    from flare.chain import TaskParams

UINT32_MAX = 2**32 - 1
"""The contract keeps counts, rounds and windows as uint32."""
BASIS_POINTS = 10_000
MIN_QUORUM_BPS = 5_001
"""The contract's least quorum: a strict majority of the committee."""

OPTION_NAMES = {
    "max_rounds": "--rounds",
    "min_clients": "--min-clients",
    "expected_committee": "--committee",
    "min_committee": "--min-committee",
    "quorum_bps": "--quorum",
    "submission_window": "--submission-window",
    "vote_window": "--vote-window",
}
"""The command-line option that sets each parameter, in the order ``--help`` lists them; no
option sets the attempt limit."""


@dataclass(frozen=True)
class TaskParameters:
    """What ``createTask`` fixes for the task's life (docs/protocol.md §2.2); windows in blocks.

    The field names are those of :class:`flare.chain.TaskParams`. On a chain with a block
    every ``t`` seconds a window of ``w`` blocks lasts ``w·t`` seconds: the submission window
    must cover a device's training and upload, the vote window the committee's download,
    aggregation, one proposal and its votes.
    """

    min_clients: int = 1
    """Registrations the task needs before it starts; submissions a proposal needs."""
    expected_committee: int = 40
    """How many seats the VRF draw is tuned to fill (k). Forty keeps the chance that a fifth of
    the participants alone reach a two-thirds quorum below 1e-8 per attempt however many
    register (:mod:`flare.federation.safety`); five, the old default, let them about 1 in 130."""
    min_committee: int = 3
    """Seats a round attempt needs to decide."""
    quorum_bps: int = 6667
    """Approvals a proposal needs, in basis points of the seated committee."""
    submission_window: int = 30
    vote_window: int = 30
    max_rounds: int = 10
    max_attempts: int = 20
    """Attempts a round may take before the task fails."""

    def __post_init__(self) -> None:
        """The checks of the contract's ``createTask``, and the uint32 bound that ABI encoding
        would otherwise hit."""
        for field in fields(self):
            if field.name == "quorum_bps":
                continue  # a uint16 with its own range, below
            option = OPTION_NAMES.get(field.name, "the attempt limit")
            value = getattr(self, field.name)
            if value < 1:
                raise ConfigError(f"{option} must be at least 1, got {value}")
            if value > UINT32_MAX:
                raise ConfigError(f"{option} must be at most {UINT32_MAX} (a uint32 on chain)")
        if self.min_committee > self.expected_committee:
            raise ConfigError(
                f"--min-committee {self.min_committee} exceeds --committee "
                f"{self.expected_committee}: the contract refuses a task that needs more seats "
                "than its draw is tuned to fill"
            )
        if not MIN_QUORUM_BPS <= self.quorum_bps <= BASIS_POINTS:
            raise ConfigError(
                f"--quorum must lie in [{MIN_QUORUM_BPS}, {BASIS_POINTS}] basis points "
                f"(a strict majority of the committee), got {self.quorum_bps}"
            )

    def on_chain(self) -> "TaskParams":
        """The record ``createTask`` takes."""
        from flare.chain import TaskParams

        return TaskParams(**asdict(self))


DEFAULT_TASK_PARAMETERS = TaskParameters()
"""The defaults every command shows in its help and applies when an option is left out."""

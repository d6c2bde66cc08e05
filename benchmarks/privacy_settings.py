"""What the privacy benchmark runs: its fixed settings and the grid of simulations that
measures accuracy against ε (see bench_privacy.py)."""

from dataclasses import dataclass

from flare.federation.config import SimulationConfig

NAME = "privacy"
MODEL = "logreg"
CLIENTS = 10
MALICIOUS = 3
ATTACK = "sign-flip"
AGGREGATORS = ("mi", "fedavg")
DIRICHLET_ALPHA = 0.5
PARTITIONS = {"iid": "IID", "dirichlet": f"Dirichlet α={DIRICHLET_ALPHA:g}"}
CLIP = 1.0
DELTA = 1e-5
EPSILONS = (4.0, 16.0, 64.0, 256.0)
QUICK_EPSILONS = (16.0, 256.0)
NO_DP = None

EXP_LIMIT = 700.0
"""Above this ε, e^ε overflows a float64."""

MIA_CLIENTS = 40
"""Many small clients that train long: the regime where an update leaks membership most."""
MIA_LOCAL_EPOCHS = 20
MIA_EPSILONS = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)
MIA_DRAWS = 3
"""Noise draws per client and ε: the AUC's spread comes from the noise, not just the data."""


@dataclass(frozen=True)
class RunSpec:
    """One simulation of the accuracy grid; ``epsilon`` None is the run without DP."""

    aggregator: str
    partition: str
    attacked: bool
    epsilon: float | None
    rounds: int
    seed: int

    def config(self) -> SimulationConfig:
        dp = {} if self.epsilon is None else {"dp_clip": CLIP, "dp_epsilon": self.epsilon}
        return SimulationConfig(
            dataset="digits",
            model=MODEL,
            clients=CLIENTS,
            rounds=self.rounds,
            partition=self.partition,
            alpha=DIRICHLET_ALPHA,
            malicious=MALICIOUS if self.attacked else 0,
            attack=ATTACK,
            aggregator=self.aggregator,
            seed=self.seed,
            dp_delta=DELTA,
            **dp,
        )


def grid(epsilons: tuple[float, ...], rounds: int, seeds: list[int]) -> list[RunSpec]:
    """The MI filter first: its runs are the longest, so they should not be left to the end."""
    return [
        RunSpec(aggregator, partition, attacked, epsilon, rounds, seed)
        for aggregator in AGGREGATORS
        for partition in PARTITIONS
        for attacked in (False, True)
        for epsilon in (NO_DP, *epsilons)
        for seed in seeds
    ]

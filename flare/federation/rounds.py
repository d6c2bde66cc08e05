"""What every simulated round does, whichever path carries its updates.

The offline simulation and the protocol simulation differ only in how updates travel
(in process, or through chain and store) and who aggregates them. Who takes part, the
seeds they train with, what the colluding bloc forges, how the new model is evaluated, how
long each phase took and what a run costs in memory are the same for both, and live here
once. Where the clients train and encode is a backend's business (``backends``).
"""

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from flare.errors import FlareError
from flare.federation.clients import Client, LocalUpdate, produce_update
from flare.federation.collusion import CollusionAttack, PublicRound
from flare.federation.config import SimulationConfig
from flare.federation.report import (
    RoundRecord,
    RunInterrupted,
    SimulationReport,
    process_peak_rss_mb,
)
from flare.federation.setup import Federation
from flare.models.base import EvalResult
from flare.tensors import Weights


class RunObserver:
    """Hooks a front end uses to show progress; every method is optional."""

    def run_started(self, config: SimulationConfig) -> None:
        """Called once, after set-up, before the first round."""

    def cluster_ready(self, where: str) -> None:
        """Called once clients train on a cluster, with its size (never for the local
        backend)."""

    def round_started(self, round_number: int, participants: int) -> None:
        """Called before any client of the round trains."""

    def client_finished(self, client_id: str) -> None:
        """Called after each client has sent its update."""

    def round_finished(self, record: RoundRecord) -> None:
        """Called with the round's record once the new global model is evaluated."""


@contextmanager
def recording(report: SimulationReport, started: float) -> Iterator[None]:
    """Run a simulation's rounds into ``report``, stamping its time and memory however
    they end.

    Whatever stops the rounds from outside the simulation's own logic (a chain node or
    store that goes away, an OS error, a round that can never be decided, Ctrl-C) becomes
    :class:`RunInterrupted`, whose report keeps the rounds finished and the reason; only
    programming errors pass through untouched.
    """
    try:
        yield
    except (FlareError, OSError, KeyboardInterrupt) as exc:
        report.interrupted = interruption_reason(exc)
        raise RunInterrupted(report) from exc
    finally:
        report.seconds = time.perf_counter() - started
        report.peak_memory_mb = process_peak_rss_mb()


def interruption_reason(exc: BaseException) -> str:
    """One line saying what stopped a run."""
    if isinstance(exc, KeyboardInterrupt):
        return "stopped by the user (SIGINT)"
    text = " ".join(str(exc).split())
    return text if isinstance(exc, FlareError) else f"{type(exc).__name__}: {text}"


def client_seed(seed: int, round_number: int, client_index: int) -> int:
    """Independent, reproducible seed for one client's training in one round (round 0:
    its encoder; index ``clients``: the server's own training)."""
    return int(np.random.SeedSequence([seed, round_number, client_index]).generate_state(1)[0])


def client_order(client_id: str) -> int:
    """Sort key putting ``client-2`` before ``client-10``."""
    return int(client_id.rsplit("-", 1)[-1])


def active_clients(
    config: SimulationConfig, clients: list[Client], round_number: int, attempt: int = 0
) -> tuple[list[tuple[int, Client]], list[str]]:
    """Who takes part in an attempt: not dropped out, and holding any data at all."""
    rng = np.random.default_rng([config.seed, 2, round_number, attempt])
    draws = rng.random(len(clients))
    active, dropped = [], []
    for index, (client, draw) in enumerate(zip(clients, draws, strict=True)):
        if draw < config.dropout or client.num_samples == 0:
            dropped.append(client.client_id)
        else:
            active.append((index, client))
    return active, dropped


def train_round(
    federation: Federation,
    participants: Sequence[tuple[int, Client]],
    base: Weights,
    round_number: int,
) -> dict[str, LocalUpdate]:
    """What every participant sends this round: honest training, its own attack, or the
    colluding bloc's forgery; noised where the task asks for client-level DP.

    The bloc forges last: it has read every honest update of the round first. Each client
    trains with its own seed for the round, so an attempt retried sends the same update.
    """
    updates = own_updates(federation, participants, base, round_number)
    updates.update(forged_updates(federation, updates, base))
    return updates


def own_updates(
    federation: Federation,
    participants: Sequence[tuple[int, Client]],
    base: Weights,
    round_number: int,
) -> dict[str, LocalUpdate]:
    """What each participant computes on its own: everything :func:`train_round` sends but
    the colluding bloc's forgeries (its members train honestly here), in participant order."""
    return {
        client.client_id: _local_update(
            federation, client, base, client_seed(federation.config.seed, round_number, index)
        )
        for index, client in participants
    }


def colludes(federation: Federation) -> bool:
    """Whether the attackers forge together from the round's updates."""
    return isinstance(federation.attack, CollusionAttack)


def forged_updates(
    federation: Federation, updates: Mapping[str, LocalUpdate], base: Weights
) -> dict[str, LocalUpdate]:
    """What the colluding bloc's members present in ``updates`` send instead, forged from
    ``updates`` (the whole round's, in participant order) and what the round started from
    ``base`` makes public; empty when no bloc colludes."""
    if not isinstance(federation.attack, CollusionAttack):
        return {}
    public = PublicRound(
        base,
        federation.predict,
        federation.dataset.validation_features,
        federation.dataset.validation_labels,
        federation.aggregator,
        federation.reference_step,
    )
    return federation.attack.collude(updates, federation.malicious_ids, public)


def _local_update(federation: Federation, client: Client, base: Weights, seed: int) -> LocalUpdate:
    attack = federation.attack if client.client_id in federation.malicious_ids else None
    if isinstance(attack, CollusionAttack):
        attack = None  # the bloc trains honestly, then forges from what it read
    return produce_update(
        client,
        federation.trainer,
        base,
        federation.dataset.num_classes,
        seed,
        attack,
        federation.local_dp(seed),
    )


@dataclass(frozen=True)
class EncodedUpdate:
    """One client's update of a round as it goes on the wire, or why it cannot."""

    blob: bytes | None
    """The encoded update; ``None`` when training diverged and nothing can be sent."""
    num_samples: int
    problem: str | None = None


def evaluate(federation: Federation, weights: Weights) -> EvalResult:
    """The global model ``weights`` on the held-out test split."""
    federation.evaluator.set_weights(weights)
    dataset = federation.dataset
    return federation.evaluator.evaluate(dataset.test_features, dataset.test_labels)

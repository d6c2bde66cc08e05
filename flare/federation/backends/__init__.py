"""Where a simulation's clients train and encode their updates, and where the protocol
simulation's committee recomputes aggregates.

``local`` (the default) runs both in this process; ``ray`` on a Ray cluster, each actor
holding a shard of the fleet (docs/ray.md). With the same configuration both give the same
bytes, so a run's global models and verdicts never depend on where it ran.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

from flare.aggregation.base import Aggregator
from flare.compression.base import UpdateBinding
from flare.federation.backends.local import LocalClients
from flare.federation.clients import Client
from flare.federation.protocol.aggregate import (
    AttemptInputs,
    RoundAggregate,
    TaskContext,
    aggregate_attempt,
)
from flare.federation.rounds import EncodedUpdate, RunObserver
from flare.federation.setup import Federation, ModelBuilder
from flare.tensors import Weights


class ClientBackend(Protocol):
    """Trains and encodes every participant's update of a round."""

    def encode_round(
        self,
        participants: Sequence[tuple[int, Client]],
        base: Weights,
        round_number: int,
        bindings: Mapping[str, UpdateBinding],
    ) -> dict[str, EncodedUpdate]:
        """Each participant's update from ``base``, bound to ``bindings[client_id]``, by
        client in ``participants``' order."""
        ...


@runtime_checkable
class Recomputer(Protocol):
    """Runs a committee member's recomputation of an attempt's aggregate."""

    where: str
    """Where, in words, for the run's report."""

    def recompute(
        self, inputs: AttemptInputs, context: TaskContext, rule: Aggregator | None
    ) -> RoundAggregate:
        """:func:`~flare.federation.protocol.aggregate.aggregate_attempt` of the arguments."""
        ...


class InProcessRecomputer:
    """The local backend's recomputer: in this process."""

    where = "in process"

    def recompute(
        self, inputs: AttemptInputs, context: TaskContext, rule: Aggregator | None
    ) -> RoundAggregate:
        return aggregate_attempt(inputs, context, rule)


def recomputer_of(clients: ClientBackend) -> Recomputer:
    """Where the committee's recomputations run: on the cluster the clients train on (a
    backend that recomputes), else in this process."""
    return clients if isinstance(clients, Recomputer) else InProcessRecomputer()


@contextmanager
def open_clients(
    federation: Federation, observer: RunObserver, model_builder: ModelBuilder | None = None
) -> Iterator[ClientBackend]:
    """The backend ``federation.config.backend`` names, up for the length of a run.

    ``model_builder`` is the run's own model, if any: Ray workers build their clients'
    trainer from it.
    """
    if federation.config.backend != "ray":
        yield LocalClients(federation)
        return
    from flare.federation.backends.ray import ray_clients  # Ray is an optional extra

    with ray_clients(federation, model_builder) as clients:
        observer.cluster_ready(clients.where)
        yield clients

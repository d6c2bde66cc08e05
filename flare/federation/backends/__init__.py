"""Where a simulation's clients train and encode their updates.

``local`` (the default) runs them in this process; ``ray`` on a Ray cluster, each actor
holding a shard of the fleet (docs/ray.md). With the same configuration both give the same
bytes, so a run's global models and verdicts never depend on where it ran.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Protocol

from flare.compression.base import UpdateBinding
from flare.federation.backends.local import LocalClients
from flare.federation.clients import Client
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

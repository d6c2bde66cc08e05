"""Clients on a Ray cluster: a fleet too large for one process or one machine.

Each worker is a Ray actor holding a shard of the fleet: it builds the run's federation
itself from the configuration (the same data split, model and attackers, all from the
seed), keeps only its own clients' data, and keeps their encoders for the whole run; the
driver then drops its own copy of the training data. The driver sends a round's base
weights once (``ray.put``) and gets back blobs, which it puts in client order: neither the
number of workers nor the order they finish in can change a byte. A colluding bloc reads
the whole round before it forges, so when the attack colludes the workers return the
round's updates, the driver forges, and the members' own workers encode the forgery. The
protocol simulation's committee recomputations run on the workers too, from the blobs the
driver read from chain and store.
"""

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from flare.aggregation.base import Aggregator
from flare.compression.base import UpdateBinding
from flare.errors import FlareError
from flare.federation.backends.driver_data import leave_data_to_workers, without_training_split
from flare.federation.backends.local import LocalClients
from flare.federation.clients import Client, LocalUpdate
from flare.federation.config import SimulationConfig
from flare.federation.protocol.aggregate import (
    AttemptInputs,
    RoundAggregate,
    TaskContext,
    aggregate_attempt,
)
from flare.federation.rounds import EncodedUpdate, colludes, forged_updates, own_updates
from flare.federation.setup import Federation, ModelBuilder, build_federation
from flare.tensors import Weights


class ClusterError(FlareError):
    """The Ray cluster could not be reached, or lost a worker under the run."""


@ray.remote
class ClientShard:
    """One worker: a shard of the fleet, its data, its encoders and a trainer; it also runs
    committee recomputations for the protocol simulation."""

    def __init__(
        self, config: SimulationConfig, model_builder: ModelBuilder | None, indices: list[int]
    ) -> None:
        import torch

        # One thread per worker, as the CLI's default: the same arithmetic, and the
        # cluster's cores go to workers rather than to one worker's thread pool.
        torch.set_num_threads(1)
        federation = build_federation(config, model_builder)
        self.clients = {index: federation.clients[index] for index in indices}
        federation.clients = []  # the other shards' data stays with them
        federation.dataset = without_training_split(federation.dataset)
        self.federation = federation
        self.local = LocalClients(federation)

    def train(
        self,
        indices: list[int],
        base: Weights,
        round_number: int,
        bindings: Mapping[str, UpdateBinding],
        reveal: bool,
    ) -> tuple[dict[str, EncodedUpdate], dict[str, LocalUpdate]]:
        """The shard's participants' blobs; with ``reveal``, the colluding members' left
        out and every participant's update returned for the driver to forge from."""
        participants = [(index, self.clients[index]) for index in indices]
        updates = own_updates(self.federation, participants, base, round_number)
        if not reveal:
            return self.local.encode(participants, updates, bindings), {}
        members = self.federation.malicious_ids
        others = [
            (index, client) for index, client in participants if client.client_id not in members
        ]
        return self.local.encode(others, updates, bindings), updates

    def encode(
        self,
        indices: list[int],
        updates: Mapping[str, LocalUpdate],
        bindings: Mapping[str, UpdateBinding],
    ) -> dict[str, EncodedUpdate]:
        """The colluding members' forged updates through their own encoders."""
        participants = [(index, self.clients[index]) for index in indices]
        return self.local.encode(participants, updates, bindings)

    def recompute(
        self, inputs: AttemptInputs, context: TaskContext, rule: Aggregator | None
    ) -> RoundAggregate:
        """A committee member's recomputation of an attempt's aggregate."""
        return aggregate_attempt(inputs, context, rule)


class RayClients:
    """Trains and encodes a round's updates on the cluster's workers, and recomputes the
    committee's aggregates there."""

    def __init__(self, federation: Federation, shards: list[Any], where: str) -> None:
        self.federation, self.shards, self.where = federation, shards, where
        self._contexts: dict[int, Any] = {}
        self._recomputed = 0

    def encode_round(
        self,
        participants: Sequence[tuple[int, Client]],
        base: Weights,
        round_number: int,
        bindings: Mapping[str, UpdateBinding],
    ) -> dict[str, EncodedUpdate]:
        """Every participant's update from ``base``, encoded on its worker, in client order."""
        base_ref = ray.put(base)
        reveal = colludes(self.federation)
        by_shard = self._by_shard(participants)
        results = _gather(
            [
                self.shards[shard].train.remote(
                    indices, base_ref, round_number, _subset(bindings, ids), reveal
                )
                for shard, (indices, ids) in by_shard.items()
            ]
        )
        encoded: dict[str, EncodedUpdate] = {}
        updates: dict[str, LocalUpdate] = {}
        for shard_encoded, shard_updates in results:
            encoded.update(shard_encoded)
            updates.update(shard_updates)
        if reveal:
            encoded.update(self._encode_forged(participants, base, updates, bindings))
        return {client.client_id: encoded[client.client_id] for _, client in participants}

    def recompute(
        self, inputs: AttemptInputs, context: TaskContext, rule: Aggregator | None
    ) -> RoundAggregate:
        """The aggregate, computed by one worker from the blobs the driver read; the
        workers take turns, so the recomputations spread over the cluster."""
        context_ref = self._contexts.get(context.task_id)
        if context_ref is None:  # the task's model and validation split go out once
            context_ref = self._contexts[context.task_id] = ray.put(context)
        shard = self.shards[self._recomputed % len(self.shards)]
        self._recomputed += 1
        (aggregate,) = _gather([shard.recompute.remote(inputs, context_ref, rule)])
        # Ray hands arrays back as read-only views of its object store: the driver's own
        # copy is writable (torch loads it) and frees the store's.
        return replace(aggregate, weights={name: t.copy() for name, t in aggregate.weights.items()})

    def _encode_forged(
        self,
        participants: Sequence[tuple[int, Client]],
        base: Weights,
        updates: Mapping[str, LocalUpdate],
        bindings: Mapping[str, UpdateBinding],
    ) -> dict[str, EncodedUpdate]:
        # The bloc reads the round in client order, as train_round hands it over.
        in_order = {client.client_id: updates[client.client_id] for _, client in participants}
        forged = forged_updates(self.federation, in_order, base)
        members = [(index, client) for index, client in participants if client.client_id in forged]
        calls = [
            self.shards[shard].encode.remote(indices, _subset(forged, ids), _subset(bindings, ids))
            for shard, (indices, ids) in self._by_shard(members).items()
        ]
        encoded: dict[str, EncodedUpdate] = {}
        for shard_encoded in _gather(calls):
            encoded.update(shard_encoded)
        return encoded

    def _by_shard(
        self, participants: Sequence[tuple[int, Client]]
    ) -> dict[int, tuple[list[int], list[str]]]:
        """Each worker's participants: indices and client ids."""
        by_shard: dict[int, tuple[list[int], list[str]]] = {}
        for index, client in participants:
            indices, ids = by_shard.setdefault(shard_of(index, len(self.shards)), ([], []))
            indices.append(index)
            ids.append(client.client_id)
        return by_shard


def shard_of(index: int, workers: int) -> int:
    """The worker holding client ``index``: round-robin, so a Dirichlet split's large and
    small clients spread over the workers."""
    return index % workers


def _subset(values: Mapping[str, Any], keys: list[str]) -> dict[str, Any]:
    return {key: values[key] for key in keys}


def _gather(refs: list[Any]) -> list[Any]:
    """The calls' results in the order asked; an error raised by a worker's code passes
    through as its own type, a cluster failing under the run becomes :class:`ClusterError`."""
    try:
        return ray.get(refs)
    except RayTaskError:
        raise
    except RayError as exc:
        raise ClusterError(f"the Ray cluster failed under the run: {exc}") from exc


@contextmanager
def ray_clients(federation: Federation, model_builder: ModelBuilder | None) -> Iterator[RayClients]:
    """Workers on the cluster ``config.ray_address`` (or on a Ray started here for the run),
    gone when the run ends; a Ray this run started stops with it."""
    config = federation.config
    started_here = not ray.is_initialized()
    if started_here:
        _connect(config.ray_address)
    shards: list[Any] = []
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        nodes = sum(1 for node in ray.nodes() if node["Alive"])
        workers = min(config.workers or cpus, config.clients)
        # More workers than CPUs share them, rather than wait for CPUs that never free up:
        # each takes 1/k of a CPU, so that every node's whole CPUs hold k workers each.
        cpus_each = 1.0 / math.ceil(workers / cpus)
        assigned: list[list[int]] = [[] for _ in range(workers)]
        for index in range(config.clients):
            assigned[shard_of(index, workers)].append(index)
        shards = [
            ClientShard.options(num_cpus=cpus_each).remote(config, model_builder, indices)
            for indices in assigned
        ]
        leave_data_to_workers(federation)
        where = (
            f"Ray: {_plural(nodes, 'node')}, {_plural(cpus, 'CPU')}, {_plural(workers, 'worker')}"
        )
        yield RayClients(federation, shards, where)
    finally:
        for shard in shards:
            ray.kill(shard)
        if started_here:
            ray.shutdown()


def _connect(address: str | None) -> None:
    # "local" starts a Ray for this run even where another one runs on the machine.
    try:
        ray.init(
            address=address or "local",
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ClusterError(f"cannot start or reach {where}: {exc}") from exc


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"

"""The offline simulation: every client, the aggregator and the clock in one process.

Each round follows the wire path for real — clients encode their updates to
bytes, the aggregator decodes and validates those bytes — so the bytes counted
are the bytes a device would send, and a malformed update is refused exactly as
it would be over the network.

Where the rule can aggregate one update at a time (FedAvg), the round streams: each
client's update is trained, encoded, decoded and summed before the next client trains, so
a round holds one update rather than the fleet's, and gives the same bytes as the batched
round (``tests/federation/test_simulation_streaming.py``).
"""

import hashlib
import time
from dataclasses import dataclass

import numpy as np

from flare.aggregation.base import (
    AggregationContext,
    AggregationResult,
    ClientUpdate,
    StreamingAggregator,
    Trainer,
)
from flare.compression import decode_update
from flare.compression.base import MalformedUpdateError, UpdateBinding
from flare.federation.backdoor import attack_success
from flare.federation.backends import ClientBackend, open_clients
from flare.federation.backends.local import LocalClients
from flare.federation.clients import Client
from flare.federation.config import SimulationConfig
from flare.federation.report import RoundRecord, SimulationReport
from flare.federation.rounds import (
    RunObserver,
    active_clients,
    client_order,
    client_seed,
    evaluate,
    recording,
)
from flare.federation.setup import Federation, ModelBuilder, build_federation
from flare.federation.timing import Stopwatch
from flare.tensors import Weights, add, raw_nbytes, subtract

OFFLINE_TASK = "offline"


def weights_digest(weights: Weights) -> str:
    """A label naming a global model in the offline run (the protocol path uses its CID)."""
    digest = hashlib.sha256()
    for name, array in weights.items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
    return "sha256:" + digest.hexdigest()


def server_trainer(federation: Federation, seed: int) -> Trainer:
    """Training on the validation split from given weights (FLTrust's server update)."""

    def train(weights: Weights, features: np.ndarray, labels: np.ndarray) -> Weights:
        federation.trainer.set_weights(weights)
        federation.trainer.train(features, labels, seed=seed)
        return subtract(federation.trainer.get_weights(), weights)

    return train


@dataclass(frozen=True, eq=False)
class RoundWire:
    """Where a round starts, as its blobs are bound to it: the round, and the global model
    (its weights, and the label they are named by)."""

    round: int
    base: Weights
    base_label: str

    def bindings(self, participants: list[tuple[int, Client]]) -> dict[str, UpdateBinding]:
        """Each participant's binding; its training fills in the sample count."""
        return {
            client.client_id: UpdateBinding(
                sender=client.client_id,
                task=OFFLINE_TASK,
                round=self.round,
                attempt=0,
                base_model=self.base_label,
                num_samples=0,
            )
            for _, client in participants
        }


def aggregation_context(
    federation: Federation, config: SimulationConfig, wire: RoundWire
) -> AggregationContext:
    """What the rule needs beyond the round's updates: built to aggregate, so never for a
    round in which no update arrived."""
    server_seed = client_seed(config.seed, wire.round, config.clients)
    return AggregationContext(
        global_weights=wire.base,
        predict=federation.predict,
        validation_features=federation.dataset.validation_features,
        validation_labels=federation.dataset.validation_labels,
        train=server_trainer(federation, server_seed),
        seed=server_seed,
        reference_step=federation.reference_step,
    )


@dataclass(frozen=True)
class RoundOutcome:
    """What a round's updates came to: bytes sent, refusals, and the aggregate (``None``
    when nothing arrived)."""

    sent_bytes: dict[str, int]
    rejected: dict[str, str]
    result: AggregationResult | None


def streaming_rule(
    federation: Federation, clients: ClientBackend, participants: list[tuple[int, Client]]
) -> tuple[StreamingAggregator, LocalClients] | None:
    """The rule a round streams through and the clients that stream to it, if it can: a
    rule that aggregates an update at a time, clients that train in this process, a
    stateless codec (a surprise replays the round, which must send the same bytes again),
    and no attacker taking part (an attack may claim any count)."""
    rule = federation.aggregator
    if (
        isinstance(rule, StreamingAggregator)
        and isinstance(clients, LocalClients)
        and federation.codec.stateless
        and participants
        and not any(client.client_id in federation.malicious_ids for _, client in participants)
    ):
        return rule, clients
    return None


class Simulation:
    """Run federated training offline; ``Simulation(config).run()`` returns the report."""

    def __init__(self, config: SimulationConfig, model_builder: ModelBuilder | None = None) -> None:
        self.config = config
        self.model_builder = model_builder

    def run(self, observer: RunObserver | None = None) -> SimulationReport:
        """Every round, then the report; :class:`RunInterrupted` carries the rounds finished
        when something stops the run part-way."""
        observer = observer or RunObserver()
        started = time.perf_counter()
        federation = build_federation(self.config, self.model_builder)
        report = SimulationReport(
            config=self.config.to_dict(), privacy=federation.privacy_summary()
        )
        observer.run_started(self.config)
        global_weights = federation.initial_weights
        with (
            recording(report, started),
            open_clients(federation, observer, self.model_builder) as clients,
        ):
            for round_number in range(1, self.config.rounds + 1):
                global_weights, record = self._round(
                    federation, clients, round_number, global_weights, observer
                )
                report.rounds.append(record)
                observer.round_finished(record)
        return report

    def _round(
        self,
        federation: Federation,
        clients: ClientBackend,
        round_number: int,
        global_weights: Weights,
        observer: RunObserver,
    ) -> tuple[Weights, RoundRecord]:
        config = self.config
        clock = Stopwatch()
        started = time.perf_counter()
        participants, dropped = active_clients(config, federation.clients, round_number)
        observer.round_started(round_number, len(participants))
        wire = RoundWire(round_number, global_weights, weights_digest(global_weights))
        outcome = None
        streaming = streaming_rule(federation, clients, participants)
        if streaming is not None:
            rule, local_clients = streaming
            outcome = self._streamed(rule, local_clients, participants, wire, clock, observer)
        if outcome is None:
            # After a surprise in the stream the round is replayed batched, unannounced: the
            # observer has already seen every one of its clients finish.
            replay_observer = observer if streaming is None else RunObserver()
            outcome = self._batched(federation, clients, participants, wire, clock, replay_observer)
        result = outcome.result
        if result is not None:
            global_weights = add(global_weights, result.delta)
        with clock.phase("evaluate"):
            evaluation = evaluate(federation, global_weights)
        sent = set(outcome.sent_bytes)
        record = RoundRecord(
            round=round_number,
            accuracy=evaluation.accuracy,
            loss=evaluation.loss,
            bytes_up=sum(outcome.sent_bytes.values()),
            bytes_raw=len(sent) * raw_nbytes(federation.spec),
            accepted=result.accepted if result else [],
            flagged=result.flagged if result else [],
            malicious=sorted(sent & federation.malicious_ids, key=client_order),
            dropped=dropped,
            rejected=outcome.rejected,
            seconds=time.perf_counter() - started,
            scores=result.scores if result else {},
            reasons=result.reasons if result else {},
            timings=clock.rounded(),
            privacy=federation.account_round(sorted(sent, key=client_order)),
            attack_success=attack_success(
                federation.attack, federation.evaluator, global_weights, federation.dataset
            ),
        )
        return global_weights, record

    def _batched(
        self,
        federation: Federation,
        clients: ClientBackend,
        participants: list[tuple[int, Client]],
        wire: RoundWire,
        clock: Stopwatch,
        observer: RunObserver,
    ) -> RoundOutcome:
        """Every update trained and encoded, then every blob decoded, then aggregated."""
        with clock.phase("train"):
            encoded = clients.encode_round(
                participants, wire.base, wire.round, wire.bindings(participants)
            )
        blobs: list[tuple[str, bytes]] = []
        unsendable: dict[str, str] = {}
        for _, client in participants:
            outcome = encoded.pop(client.client_id)
            if outcome.blob is None:
                problem = outcome.problem
                unsendable[client.client_id] = f"client could not encode its update: {problem}"
            else:
                blobs.append((client.client_id, outcome.blob))
            observer.client_finished(client.client_id)
        sent_bytes = {sender: len(blob) for sender, blob in blobs}
        with clock.phase("decode"):
            received, rejected = self._receive(federation, blobs, wire)
            rejected.update(unsendable)
        with clock.phase("aggregate"):
            result = None
            if received:
                context = aggregation_context(federation, self.config, wire)
                result = federation.aggregator.aggregate(received, context)
        return RoundOutcome(sent_bytes, rejected, result)

    def _streamed(
        self,
        rule: StreamingAggregator,
        clients: LocalClients,
        participants: list[tuple[int, Client]],
        wire: RoundWire,
        clock: Stopwatch,
        observer: RunObserver,
    ) -> RoundOutcome | None:
        """Each update trained, encoded, decoded and added to the aggregate before the next
        trains, so the round holds one update, not the fleet's; ``None`` on a surprise.

        The stream is announced every participant claiming its shard's size: what each
        honest client sends, unless its training diverges or its blob is refused. Either
        surprise changes the round's weights after the stream summed with them, so the
        caller replays the round batched, which trains and encodes to the same bytes.
        """
        federation = clients.federation
        claims = [(client.client_id, client.num_samples) for _, client in participants]
        stream = rule.open_stream(claims, aggregation_context(federation, self.config, wire))
        sent_bytes: dict[str, int] = {}
        updates = clients.stream_round(
            participants, wire.base, wire.round, wire.bindings(participants)
        )
        for expected in claims:
            with clock.phase("train"):
                sender, encoded = next(updates)
            observer.client_finished(sender)
            if encoded.blob is None:
                return None
            sent_bytes[sender] = len(encoded.blob)
            with clock.phase("decode"):
                update = self._decode(federation, sender, encoded.blob, wire)
            if isinstance(update, str) or (update.client_id, update.num_samples) != expected:
                return None
            with clock.phase("aggregate"):
                stream.add(update)
        with clock.phase("aggregate"):
            return RoundOutcome(sent_bytes, {}, stream.finish())

    def _receive(
        self, federation: Federation, blobs: list[tuple[str, bytes]], wire: RoundWire
    ) -> tuple[list[ClientUpdate], dict[str, str]]:
        """Decode and validate every blob as the aggregator would; refuse what does not fit.

        Empties ``blobs`` as it goes, so each blob is freed once its update is decoded.
        """
        updates: list[ClientUpdate] = []
        rejected: dict[str, str] = {}
        blobs.reverse()
        while blobs:
            sender, blob = blobs.pop()
            update = self._decode(federation, sender, blob, wire)
            if isinstance(update, str):
                rejected[sender] = update
            else:
                updates.append(update)
        return updates, rejected

    def _decode(
        self, federation: Federation, sender: str, blob: bytes, wire: RoundWire
    ) -> ClientUpdate | str:
        """``sender``'s update from ``blob``, or why it is refused."""
        try:
            decoded = decode_update(
                blob, federation.spec, max_blob_bytes=self.config.max_update_bytes
            )
        except MalformedUpdateError as exc:
            return str(exc)
        binding = decoded.binding
        expected = (sender, OFFLINE_TASK, wire.round, 0, wire.base_label)
        actual = (binding.sender, binding.task, binding.round, binding.attempt, binding.base_model)
        if actual != expected:
            return f"update bound to {actual}, expected {expected}"
        return ClientUpdate(sender, decoded.delta, binding.num_samples)

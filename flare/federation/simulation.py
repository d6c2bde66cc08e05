"""The offline simulation: every client, the aggregator and the clock in one process.

Each round follows the wire path for real — clients encode their updates to
bytes, the aggregator decodes and validates those bytes — so the bytes counted
are the bytes a device would send, and a malformed update is refused exactly as
it would be over the network.
"""

import hashlib
import time

import numpy as np

from flare.aggregation.base import AggregationContext, ClientUpdate, Trainer
from flare.compression import decode_update
from flare.compression.base import MalformedUpdateError, UpdateBinding
from flare.federation.backdoor import attack_success
from flare.federation.backends import ClientBackend, open_clients
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
        base_label = weights_digest(global_weights)
        bindings = {
            client.client_id: UpdateBinding(
                sender=client.client_id,
                task=OFFLINE_TASK,
                round=round_number,
                attempt=0,
                base_model=base_label,
                num_samples=0,
            )
            for _, client in participants
        }
        with clock.phase("train"):
            encoded = clients.encode_round(participants, global_weights, round_number, bindings)
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
            received, rejected = self._receive(federation, blobs, round_number, base_label)
            rejected.update(unsendable)
        with clock.phase("aggregate"):
            if received:
                server_seed = client_seed(config.seed, round_number, config.clients)
                context = AggregationContext(
                    global_weights=global_weights,
                    predict=federation.predict,
                    validation_features=federation.dataset.validation_features,
                    validation_labels=federation.dataset.validation_labels,
                    train=server_trainer(federation, server_seed),
                    seed=server_seed,
                )
                result = federation.aggregator.aggregate(received, context)
                global_weights = add(global_weights, result.delta)
                accepted, flagged, scores = result.accepted, result.flagged, result.scores
                reasons = result.reasons
            else:
                accepted, flagged, scores, reasons = [], [], {}, {}
        with clock.phase("evaluate"):
            evaluation = evaluate(federation, global_weights)
        sent = set(sent_bytes)
        record = RoundRecord(
            round=round_number,
            accuracy=evaluation.accuracy,
            loss=evaluation.loss,
            bytes_up=sum(sent_bytes.values()),
            bytes_raw=len(sent_bytes) * raw_nbytes(federation.spec),
            accepted=accepted,
            flagged=flagged,
            malicious=sorted(sent & federation.malicious_ids, key=client_order),
            dropped=dropped,
            rejected=rejected,
            seconds=time.perf_counter() - started,
            scores=scores,
            reasons=reasons,
            timings=clock.rounded(),
            privacy=federation.account_round(sorted(sent, key=client_order)),
            attack_success=attack_success(
                federation.attack, federation.evaluator, global_weights, federation.dataset
            ),
        )
        return global_weights, record

    def _receive(
        self,
        federation: Federation,
        blobs: list[tuple[str, bytes]],
        round_number: int,
        base_label: str,
    ) -> tuple[list[ClientUpdate], dict[str, str]]:
        """Decode and validate every blob as the aggregator would; refuse what does not fit.

        Empties ``blobs`` as it goes, so each blob is freed once its update is decoded.
        """
        updates: list[ClientUpdate] = []
        rejected: dict[str, str] = {}
        blobs.reverse()
        while blobs:
            sender, blob = blobs.pop()
            try:
                decoded = decode_update(
                    blob, federation.spec, max_blob_bytes=self.config.max_update_bytes
                )
            except MalformedUpdateError as exc:
                rejected[sender] = str(exc)
                continue
            binding = decoded.binding
            expected = (sender, OFFLINE_TASK, round_number, 0, base_label)
            actual = (
                binding.sender,
                binding.task,
                binding.round,
                binding.attempt,
                binding.base_model,
            )
            if actual != expected:
                rejected[sender] = f"update bound to {actual}, expected {expected}"
                continue
            updates.append(ClientUpdate(sender, decoded.delta, binding.num_samples))
        return updates, rejected

"""The offline simulation: every client, the aggregator and the clock in one process.

Each round follows the wire path for real — clients encode their updates to
bytes, the aggregator decodes and validates those bytes — so the bytes counted
are the bytes a device would send, and a malformed update is refused exactly as
it would be over the network.
"""

import hashlib
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from flare.aggregation.base import AggregationContext, ClientUpdate, Trainer
from flare.compression import decode_update
from flare.compression.base import MalformedUpdateError, UpdateBinding, UpdateEncoder
from flare.errors import FlareError
from flare.federation.clients import Client, CollusionAttack, LocalUpdate, produce_update
from flare.federation.config import SimulationConfig
from flare.federation.report import RoundRecord, RunInterrupted, SimulationReport
from flare.federation.setup import Federation, ModelBuilder, build_federation
from flare.tensors import Weights, add, raw_nbytes, subtract

OFFLINE_TASK = "offline"


class RunObserver:
    """Hooks a front end uses to show progress; every method is optional."""

    def run_started(self, config: SimulationConfig) -> None:
        """Called once, after set-up, before the first round."""

    def round_started(self, round_number: int, participants: int) -> None:
        """Called before any client of the round trains."""

    def client_finished(self, client_id: str) -> None:
        """Called after each client has sent its update."""

    def round_finished(self, record: RoundRecord) -> None:
        """Called with the round's record once the new global model is evaluated."""


class Stopwatch:
    """Accumulates wall time per named phase of a round."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


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
        report.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def interruption_reason(exc: BaseException) -> str:
    """One line saying what stopped a run."""
    if isinstance(exc, KeyboardInterrupt):
        return "stopped by the user (SIGINT)"
    text = " ".join(str(exc).split())
    return text if isinstance(exc, FlareError) else f"{type(exc).__name__}: {text}"


def weights_digest(weights: Weights) -> str:
    """A label naming a global model in the offline run (the protocol path uses its CID)."""
    digest = hashlib.sha256()
    for name, array in weights.items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
    return "sha256:" + digest.hexdigest()


def client_seed(seed: int, round_number: int, client_index: int) -> int:
    """Independent, reproducible seed for one client's training in one round."""
    return int(np.random.SeedSequence([seed, round_number, client_index]).generate_state(1)[0])


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
        encoders: dict[str, UpdateEncoder] = {}
        report = SimulationReport(
            config=self.config.to_dict(), privacy=federation.privacy_summary()
        )
        observer.run_started(self.config)
        global_weights = federation.initial_weights
        with recording(report, started):
            for round_number in range(1, self.config.rounds + 1):
                global_weights, record = self._round(
                    federation, encoders, round_number, global_weights, observer
                )
                report.rounds.append(record)
                observer.round_finished(record)
        return report

    def _round(
        self,
        federation: Federation,
        encoders: dict[str, UpdateEncoder],
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
        blobs: list[tuple[str, bytes]] = []
        unsendable: dict[str, str] = {}
        colluded: dict[str, LocalUpdate] = {}
        if isinstance(federation.attack, CollusionAttack):
            # The bloc submits last: every participant trains first, so that it has read
            # every honest update of the round before it forges its own.
            with clock.phase("train"):
                colluded = colluded_updates(
                    federation, federation.attack, participants, global_weights, round_number
                )
        for index, client in participants:
            with clock.phase("train"):
                update = colluded.get(client.client_id)
                if update is None:
                    seed = client_seed(config.seed, round_number, index)
                    update = local_update(federation, client, global_weights, seed)
            with clock.phase("encode"):
                encoder = encoders.get(client.client_id)
                if encoder is None:
                    encoder = federation.codec.new_encoder(
                        federation.spec, client_seed(config.seed, 0, index)
                    )
                    encoders[client.client_id] = encoder
                binding = UpdateBinding(
                    sender=client.client_id,
                    task=OFFLINE_TASK,
                    round=round_number,
                    attempt=0,
                    base_model=base_label,
                    num_samples=update.num_samples,
                )
                try:
                    blobs.append((client.client_id, encoder.encode(update.delta, binding)))
                except MalformedUpdateError as exc:
                    # A diverged client cannot even encode its update; it sends nothing.
                    unsendable[client.client_id] = f"client could not encode its update: {exc}"
            observer.client_finished(client.client_id)

        with clock.phase("decode"):
            updates, rejected = self._receive(federation, blobs, round_number, base_label)
            rejected.update(unsendable)
        with clock.phase("aggregate"):
            if updates:
                server_seed = client_seed(config.seed, round_number, config.clients)
                context = AggregationContext(
                    global_weights=global_weights,
                    predict=federation.predict,
                    validation_features=federation.dataset.validation_features,
                    validation_labels=federation.dataset.validation_labels,
                    train=server_trainer(federation, server_seed),
                    seed=server_seed,
                )
                result = federation.aggregator.aggregate(updates, context)
                global_weights = add(global_weights, result.delta)
                accepted, flagged, scores = result.accepted, result.flagged, result.scores
                reasons = result.reasons
            else:
                accepted, flagged, scores, reasons = [], [], {}, {}
        with clock.phase("evaluate"):
            federation.evaluator.set_weights(global_weights)
            evaluation = federation.evaluator.evaluate(
                federation.dataset.test_features, federation.dataset.test_labels
            )
        sent = {cid for cid, _ in blobs}
        record = RoundRecord(
            round=round_number,
            accuracy=evaluation.accuracy,
            loss=evaluation.loss,
            bytes_up=sum(len(blob) for _, blob in blobs),
            bytes_raw=len(blobs) * raw_nbytes(federation.spec),
            accepted=accepted,
            flagged=flagged,
            malicious=sorted(sent & federation.malicious_ids, key=client_order),
            dropped=dropped,
            rejected=rejected,
            seconds=time.perf_counter() - started,
            scores=scores,
            reasons=reasons,
            timings={k: round(v, 4) for k, v in clock.seconds.items()},
            privacy=federation.account_round(sorted(sent, key=client_order)),
        )
        return global_weights, record

    def _receive(
        self,
        federation: Federation,
        blobs: list[tuple[str, bytes]],
        round_number: int,
        base_label: str,
    ) -> tuple[list[ClientUpdate], dict[str, str]]:
        """Decode and validate every blob as the aggregator would; refuse what does not fit."""
        updates: list[ClientUpdate] = []
        rejected: dict[str, str] = {}
        for sender, blob in blobs:
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


def local_update(
    federation: Federation, client: Client, global_weights: Weights, seed: int
) -> LocalUpdate:
    """What ``client`` sends this round: honest training, or its attack; noised with DP on."""
    attack = federation.attack if client.client_id in federation.malicious_ids else None
    if isinstance(attack, CollusionAttack):
        # A colluding attacker trains honestly first; the bloc forges from those updates.
        attack = None
    return produce_update(
        client,
        federation.trainer,
        global_weights,
        federation.dataset.num_classes,
        seed,
        attack,
        federation.local_dp(seed),
    )


def colluded_updates(
    federation: Federation,
    attack: CollusionAttack,
    participants: list[tuple[int, Client]],
    global_weights: Weights,
    round_number: int,
) -> dict[str, LocalUpdate]:
    """Every participant's update of the round, the bloc's forged from the honest ones."""
    honest = {
        client.client_id: local_update(
            federation,
            client,
            global_weights,
            client_seed(federation.config.seed, round_number, index),
        )
        for index, client in participants
    }
    honest.update(attack.collude(honest, federation.malicious_ids))
    return honest


def client_order(client_id: str) -> int:
    """Sort key putting ``client-2`` before ``client-10``."""
    return int(client_id.rsplit("-", 1)[-1])

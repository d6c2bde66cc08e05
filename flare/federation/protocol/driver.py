"""The protocol simulation: every round through the chain's calls, checks and events.

One process plays every device: each simulated client is a
:class:`~flare.federation.protocol.actor.ParticipantActor`, the same one ``flare participant
run`` runs per process, stepped in turn against one chain and one store. The chain's clock
moves only when nobody has anything left to do, so an attempt the committee cannot decide
(too few seats, no quorum) runs out its windows, is closed by a timeout and retried with a
fresh seed, as on a real chain.
"""

import contextlib
import logging
import time
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from flare.chain import (
    ChainConnector,
    ContentRef,
    Phase,
    RoundOpened,
    TaskCreated,
    TaskStatus,
)
from flare.config import open_chain
from flare.errors import FlareError
from flare.federation.agents.tasks import architecture_of
from flare.federation.backdoor import attack_success
from flare.federation.backends import ClientBackend, open_clients, recomputer_of
from flare.federation.config import SimulationConfig
from flare.federation.protocol.actor import ParticipantActor
from flare.federation.protocol.artifacts import TaskManifest, encode_manifest, encode_model
from flare.federation.protocol.attempt_report import AttemptOutcome, read_attempt
from flare.federation.protocol.follow import StepOutcome
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.protocol.shared_recomputation import (
    SharedReads,
    SharedRecomputations,
    SimulatedParticipant,
)
from flare.federation.protocol.simulated_device import (
    SimulatedDevice,
    SimulatedRound,
    participant_keys,
)
from flare.federation.protocol.update_fetches import InlineUpdateFetches
from flare.federation.report import RoundRecord, SimulationReport
from flare.federation.rounds import (
    RunObserver,
    active_clients,
    client_order,
    evaluate,
    recording,
)
from flare.federation.setup import Federation, build_federation
from flare.federation.timing import Stopwatch
from flare.models.factory import is_builtin
from flare.storage import DirectoryStore, MemoryStore, StorageProvider
from flare.tensors import raw_nbytes


@runtime_checkable
class MinesBlocks(Protocol):
    """A development chain whose clock the simulation moves on: the in-memory chain, or
    Anvil (``anvil_mine``); a public chain has no such call."""

    def mine(self, blocks: int = 1) -> int:
        """Mine ``blocks`` empty blocks; return the head's number."""
        ...


class ProtocolSimulation:
    """``ProtocolSimulation(config, protocol).run()`` drives a whole task and reports on it."""

    def __init__(self, config: SimulationConfig, protocol: ProtocolConfig | None = None) -> None:
        self.config = config
        self.protocol = protocol or ProtocolConfig()
        self.protocol.check_fits(config)

    def run(self, observer: RunObserver | None = None) -> SimulationReport:
        observer = observer or RunObserver()
        started = time.perf_counter()
        federation = build_federation(self.config)
        store = self._open_store()
        with contextlib.ExitStack() as stack:
            chain = self._open_chain(stack)
            clients = stack.enter_context(open_clients(federation, observer))
            run = _TaskRun(self.config, self.protocol, federation, clients, chain, store, observer)
            return run.execute(started)

    def _open_chain(self, stack: contextlib.ExitStack) -> ChainConnector:
        if self.protocol.state is not None:
            self.protocol.state.parent.mkdir(parents=True, exist_ok=True)
        accounts = [
            participant_keys(self.config.seed, index)[0].address
            for index in range(-1, self.config.clients)
        ]
        # Journaled like the store: for a process crash, which the run (one process) can
        # survive, not for a machine crash, which ends it anyway.
        chain = open_chain(self.protocol.network(), dev_accounts=accounts, durable=False)
        return stack.enter_context(chain)

    def _open_store(self) -> StorageProvider:
        if self.protocol.store is None:
            return MemoryStore()
        # Blobs that outlive the process, as the chain journal does: one run in one
        # process, which a machine crash would end anyway, needs no fsync per blob.
        return DirectoryStore(self.protocol.store, durable=False)


class _TaskRun:
    """One task from creation to completion: every simulated client is a participant
    actor, stepped in turn against one chain and one store."""

    def __init__(
        self,
        config: SimulationConfig,
        protocol: ProtocolConfig,
        federation: Federation,
        clients: ClientBackend,
        chain: ChainConnector,
        store: StorageProvider,
        observer: RunObserver,
    ) -> None:
        if not isinstance(chain, MinesBlocks):
            raise TypeError(f"{type(chain).__name__} cannot mine: not a development chain")
        self.config, self.protocol, self.federation = config, protocol, federation
        self.chain, self.store, self.observer = chain, store, observer
        self.reads = SharedReads(store)
        self.blocks: MinesBlocks = chain
        self.clock = Stopwatch()
        self.participants: list[ProtocolParticipant] = []
        self.recomputations = SharedRecomputations(recomputer_of(clients))
        for index, client in enumerate(federation.clients):
            account, bls_key = participant_keys(config.seed, index)
            dishonest = (
                protocol.dishonest_committee and client.client_id in federation.malicious_ids
            )
            self.participants.append(
                SimulatedParticipant(
                    client.client_id,
                    account,
                    bls_key,
                    honest_member=not dishonest,
                    shared=self.recomputations,
                )
            )
        self.names = {p.address: p.name for p in self.participants}
        addresses = {p.name: p.address for p in self.participants}
        self.attempt_round = SimulatedRound(clients, addresses)
        self.devices = [
            SimulatedDevice(client, self.attempt_round, observer) for client in federation.clients
        ]
        creator, _ = participant_keys(config.seed, -1)
        self.creator = chain.as_sender(creator)

    def execute(self, started: float) -> SimulationReport:
        report = SimulationReport(
            config={**self.config.to_dict(), **self._protocol_options()},
            privacy=self.federation.privacy_summary(),
        )
        task_id = self._create_task()
        actors = [
            ParticipantActor(
                self.chain,
                self.reads,
                participant,
                task_id,
                device,
                log=logging.getLogger(f"flare.simulated.{participant.name}"),
                # one clock per member: deployed, members work side by side, and the
                # slowest one's aggregate phase is what the round waits for
                clock=Stopwatch(),
                # the shared reads answer from this process: no fetch threads
                update_fetches=InlineUpdateFetches,
                read_model=self.reads.model,
            )
            for participant, device in zip(self.participants, self.devices, strict=True)
        ]
        self.observer.run_started(self.config)
        with recording(report, started):
            while True:
                record = self._round(task_id, actors)
                report.rounds.append(record)
                self.observer.round_finished(record)
                if record.protocol["task_completed"]:
                    break
        return report

    def _protocol_options(self) -> dict[str, Any]:
        p = self.protocol
        return {
            "offline": False,
            "committee": p.task.expected_committee,
            "min_committee": p.task.min_committee,
            "quorum": p.task.quorum_bps,
            "min_clients": p.task.min_clients,
            "dishonest_committee": p.dishonest_committee,
            "state": str(p.state) if p.state else None,
            "store": str(p.store) if p.store else None,
            "chain": p.chain_url,
            "chain_id": self.chain.chain_id,
            "contract": self.chain.contract_address,
        }

    def _create_task(self) -> int:
        federation, store = self.federation, self.store
        manifest = TaskManifest(
            model=self.config.model,
            num_features=federation.dataset.num_features,
            num_classes=federation.dataset.num_classes,
            aggregator=self.config.aggregator,
            aggregator_params=dict(self.config.aggregator_params),
            # A user's model is bound as `flare task create` binds it: a task like any.
            architecture=(
                None
                if is_builtin(self.config.model)
                else architecture_of(federation.evaluator.module)
            ),
        )
        model_cid = store.put(encode_model(federation.initial_weights))
        manifest_cid = store.put(
            encode_manifest(
                manifest,
                federation.dataset.validation_features,
                federation.dataset.validation_labels,
            )
        )
        for cid in (model_cid, manifest_cid):
            store.pin(cid)
        params = self.protocol.task_parameters(self.config).on_chain()
        receipt = self.creator.create_task(
            ContentRef.from_cid(model_cid), ContentRef.from_cid(manifest_cid), params
        )
        task_id = receipt.one(TaskCreated).task_id
        for participant in self.participants:
            participant.register(self.chain, task_id)
        self.creator.start_task(task_id)
        return task_id

    def _round(self, task_id: int, actors: list[ParticipantActor]) -> RoundRecord:
        started = time.perf_counter()
        recomputed_before = self.recomputations.count
        clocks = [*(actor.clock for actor in actors), self.clock]
        for clock in clocks:
            clock.seconds.clear()
        failed: list[AttemptOutcome] = []
        while True:
            state = self.chain.current_round(task_id)
            opened = self.chain.round_opened(task_id, state.round, state.attempt)
            outcome, seated = self._attempt(opened, actors)
            if outcome.finalized:
                break
            failed.append(outcome)
            if self.chain.task(task_id).status is TaskStatus.FAILED:
                raise FlareError(
                    f"round {opened.round} failed {len(failed)} attempts; last: {outcome.reason}"
                )
        aggregate = next(
            a
            for actor in seated
            for a in actor.attempt_aggregates()
            if a.model.to_cid() == outcome.global_model
        )
        if self.protocol.dishonest_committee:
            outcome = replace(outcome, honest_model=self._honest_model(seated, opened))
        with self.clock.phase("evaluate"):
            evaluation = evaluate(self.federation, aggregate.weights)
        names, context = self.names, seated[0].task_context()
        protocol = outcome.as_report()
        protocol["failed_attempts"] = [f.as_report() for f in failed]
        protocol["task_completed"] = self.chain.task(task_id).status == TaskStatus.COMPLETED
        protocol["recomputations"] = {
            "count": self.recomputations.count - recomputed_before,
            "where": self.recomputations.recomputer.where,
        }
        protocol["slowest_member_aggregate_s"] = round(
            max(actor.clock.seconds.get("aggregate", 0.0) for actor in actors), 4
        )
        return RoundRecord(
            round=opened.round,
            accuracy=evaluation.accuracy,
            loss=evaluation.loss,
            bytes_up=outcome.bytes_up,
            bytes_raw=len(outcome.sent) * raw_nbytes(context.spec),
            accepted=[names[a] for a in aggregate.accepted],
            flagged=[names[a] for a in aggregate.flagged],
            malicious=sorted(
                (n for n in outcome.sent if n in self.federation.malicious_ids), key=client_order
            ),
            dropped=outcome.dropped,
            rejected={names[a]: reason for a, reason in aggregate.rejected.items()},
            seconds=time.perf_counter() - started,
            scores={names[a]: s for a, s in aggregate.scores.items()},
            reasons={names[a]: r for a, r in aggregate.reasons.items()},
            timings=summed_phases(clocks),
            protocol=protocol,
            # A retried attempt re-sends the same noised delta (same base model, same
            # seeds), so whoever sent in any attempt of the round made one release.
            privacy=self.federation.account_round(
                sorted({*outcome.sent, *(n for f in failed for n in f.sent)}, key=client_order)
            ),
            attack_success=attack_success(
                self.federation.attack,
                self.federation.evaluator,
                aggregate.weights,
                self.federation.dataset,
            ),
        )

    def _attempt(
        self, opened: RoundOpened, actors: list[ParticipantActor]
    ) -> tuple[AttemptOutcome, list[ParticipantActor]]:
        """Step the attempt's participants until it closes; its outcome and who sat."""
        participants, dropped = active_clients(
            self.config, self.federation.clients, opened.round, opened.attempt
        )
        self.attempt_round.begin(opened, participants)
        self.recomputations.new_attempt()
        self.reads.forget(keep=opened.base_model.to_cid())
        self.observer.round_started(opened.round, len(participants))
        taking_part = [actors[index] for index, _ in participants]
        while not self._closed(opened):
            if not self._step_all(taking_part, opened):
                self._advance(opened)
        task = self.chain.task(opened.task_id)
        seats = {
            s.member for s in self.chain.committee(opened.task_id, opened.round, opened.attempt)
        }
        outcome = read_attempt(
            self.chain,
            opened,
            task.params,
            self.names,
            self.federation.malicious_ids,
            self.attempt_round.sends,
            dropped,
        )
        return outcome, [actor for actor in actors if actor.address in seats]

    def _step_all(self, actors: list[ParticipantActor], opened: RoundOpened) -> bool:
        """Step each actor until it waits, stopping as soon as the attempt closes; whether
        anyone sent a transaction."""
        acted = False
        for actor in actors:
            while actor.step() is StepOutcome.ACTED:
                acted = True
                if self._closed(opened):
                    return True
        return acted

    def _closed(self, opened: RoundOpened) -> bool:
        task = self.chain.task(opened.task_id)
        return task.status.ended or (task.round, task.attempt) != (opened.round, opened.attempt)

    def _advance(self, opened: RoundOpened) -> None:
        """Nobody taking part has anything to do: let the chain's clock move on.

        The submission window is skipped to its end at once; the vote window one block at
        a time, because members wait their stagger before proposing. With every client
        dropped out, the task's creator seals the seed and closes the attempt instead.
        """
        state = self.chain.current_round(opened.task_id)
        block = self.chain.block_number()
        phase = state.phase_at(block + 1)
        if phase is Phase.SUBMISSION and not state.seed_sealed:
            self.creator.seal_seed(opened.task_id)
        elif phase is Phase.SUBMISSION:
            self.blocks.mine(state.submission_deadline - block)
        elif phase is Phase.EXPIRED:
            self.creator.timeout(opened.task_id)
        else:
            self.blocks.mine(1)

    def _honest_model(self, seated: list[ParticipantActor], opened: RoundOpened) -> str:
        """The model CID an honest member computes for this attempt, recomputed by one
        outside the committee when attackers hold every seat."""
        for actor in seated:
            computed = actor.attempt_aggregates()
            if actor.participant.honest_member and computed:
                return computed[0].model.to_cid()
        outsider = next(p for p in self.participants if p.honest_member)
        context = seated[0].task_context()
        return outsider.aggregate(self.chain, self.store, context, opened).model.to_cid()


def summed_phases(clocks: list[Stopwatch]) -> dict[str, float]:
    """Each phase's seconds over every clock, rounded as a report shows them."""
    summed: dict[str, float] = {}
    for clock in clocks:
        for name, seconds in clock.seconds.items():
            summed[name] = summed.get(name, 0.0) + seconds
    return {name: round(seconds, 4) for name, seconds in summed.items()}

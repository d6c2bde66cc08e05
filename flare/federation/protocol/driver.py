"""The protocol simulation: every round through the chain's calls, checks and events.

One process plays every device. Clients train, upload their encoded updates to the
store and submit the CIDs; every participant draws its VRF and the winners claim
seats; after the submission window, members recompute the aggregate from chain and
store alone, propose it and vote. A round the committee cannot decide (too few seats,
no quorum) times out and is retried with a fresh seed, as on a real chain.
"""

import contextlib
import hashlib
import time
from typing import Any

from eth_account import Account

from flare.chain import (
    ChainConnector,
    ContentRef,
    InMemoryChain,
    Proposed,
    RoundOpened,
    TaskCreated,
    TaskParams,
    TaskStatus,
)
from flare.compression.base import MalformedUpdateError, UpdateEncoder
from flare.crypto.bls import SecretKey
from flare.errors import FlareError
from flare.federation.config import SimulationConfig
from flare.federation.protocol.aggregate import RoundAggregate, TaskContext, load_task_context
from flare.federation.protocol.artifacts import (
    TaskManifest,
    decode_model,
    encode_manifest,
    encode_model,
)
from flare.federation.protocol.roles import ProtocolParticipant, Vote
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.report import RoundRecord, SimulationReport
from flare.federation.setup import Federation, build_federation
from flare.federation.simulation import (
    RunObserver,
    Stopwatch,
    active_clients,
    client_order,
    client_seed,
    local_update,
    recording,
)
from flare.storage import DirectoryStore, MemoryStore, StorageProvider
from flare.tensors import raw_nbytes


def participant_keys(seed: int, index: int) -> tuple[Any, SecretKey]:
    """Deterministic keys for simulated participant ``index`` (never for real devices)."""
    material = hashlib.sha256(f"flare-simulated-participant/{seed}/{index}".encode()).digest()
    account = Account.from_key(hashlib.sha256(b"eth" + material).digest())
    return account, SecretKey.from_seed(hashlib.sha256(b"bls" + material).digest())


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
            run = _TaskRun(self.config, self.protocol, federation, chain, store, observer)
            return run.execute(started)

    def _open_chain(self, stack: contextlib.ExitStack) -> ChainConnector:
        if self.protocol.chain_url is not None:
            from flare.federation.protocol.devnet import open_dev_chain

            accounts = [
                participant_keys(self.config.seed, i)[0].address
                for i in range(-1, self.config.clients)
            ]
            return open_dev_chain(self.protocol.chain_url, self.protocol.deployment, accounts)
        if self.protocol.state is not None:
            self.protocol.state.parent.mkdir(parents=True, exist_ok=True)
        return stack.enter_context(InMemoryChain(self.protocol.state))

    def _open_store(self) -> StorageProvider:
        return MemoryStore() if self.protocol.store is None else DirectoryStore(self.protocol.store)


class _TaskRun:
    """One task from creation to completion; holds what the rounds share."""

    def __init__(
        self,
        config: SimulationConfig,
        protocol: ProtocolConfig,
        federation: Federation,
        chain: ChainConnector,
        store: StorageProvider,
        observer: RunObserver,
    ) -> None:
        self.config, self.protocol, self.federation = config, protocol, federation
        self.chain, self.store, self.observer = chain, store, observer
        self.participants = []
        for index, client in enumerate(federation.clients):
            account, bls_key = participant_keys(config.seed, index)
            dishonest = (
                protocol.dishonest_committee and client.client_id in federation.malicious_ids
            )
            self.participants.append(
                ProtocolParticipant(client.client_id, account, bls_key, honest_member=not dishonest)
            )
        self.by_address = {p.address: p for p in self.participants}
        self.encoders: dict[str, UpdateEncoder] = {}
        creator, _ = participant_keys(config.seed, -1)
        self.creator = chain.as_sender(creator)

    def execute(self, started: float) -> SimulationReport:
        report = SimulationReport(
            config={**self.config.to_dict(), **self._protocol_options()},
            privacy=self.federation.privacy_summary(),
        )
        task_id, context = self._create_task()
        self.observer.run_started(self.config)
        with recording(report, started):
            while True:
                record = self._round(task_id, context)
                report.rounds.append(record)
                self.observer.round_finished(record)
                if record.protocol["task_completed"]:
                    break
        return report

    def _protocol_options(self) -> dict[str, Any]:
        p = self.protocol
        return {
            "offline": False,
            "committee": p.expected_committee,
            "min_committee": p.min_committee,
            "quorum": p.quorum_bps,
            "min_clients": p.min_clients,
            "dishonest_committee": p.dishonest_committee,
            "state": str(p.state) if p.state else None,
            "store": str(p.store) if p.store else None,
            "chain": p.chain_url,
            "chain_id": self.chain.chain_id,
            "contract": self.chain.contract_address,
        }

    def _create_task(self) -> tuple[int, TaskContext]:
        federation, store = self.federation, self.store
        manifest = TaskManifest(
            model=self.config.model,
            num_features=federation.dataset.num_features,
            num_classes=federation.dataset.num_classes,
            aggregator=self.config.aggregator,
            aggregator_params=dict(self.config.aggregator_params),
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
        # Every transaction mines one block, so windows must fit one per participant.
        window = 2 * len(self.participants) + 8
        params = TaskParams(
            min_clients=self.protocol.min_clients,
            expected_committee=self.protocol.expected_committee,
            min_committee=self.protocol.min_committee,
            quorum_bps=self.protocol.quorum_bps,
            submission_window=window,
            vote_window=window,
            max_rounds=self.config.rounds,
            max_attempts=self.protocol.max_attempts,
        )
        receipt = self.creator.create_task(
            ContentRef.from_cid(model_cid), ContentRef.from_cid(manifest_cid), params
        )
        task_id = receipt.one(TaskCreated).task_id
        for participant in self.participants:
            participant.register(self.chain, task_id)
        self.creator.start_task(task_id)
        return task_id, load_task_context(self.chain, store, task_id)

    def _round(self, task_id: int, context: TaskContext) -> RoundRecord:
        started = time.perf_counter()
        clock = Stopwatch()
        failed: list[dict[str, Any]] = []
        while True:
            state = self.chain.current_round(task_id)
            opened = self.chain.round_opened(task_id, state.round, state.attempt)
            outcome = self._attempt(context, opened, clock)
            if outcome["finalized"]:
                break
            failed.append(outcome)
            if len(failed) >= self.protocol.max_attempts:
                raise FlareError(
                    f"round {opened.round} failed {len(failed)} attempts; last: {outcome['reason']}"
                )
            self.chain.mine(max(0, opened.vote_deadline - self.chain.block_number()))
            self.creator.timeout(task_id)
        with clock.phase("evaluate"):
            self.federation.evaluator.set_weights(outcome["weights"])
            evaluation = self.federation.evaluator.evaluate(
                self.federation.dataset.test_features, self.federation.dataset.test_labels
            )
        names = {p.address: p.name for p in self.participants}
        malicious = self.federation.malicious_ids
        sent = outcome["sent"]
        protocol = {
            key: value
            for key, value in outcome.items()
            if key not in ("weights", "sent", "aggregate")
        }
        protocol["failed_attempts"] = failed
        protocol["task_completed"] = self.chain.task(task_id).status == TaskStatus.COMPLETED
        aggregate = outcome["aggregate"]
        return RoundRecord(
            round=opened.round,
            accuracy=evaluation.accuracy,
            loss=evaluation.loss,
            bytes_up=outcome["bytes_up"],
            bytes_raw=len(sent) * raw_nbytes(context.spec),
            accepted=[names[a] for a in aggregate.accepted],
            flagged=[names[a] for a in aggregate.flagged],
            malicious=sorted((n for n in sent if n in malicious), key=client_order),
            dropped=outcome["dropped"],
            rejected={names[a]: reason for a, reason in aggregate.rejected.items()},
            seconds=time.perf_counter() - started,
            scores={names[a]: s for a, s in aggregate.scores.items()},
            reasons={names[a]: r for a, r in aggregate.reasons.items()},
            timings={k: round(v, 4) for k, v in clock.seconds.items()},
            protocol=protocol,
            # A retried attempt re-sends the same noised delta (same base model, same
            # seeds), so whoever sent in any attempt of the round made one release.
            privacy=self.federation.account_round(
                sorted({*sent, *(name for f in failed for name in f["sent"])}, key=client_order)
            ),
        )

    def _attempt(
        self, context: TaskContext, opened: RoundOpened, clock: Stopwatch
    ) -> dict[str, Any]:
        """Run one attempt: submissions and seats, then proposals and votes."""
        chain, store, federation = self.chain, self.store, self.federation
        base_cid = opened.base_model.to_cid()
        with clock.phase("storage"):
            base = decode_model(store.get(base_cid), context.spec)
        participants, dropped = active_clients(
            self.config, federation.clients, opened.round, opened.attempt
        )
        self.observer.round_started(opened.round, len(participants))
        bytes_up, sent = 0, []
        for index, client in participants:
            member = self.participants[index]
            with clock.phase("train"):
                seed = client_seed(self.config.seed, opened.round, index)
                update = local_update(federation, client, base, seed)
            encoder = self.encoders.get(client.client_id)
            if encoder is None:
                encoder = federation.codec.new_encoder(
                    context.spec, client_seed(self.config.seed, 0, index)
                )
                self.encoders[client.client_id] = encoder
            with clock.phase("encode"):
                try:
                    blob = member.encode_update(
                        context, opened, update.delta, update.num_samples, encoder
                    )
                except MalformedUpdateError:
                    # A diverged client cannot encode its update; like a device, it sends nothing.
                    self.observer.client_finished(client.client_id)
                    continue
            with clock.phase("storage"):
                cid = store.put(blob)
            with clock.phase("chain"):
                member.submit(chain, opened.task_id, cid, update.num_samples)
            bytes_up += len(blob)
            sent.append(client.client_id)
            self.observer.client_finished(client.client_id)

        with clock.phase("vrf"):
            if not chain.current_round(opened.task_id).seed_sealed:  # nobody submitted
                self.creator.seal_seed(opened.task_id)
            for index, _ in participants:
                self.participants[index].claim_seat_if_drawn(
                    chain, opened, self.protocol.expected_committee
                )
        chain.mine(max(0, opened.submission_deadline - chain.block_number()))
        committee = chain.committee(opened.task_id, opened.round, opened.attempt)
        outcome: dict[str, Any] = {
            "attempt": opened.attempt,
            "seed": "0x" + chain.attempt_seed(opened.task_id, opened.round, opened.attempt).hex(),
            "committee": [
                {
                    "member": self.by_address[c.member].name,
                    "address": c.member,
                    "vrf_output": "0x" + c.output.hex(),
                }
                for c in committee
            ],
            # What the attempt needed, so a failure can be told in numbers ("2 of 3 approvals").
            "seats_needed": self.protocol.min_committee,
            "submissions_needed": self.protocol.min_clients,
            "approvals_needed": -(-self.protocol.quorum_bps * len(committee) // 10_000),
            "attackers_seated": [
                self.by_address[c.member].name
                for c in committee
                if self.by_address[c.member].name in federation.malicious_ids
            ],
            "proposals": [],
            "votes": [],
            "finalized": False,
            "bytes_up": bytes_up,
            "sent": sent,
            "dropped": dropped,
        }
        if len(committee) < self.protocol.min_committee:
            outcome["reason"] = f"committee of {len(committee)} below {self.protocol.min_committee}"
            return outcome
        if len(sent) < self.protocol.min_clients:
            outcome["reason"] = f"{len(sent)} submissions below {self.protocol.min_clients}"
            return outcome

        members = [self.by_address[c.member] for c in committee]
        with clock.phase("aggregate"):
            computed = {m.address: m.aggregate(chain, store, context, opened) for m in members}
        proposals: list[Proposed] = []
        with clock.phase("chain"):
            for member in members:
                proposal = member.propose_unless_present(
                    chain, store, opened.task_id, computed[member.address], proposals
                )
                if proposal is not None:
                    proposals.append(proposal)
            votes: list[Vote] = []
            for member in members:
                vote = member.vote(chain, opened.task_id, computed[member.address], proposals)
                votes.append(vote)
                if vote.finalized:
                    break
        outcome["proposals"] = [
            {
                "id": p.proposal_id,
                "proposer": self.by_address[p.proposer].name,
                "model": p.model.to_cid(),
                "accepted": "0x" + p.accepted.hex(),
            }
            for p in proposals
        ]
        outcome["votes"] = [
            {
                "member": self.by_address[v.member].name,
                "proposal": v.proposal_id,
                "approve": v.approve,
            }
            for v in votes
        ]
        final = next((v for v in votes if v.finalized), None)
        if final is None:
            outcome["reason"] = "no proposal reached the quorum"
            return outcome
        winner = next(p for p in proposals if p.proposal_id == final.proposal_id)
        aggregate = next(a for a in computed.values() if a.model == winner.model)
        if self.protocol.dishonest_committee:
            outcome["honest_model"] = self._honest_model(members, computed, context, opened)
        outcome.update(
            finalized=True,
            global_model=winner.model.to_cid(),
            weights=aggregate.weights,
            aggregate=aggregate,
        )
        return outcome

    def _honest_model(
        self,
        members: list[ProtocolParticipant],
        computed: dict[str, RoundAggregate],
        context: TaskContext,
        opened: RoundOpened,
    ) -> str:
        """The model CID an honest member computes for this attempt, recomputed by one
        outside the committee when attackers hold every seat."""
        seated = next((m for m in members if m.honest_member), None)
        if seated is not None:
            return computed[seated.address].model.to_cid()
        outsider = next(p for p in self.participants if p.honest_member)
        return outsider.aggregate(self.chain, self.store, context, opened).model.to_cid()

"""A participant as a long-lived process: follow the chain, act once per attempt, survive restarts.

A :class:`ParticipantAgent` knows a :class:`~flare.chain.ChainConnector`, a
:class:`~flare.storage.StorageProvider`, its keys, its own data and a state directory;
it runs identically against the in-memory chain (tests) and a JSON-RPC node with Kubo.

Every decision is taken from chain state read afresh at each :meth:`~ParticipantAgent.step`,
never from memory of what this process did, because the process may have been killed
and restarted in between. The contract keeps "done in this attempt" flags per participant
(``submit_epoch``, ``seat_epoch``, ``propose_epoch``, ``vote_epoch`` against the attempt's
``epoch``), so the agent acts iff the flag says it has not, and a restart never submits or
votes twice. What it does remember (the attempt's aggregate, whether it already drew its
VRF) is a cache that a fresh process recomputes from chain and store.

One step does at most one transaction. Within an attempt, in order: claim a committee
seat if the VRF draws one (cheap, and a committee too small stalls everyone), then train
and submit; after the submission window a seated member computes the aggregate, proposes
it unless an identical proposal stands, and approves the lowest-id identical proposal;
after the vote window anyone closes the attempt with ``timeout``.
"""

import logging
import signal
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flare.chain import (
    ChainConnector,
    ContractError,
    Participant,
    Phase,
    Round,
    Task,
    TaskStatus,
)
from flare.chain.api.errors import AlreadyRegistered, TaskEnded, VoteWindowOpen
from flare.compression import make_codec
from flare.compression.base import MalformedUpdateError
from flare.crypto.identity import ParticipantKeys
from flare.errors import FlareError
from flare.federation.agents.committee import CommitteeMember
from flare.federation.agents.encoder_state import EncoderStateStore
from flare.federation.agents.follow import AttemptMemo, StepOutcome, TaskFollower
from flare.federation.agents.local_data import read_client_data
from flare.federation.agents.private_update import PrivateUpdateStore
from flare.federation.clients import Client, LocalUpdate, make_attack, produce_update
from flare.federation.protocol.aggregate import TaskContext, load_task_context
from flare.federation.protocol.artifacts import decode_model
from flare.federation.protocol.roles import ProtocolParticipant
from flare.models import TorchModelAdapter, TrainingConfig, build_model
from flare.privacy import DEFAULT_DELTA, DPParams, LocalDP, check_participant_privacy, epsilon_after
from flare.storage import StorageProvider
from flare.tensors import Weights


@dataclass(frozen=True)
class AgentOptions:
    """How this participant trains, encodes and behaves; none of it is on chain."""

    codec: str = "none"
    rank: int = 4
    training: TrainingConfig = field(default_factory=TrainingConfig)
    attack: str | None = None
    attack_strength: float | None = None
    honest_member: bool = True
    propose_stagger: int = 1
    """Blocks each committee rank waits before proposing, so members rarely propose twice."""
    dp: DPParams | None = None
    """Client-level DP: clip and noise every update on this device (docs/privacy.md)."""


class ParticipantAgent:
    """One participant of one task; :meth:`step` for tests, :meth:`run` for a process."""

    def __init__(
        self,
        chain: ChainConnector,
        store: StorageProvider,
        keys: ParticipantKeys,
        task_id: int,
        data: Path,
        state_dir: Path,
        options: AgentOptions | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.chain = chain.as_sender(keys.account)
        self.store = store
        self.task_id = task_id
        self.data = data
        self.options = options or AgentOptions()
        self.name = name or keys.account.address[:10]
        self.participant = ProtocolParticipant(
            self.name, keys.account, keys.bls_key, honest_member=self.options.honest_member
        )
        self.log = logging.getLogger(f"flare.agent.{self.name}")
        self.encoder_state = EncoderStateStore(state_dir)
        self.private_updates = PrivateUpdateStore(state_dir)
        # Training and encoder seeds follow from the address: a restarted process trains
        # exactly as the one it replaces, and re-encodes the same bytes.
        self._seed = zlib.crc32(self.address.lower().encode())
        self._attack = (
            make_attack(self.options.attack, self.options.attack_strength)
            if self.options.attack
            else None
        )
        rank = {"rank": self.options.rank} if self.options.codec == "powersgd" else {}
        self._codec = make_codec(self.options.codec, **rank)
        self._context: TaskContext | None = None
        self._client: Client | None = None
        self._trainer: TorchModelAdapter | None = None
        self.follower = TaskFollower(self.chain, task_id, self.log)
        self.committee = CommitteeMember(
            self.chain, store, self.participant, task_id, self.log, self.options.propose_stagger
        )
        self._waiting_said = False
        self._stale_at: int | None = None

    @property
    def address(self) -> str:
        return self.participant.address

    # -- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event, poll_interval: float) -> None:
        """Step until the task completes or ``stop`` is set; wait ``poll_interval`` when idle.

        The task and the local data are checked first, so a wrong task id or data file
        fails at start-up. After that, a node or IPFS daemon that is briefly unreachable,
        or any other deliberate error of one step (anything but a contract's refusal), is
        logged in one line and waited out: an unattended device should ride through a
        restart of its gateway, and nothing another participant sends should stop it.
        """
        self._local_client(self._task_context())
        while not stop.is_set():
            try:
                outcome = self.step()
            except ContractError:
                raise
            except FlareError as exc:
                self.log.warning("%s; retrying in %gs", exc, poll_interval)
                outcome = StepOutcome.IDLE
            if outcome is StepOutcome.DONE:
                return
            if outcome is StepOutcome.IDLE:
                stop.wait(poll_interval)
        self.log.info("stopped")

    def step(self) -> StepOutcome:
        """Read the chain, do at most one transaction, say what happened.

        A transaction the contract refuses means this process's view was stale: another
        member's vote finalized the attempt first, or the window closed while training. A
        node that mines on a timer checks transactions against its pending block while
        views read the latest one, so the view stays stale until the next block; until
        then the agent only waits.
        """
        if self._stale_at is not None and self.chain.block_number() <= self._stale_at:
            return StepOutcome.IDLE
        self._stale_at = None
        task = self.chain.task(self.task_id)
        try:
            return self._advance(task)
        except ContractError as exc:
            self._stale_at = self.chain.block_number()
            self.log.info("refused by the contract: %s; waiting for the next block", exc)
            return StepOutcome.IDLE

    def _advance(self, task: Task) -> StepOutcome:
        if task.status.ended:
            self.follower.finish()
            return StepOutcome.DONE
        me = self.chain.participant(self.task_id, self.address)
        if not me.registered:
            self._register()
            return StepOutcome.ACTED
        if task.status is TaskStatus.REGISTERING:
            if not self._waiting_said:
                self.log.info("registered as participant #%d; waiting for the start", me.index)
                self._waiting_said = True
            return StepOutcome.IDLE
        state = self.chain.current_round(self.task_id)
        memo = self.follower.attempt(state)
        block = self.chain.block_number() + 1  # where our next transaction lands
        phase = state.phase_at(block)
        if phase is Phase.SUBMISSION:
            return self._submission_phase(task, state, me, memo)
        if phase is Phase.VOTING and me.seat_epoch == state.epoch:
            return self.committee.act(task, state, me, memo, block, self._task_context())
        if phase is Phase.EXPIRED:
            return self._close_expired(memo)
        return StepOutcome.IDLE

    # -- registration and submission window ---------------------------------------------

    def _register(self) -> None:
        try:
            self.participant.register(self.chain, self.task_id)
        except AlreadyRegistered:
            return  # an earlier run of this process got there first
        index = self.chain.participant(self.task_id, self.address).index
        self.log.info("registered for task %d as participant #%d", self.task_id, index)

    def _submission_phase(
        self, task: Task, state: Round, me: Participant, memo: AttemptMemo
    ) -> StepOutcome:
        if not state.seed_sealed:
            # The seed comes from the first block after the opening one whose transaction
            # seals it: every agent races to seal at once, so no one picks the block.
            self.chain.seal_seed(self.task_id)
            return StepOutcome.ACTED
        may_sit = me.index < state.registered_snapshot and me.seat_epoch != state.epoch
        if may_sit and not memo.seat_drawn and self._claim_seat(task, state, memo):
            return StepOutcome.ACTED
        if me.submit_epoch != state.epoch and not memo.nothing_to_send:
            self._submit(state, me, memo)
            return StepOutcome.ACTED
        return StepOutcome.IDLE

    def _claim_seat(self, task: Task, state: Round, memo: AttemptMemo) -> bool:
        """Draw the VRF and claim the seat if it wins; whether a transaction was sent."""
        try:
            output = self.participant.claim_seat_if_drawn(
                self.chain, memo.opened, task.params.expected_committee
            )
        except ContractError:
            memo.seat_drawn = True  # the contract said no; do not ask again this attempt
            raise
        memo.seat_drawn = True
        if output is None:
            return False
        self.log.info("%s: seat won (output 0x%s…)", memo.label, output.hex()[:16])
        return True

    def _submit(self, state: Round, me: Participant, memo: AttemptMemo) -> None:
        context = self._task_context()
        base = decode_model(self.store.get(memo.opened.base_model.to_cid()), context.spec)
        update = self._update_to_send(context, base, state, memo)
        encoder = self._codec.new_encoder(context.spec, _derived_seed(self._seed, 0, 0))
        self.encoder_state.restore(encoder, me.submit_epoch)
        try:
            blob = self.participant.encode_update(
                context, memo.opened, update.delta, update.num_samples, encoder
            )
        except MalformedUpdateError as exc:  # training diverged: like a device, send nothing
            memo.nothing_to_send = True
            memo.say_once(self.log, "unsendable", f"sends nothing this attempt: {exc}")
            return
        self.encoder_state.stage(encoder, state.epoch)
        cid = self.store.put(blob)
        self.store.pin(cid)
        self.participant.submit(self.chain, self.task_id, cid, update.num_samples)
        self.encoder_state.commit(state.epoch)
        self.log.info(
            "%s: submitted %s (%.1f KB, %d samples)",
            memo.label,
            cid,
            len(blob) / 1000,
            update.num_samples,
        )
        if self.options.dp is not None:
            requirement = context.bundle.manifest.privacy
            delta = DEFAULT_DELTA if requirement is None else requirement.delta
            spent = epsilon_after(state.round, self.options.dp.noise_multiplier, delta)
            self.log.info(
                "%s: ε ≤ %.3g at δ = %g so far (at most one release per round)",
                memo.label,
                spent,
                delta,
            )

    def _update_to_send(
        self, context: TaskContext, base: Weights, state: Round, memo: AttemptMemo
    ) -> LocalUpdate:
        """This attempt's update; with DP, the round's one noised update (see private_update)."""
        seed = _derived_seed(self._seed, state.round, state.attempt)
        if self.options.dp is None:
            return self._train(context, base, seed)
        base_model = memo.opened.base_model.to_cid()
        kept = self.private_updates.load(state.round, base_model, context.spec)
        if kept is not None:
            return kept
        # Unseeded: the operating system's entropy, which nobody else can reproduce.
        noise = LocalDP(self.options.dp, np.random.default_rng())
        update = self._train(context, base, seed, noise)
        self.private_updates.save(state.round, base_model, update)
        return update

    def _train(
        self, context: TaskContext, base: Weights, seed: int, privacy: LocalDP | None = None
    ) -> LocalUpdate:
        """This round's update from the local data: honest training, or the chosen attack."""
        client = self._local_client(context)
        if self._trainer is None:
            manifest = context.bundle.manifest
            module = build_model(
                manifest.model, manifest.num_features, manifest.num_classes, seed=0
            )
            self._trainer = TorchModelAdapter(module, self.options.training)
        num_classes = context.bundle.manifest.num_classes
        return produce_update(client, self._trainer, base, num_classes, seed, self._attack, privacy)

    def _close_expired(self, memo: AttemptMemo) -> StepOutcome:
        """Close an attempt whose vote window passed; many race, the chain takes one."""
        try:
            self.chain.timeout(self.task_id)
        except (VoteWindowOpen, TaskEnded):
            self.log.debug("%s: already closed by another participant", memo.label)
            return StepOutcome.ACTED
        self.log.info("%s: sent timeout", memo.label)
        return StepOutcome.ACTED

    # -- lazily loaded ------------------------------------------------------------------

    def _task_context(self) -> TaskContext:
        if self._context is None:
            context = load_task_context(self.chain, self.store, self.task_id)
            rounds = self.chain.task(self.task_id).params.max_rounds
            # Before anything is trained or sent: a task that requires DP gets it or nothing.
            check_participant_privacy(context.bundle.manifest.privacy, self.options.dp, rounds)
            self._context = context
        return self._context

    def _local_client(self, context: TaskContext) -> Client:
        if self._client is None:
            manifest = context.bundle.manifest
            self._client = read_client_data(
                self.data, self.name, manifest.num_features, manifest.num_classes
            )
        return self._client


def stop_event_on_signals() -> threading.Event:
    """An event SIGTERM and SIGINT set, for :meth:`ParticipantAgent.run` to stop on.

    The action under way (training, a transaction waiting for its receipt) finishes
    first, so a stopped process leaves nothing half done. A second Ctrl-C interrupts at
    once, for an operator who cannot wait.
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def _derived_seed(seed: int, round_number: int, attempt: int) -> int:
    """Independent, reproducible seed for one attempt's training (round 0: the encoder)."""
    return int(np.random.SeedSequence([seed, round_number, attempt]).generate_state(1)[0])

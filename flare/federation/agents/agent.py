"""A participant as a long-lived process: its own data, its own keys, one task.

:class:`ParticipantAgent` runs the protocol's one :class:`~flare.federation.protocol.actor.
ParticipantActor` against a :class:`~flare.chain.ChainConnector` and a
:class:`~flare.storage.StorageProvider`, identically on the in-memory chain (tests) and a
JSON-RPC node with Kubo. What is particular to a device lives here: training on the local
data file (or playing the configured attack), client-level DP with the round's one noised
update kept on disk, and the encoder state kept on disk, so that a restarted process
trains, noises and encodes exactly as the one it replaces.
"""

import logging
import signal
import threading
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from flare.chain import ChainConnector, ContractError, RoundOpened
from flare.compression import make_codec
from flare.compression.base import MalformedUpdateError, UpdateBinding
from flare.crypto.identity import ParticipantKeys
from flare.errors import FlareError
from flare.federation.agents.encoder_state import EncoderStateStore
from flare.federation.agents.local_data import read_client_data
from flare.federation.agents.private_update import PrivateUpdateStore
from flare.federation.attacks import make_attack
from flare.federation.clients import Client, LocalUpdate, produce_update
from flare.federation.protocol.actor import Device, ParticipantActor
from flare.federation.protocol.aggregate import TaskContext
from flare.federation.protocol.artifacts import build_task_model
from flare.federation.protocol.follow import StepOutcome
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.rounds import EncodedUpdate
from flare.models import TorchModelAdapter, TrainingConfig
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
    admitted: tuple[str, ...] = ()
    """A permissioned task's admission list, to prove this device's admission from."""
    stake: int = 0
    """The wei this device bonds in a staked task; zero bonds the task's minimum."""


class LocalDevice(Device):
    """This machine: the local data file, the chosen behaviour, and state on disk."""

    def __init__(self, data: Path, state_dir: Path, options: AgentOptions, name: str, seed: int):
        self.data, self.options, self.name = data, options, name
        self.encoder_state = EncoderStateStore(state_dir)
        self.private_updates = PrivateUpdateStore(state_dir)
        self._seed = seed
        self._attack = (
            make_attack(options.attack, options.attack_strength) if options.attack else None
        )
        rank = {"rank": options.rank} if options.codec == "powersgd" else {}
        self._codec = make_codec(options.codec, **rank)
        self._client: Client | None = None
        self._trainer: TorchModelAdapter | None = None
        self._delta = DEFAULT_DELTA
        self.log = logging.getLogger(f"flare.agent.{name}")

    def prepare(self, context: TaskContext, max_rounds: int) -> None:
        """A task that requires DP gets it or nothing; the data must fit the model, and the
        model built here must be the one the task binds."""
        requirement = context.bundle.manifest.privacy
        check_participant_privacy(requirement, self.options.dp, max_rounds)
        self._delta = DEFAULT_DELTA if requirement is None else requirement.delta
        self.local_client(context)
        self.trainer(context)

    def trainer(self, context: TaskContext) -> TorchModelAdapter:
        """The task's model, built once from its manifest and trained in place each round."""
        if self._trainer is None:
            module = build_task_model(context.bundle.manifest)
            self._trainer = TorchModelAdapter(module, self.options.training)
        return self._trainer

    def local_client(self, context: TaskContext) -> Client:
        if self._client is None:
            manifest = context.bundle.manifest
            self._client = read_client_data(
                self.data, self.name, manifest.num_features, manifest.num_classes
            )
        return self._client

    def encoded_update(
        self,
        context: TaskContext,
        base: Weights,
        opened: RoundOpened,
        binding: UpdateBinding,
        submitted_epoch: int,
    ) -> EncodedUpdate:
        update = self._update(context, base, opened)
        encoder = self._codec.new_encoder(context.spec, _derived_seed(self._seed, 0, 0))
        self.encoder_state.restore(encoder, submitted_epoch)
        binding = replace(binding, num_samples=update.num_samples)
        try:
            blob = encoder.encode(update.delta, binding)
        except MalformedUpdateError as exc:
            return EncodedUpdate(None, update.num_samples, str(exc))
        self.encoder_state.stage(encoder, opened.epoch)
        return EncodedUpdate(blob, update.num_samples)

    def _update(self, context: TaskContext, base: Weights, opened: RoundOpened) -> LocalUpdate:
        """This attempt's update; with DP, the round's one noised update (see private_update)."""
        seed = _derived_seed(self._seed, opened.round, opened.attempt)
        if self.options.dp is None:
            return self._train(context, base, seed)
        base_model = opened.base_model.to_cid()
        kept = self.private_updates.load(opened.round, base_model, context.spec)
        if kept is not None:
            return kept
        # Unseeded: the operating system's entropy, which nobody else can reproduce.
        noise = LocalDP(self.options.dp, np.random.default_rng())
        update = self._train(context, base, seed, noise)
        self.private_updates.save(opened.round, base_model, update)
        return update

    def _train(
        self, context: TaskContext, base: Weights, seed: int, privacy: LocalDP | None = None
    ) -> LocalUpdate:
        """This round's update from the local data: honest training, or the chosen attack."""
        num_classes = context.bundle.manifest.num_classes
        return produce_update(
            self.local_client(context),
            self.trainer(context),
            base,
            num_classes,
            seed,
            self._attack,
            privacy,
        )

    def submitted(self, opened: RoundOpened, epoch: int, blob_size: int) -> None:
        self.encoder_state.commit(epoch)
        if self.options.dp is not None:
            spent = epsilon_after(opened.round, self.options.dp.noise_multiplier, self._delta)
            self.log.info(
                "round %d attempt %d: ε ≤ %.3g at δ = %g so far (at most one release per round)",
                opened.round,
                opened.attempt,
                spent,
                self._delta,
            )


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
        self.options = options or AgentOptions()
        self.name = name or keys.account.address[:10]
        self.participant = ProtocolParticipant(
            self.name,
            keys.account,
            keys.bls_key,
            honest_member=self.options.honest_member,
            admitted=self.options.admitted,
            stake=self.options.stake,
        )
        # Training and encoder seeds follow from the address: a restarted process trains
        # exactly as the one it replaces, and re-encodes the same bytes.
        seed = zlib.crc32(self.participant.address.lower().encode())
        self.device = LocalDevice(data, state_dir, self.options, self.name, seed)
        self.actor = ParticipantActor(
            chain,
            store,
            self.participant,
            task_id,
            self.device,
            propose_stagger=self.options.propose_stagger,
            log=logging.getLogger(f"flare.agent.{self.name}"),
        )

    @property
    def address(self) -> str:
        return self.participant.address

    @property
    def encoder_state(self) -> EncoderStateStore:
        return self.device.encoder_state

    def step(self) -> StepOutcome:
        """Read the chain, do at most one transaction, say what happened."""
        return self.actor.step()

    def run(self, stop: threading.Event, poll_interval: float) -> None:
        """Step until the task ends or ``stop`` is set; wait ``poll_interval`` when idle.

        The task and the local data are checked first, so a wrong task id or data file
        fails at start-up. After that, a node or IPFS daemon that is briefly unreachable,
        or any other deliberate error of one step (anything but a contract's refusal), is
        logged in one line and waited out: an unattended device should ride through a
        restart of its gateway, and nothing another participant sends should stop it.
        """
        self.actor.task_context()
        while not stop.is_set():
            try:
                outcome = self.step()
            except ContractError:
                raise
            except FlareError as exc:
                self.actor.log.warning("%s; retrying in %gs", exc, poll_interval)
                outcome = StepOutcome.IDLE
            if outcome is StepOutcome.DONE:
                return
            if outcome is StepOutcome.IDLE:
                stop.wait(poll_interval)
        self.actor.log.info("stopped")


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

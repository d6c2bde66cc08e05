"""Simulated devices: every client of a protocol simulation, trained in one process.

Each simulated client is a :class:`~flare.federation.protocol.actor.Device` of its own
:class:`~flare.federation.protocol.actor.ParticipantActor`. Their updates come from the
round step the offline simulation uses too (``rounds.train_round``), computed once per
attempt for everyone who takes part, so that a colluding bloc has read the honest updates
before it forges its own, and their encoders from one cache kept for the whole run.
"""

import hashlib
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account

from flare.chain import RoundOpened
from flare.compression.base import UpdateEncoder
from flare.crypto.bls import SecretKey
from flare.federation.clients import Client, LocalUpdate
from flare.federation.protocol.actor import Device
from flare.federation.protocol.aggregate import TaskContext
from flare.federation.rounds import EncoderCache, RunObserver, train_round
from flare.federation.setup import Federation
from flare.tensors import Weights


def participant_keys(seed: int, index: int) -> tuple[Any, SecretKey]:
    """Deterministic keys for simulated participant ``index`` (never for real devices)."""
    material = hashlib.sha256(f"flare-simulated-participant/{seed}/{index}".encode()).digest()
    account = Account.from_key(hashlib.sha256(b"eth" + material).digest())
    return account, SecretKey.from_seed(hashlib.sha256(b"bls" + material).digest())


@dataclass
class AttemptSends:
    """Who sent an update in one attempt, and how many bytes."""

    sent: list[str] = field(default_factory=list)
    bytes_up: int = 0


class SimulatedRound:
    """The updates of the attempt under way, trained once for everyone taking part."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation
        self.participants: list[tuple[int, Client]] = []
        self.sends = AttemptSends()
        self._attempt: tuple[int, int] | None = None
        self._updates: dict[str, LocalUpdate] | None = None

    def begin(self, opened: RoundOpened, participants: list[tuple[int, Client]]) -> None:
        """A new attempt opens with ``participants``; nothing is trained until asked."""
        self._attempt = (opened.round, opened.attempt)
        self.participants = participants
        self.sends = AttemptSends()
        self._updates = None

    def update(self, client: Client, base: Weights, opened: RoundOpened) -> LocalUpdate:
        if self._attempt != (opened.round, opened.attempt):
            raise RuntimeError(f"{client.client_id} asked for an update outside its attempt")
        if self._updates is None:
            self._updates = train_round(self.federation, self.participants, base, opened.round)
        return self._updates[client.client_id]


class SimulatedDevice(Device):
    """One simulated client: the round's shared training and the run's encoder cache."""

    def __init__(
        self,
        index: int,
        client: Client,
        rounds: SimulatedRound,
        encoders: EncoderCache,
        observer: RunObserver,
    ) -> None:
        self.index, self.client = index, client
        self.rounds, self.encoders, self.observer = rounds, encoders, observer

    def update(self, context: TaskContext, base: Weights, opened: RoundOpened) -> LocalUpdate:
        return self.rounds.update(self.client, base, opened)

    def encoder(self, context: TaskContext, submitted_epoch: int) -> UpdateEncoder:
        # The simulation never restarts, so the live encoder is the last submission's state.
        return self.encoders.encoder(self.index, self.client)

    def submitted(self, opened: RoundOpened, epoch: int, blob_size: int) -> None:
        self.rounds.sends.sent.append(self.client.client_id)
        self.rounds.sends.bytes_up += blob_size
        self.observer.client_finished(self.client.client_id)

    def unsendable(self, opened: RoundOpened) -> None:
        self.observer.client_finished(self.client.client_id)

"""Simulated devices: every client of a protocol simulation, trained in one process.

Each simulated client is a :class:`~flare.federation.protocol.actor.Device` of its own
:class:`~flare.federation.protocol.actor.ParticipantActor`. Their updates come from the
round step the offline simulation uses too (``rounds.train_round``), computed once per
attempt for everyone who takes part, so that a colluding bloc has read the honest updates
before it forges its own, and their encoders from one cache kept for the whole run.
"""

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from eth_account import Account

from flare.chain import RoundOpened
from flare.compression.base import UpdateBinding
from flare.crypto.bls import SecretKey
from flare.federation.backends import ClientBackend
from flare.federation.clients import Client
from flare.federation.protocol.actor import Device
from flare.federation.protocol.aggregate import TaskContext
from flare.federation.rounds import EncodedUpdate, RunObserver
from flare.tensors import Weights


@functools.cache
def participant_keys(seed: int, index: int) -> tuple[Any, SecretKey]:
    """Deterministic keys for simulated participant ``index`` (never for real devices).

    Cached: deriving an Ethereum address takes milliseconds of pure-Python curve
    arithmetic, and a simulation asks for every participant's keys more than once."""
    material = hashlib.sha256(f"flare-simulated-participant/{seed}/{index}".encode()).digest()
    account = Account.from_key(hashlib.sha256(b"eth" + material).digest())
    return account, SecretKey.from_seed(hashlib.sha256(b"bls" + material).digest())


@dataclass
class AttemptSends:
    """Who sent an update in one attempt, and how many bytes."""

    sent: list[str] = field(default_factory=list)
    bytes_up: int = 0


class SimulatedRound:
    """The encoded updates of the attempt under way, made once for everyone taking part."""

    def __init__(self, clients: ClientBackend, addresses: Mapping[str, str]) -> None:
        self.clients, self.addresses = clients, addresses
        self.participants: list[tuple[int, Client]] = []
        self.sends = AttemptSends()
        self._attempt: tuple[int, int] | None = None
        self._encoded: dict[str, EncodedUpdate] | None = None

    def begin(self, opened: RoundOpened, participants: list[tuple[int, Client]]) -> None:
        """A new attempt opens with ``participants``; nothing is trained until asked."""
        self._attempt = (opened.round, opened.attempt)
        self.participants = participants
        self.sends = AttemptSends()
        self._encoded = None

    def encoded(self, client: Client, base: Weights, binding: UpdateBinding) -> EncodedUpdate:
        if self._attempt != (binding.round, binding.attempt):
            raise RuntimeError(f"{client.client_id} asked for an update outside its attempt")
        if self._encoded is None:
            bindings = {
                other.client_id: replace(binding, sender=self.addresses[other.client_id])
                for _, other in self.participants
            }
            self._encoded = self.clients.encode_round(
                self.participants, base, binding.round, bindings
            )
        return self._encoded[client.client_id]


class SimulatedDevice(Device):
    """One simulated client: its share of the attempt's updates, made all at once."""

    def __init__(self, client: Client, rounds: SimulatedRound, observer: RunObserver) -> None:
        self.client, self.rounds, self.observer = client, rounds, observer

    def encoded_update(
        self,
        context: TaskContext,
        base: Weights,
        opened: RoundOpened,
        binding: UpdateBinding,
        submitted_epoch: int,
    ) -> EncodedUpdate:
        # The simulation never restarts: each client's live encoder is its last state.
        encoded = self.rounds.encoded(self.client, base, binding)
        if encoded.blob is None:
            self.observer.client_finished(self.client.client_id)
        return encoded

    def submitted(self, opened: RoundOpened, epoch: int, blob_size: int) -> None:
        self.rounds.sends.sent.append(self.client.client_id)
        self.rounds.sends.bytes_up += blob_size
        self.observer.client_finished(self.client.client_id)

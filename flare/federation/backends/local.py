"""The default backend: every client trains and encodes in this process."""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from flare.compression.base import MalformedUpdateError, UpdateBinding, UpdateEncoder
from flare.federation.clients import Client, LocalUpdate
from flare.federation.rounds import (
    EncodedUpdate,
    client_seed,
    colludes,
    own_updates,
    train_round,
)
from flare.federation.setup import Federation
from flare.tensors import Weights


class LocalClients:
    """Trains and encodes a round's updates in this process.

    Each client's encoder is made on first use and kept for the whole run, so that
    stateful codecs (PowerSGD's error feedback, warm start) carry over rounds; a stateless
    codec's one encoder serves the whole fleet.
    """

    def __init__(self, federation: Federation) -> None:
        self.federation = federation
        self._encoders: dict[str, UpdateEncoder] = {}
        self._shared_encoder = (
            federation.codec.new_encoder(federation.spec, 0) if federation.codec.stateless else None
        )

    def encode_round(
        self,
        participants: Sequence[tuple[int, Client]],
        base: Weights,
        round_number: int,
        bindings: Mapping[str, UpdateBinding],
    ) -> dict[str, EncodedUpdate]:
        """Every participant's update from ``base``, encoded and bound to
        ``bindings[client_id]`` (whose ``num_samples`` the training fills in)."""
        return dict(self.stream_round(participants, base, round_number, bindings))

    def stream_round(
        self,
        participants: Sequence[tuple[int, Client]],
        base: Weights,
        round_number: int,
        bindings: Mapping[str, UpdateBinding],
    ) -> Iterator[tuple[str, EncodedUpdate]]:
        """:meth:`encode_round`'s updates by client id, in participants' order, each as soon
        as it is encoded: a caller that decodes and aggregates each before asking for the
        next holds one update at a time, not the round's."""
        if colludes(self.federation):
            updates = train_round(self.federation, participants, base, round_number)
            yield from self.encode(participants, updates, bindings).items()
            return
        # Nobody reads another's update: each is encoded as soon as it is trained.
        for participant in participants:
            update = own_updates(self.federation, [participant], base, round_number)
            yield from self.encode([participant], update, bindings).items()

    def encode(
        self,
        participants: Sequence[tuple[int, Client]],
        updates: Mapping[str, LocalUpdate],
        bindings: Mapping[str, UpdateBinding],
    ) -> dict[str, EncodedUpdate]:
        """``updates[client_id]`` of each participant through its own encoder, in order."""
        encoded = {}
        for index, client in participants:
            update = updates[client.client_id]
            binding = replace(bindings[client.client_id], num_samples=update.num_samples)
            try:
                blob = self._encoder(index, client).encode(update.delta, binding)
            except MalformedUpdateError as exc:  # a diverged client cannot send its update
                encoded[client.client_id] = EncodedUpdate(None, update.num_samples, str(exc))
            else:
                encoded[client.client_id] = EncodedUpdate(blob, update.num_samples)
        return encoded

    def _encoder(self, index: int, client: Client) -> UpdateEncoder:
        if self._shared_encoder is not None:
            return self._shared_encoder
        encoder = self._encoders.get(client.client_id)
        if encoder is None:
            seed = client_seed(self.federation.config.seed, 0, index)
            encoder = self.federation.codec.new_encoder(self.federation.spec, seed)
            self._encoders[client.client_id] = encoder
        return encoder

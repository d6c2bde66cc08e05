"""The local backend encodes each update as soon as it is trained: the same blobs as
training the whole round first, as a colluding bloc needs."""

from flare.compression.base import UpdateBinding
from flare.federation.backends.local import LocalClients
from flare.federation.config import SimulationConfig
from flare.federation.rounds import active_clients, train_round
from flare.federation.setup import build_federation


def test_a_round_encoded_client_by_client_sends_the_same_blobs_as_all_at_once():
    config = SimulationConfig(clients=6, rounds=1, malicious=2, codec="powersgd", rank=2)
    federation = build_federation(config)
    participants, _ = active_clients(config, federation.clients, 1)
    base = federation.initial_weights
    bindings = {
        client.client_id: UpdateBinding(client.client_id, "offline", 1, 0, "base", 0)
        for _, client in participants
    }
    streamed = LocalClients(federation).encode_round(participants, base, 1, bindings)
    whole_round = train_round(federation, participants, base, 1)
    batched = LocalClients(federation).encode(participants, whole_round, bindings)
    assert list(streamed) == [client.client_id for _, client in participants]
    assert {name: sent.blob for name, sent in streamed.items()} == {
        name: sent.blob for name, sent in batched.items()
    }
    assert all(sent.blob for sent in streamed.values())

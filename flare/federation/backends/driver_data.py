"""What the driver keeps of the fleet's data when workers hold it: who holds how many
samples, and the held-out splits."""

from dataclasses import replace

from flare.data import Dataset
from flare.federation.clients import Client
from flare.federation.setup import Federation


class WorkerHeldClient(Client):
    """A client as the driver knows it while a worker holds its data: its id, and how many
    samples it holds (a client without data never takes part)."""

    def __init__(self, client: Client) -> None:
        features = client.features[:0].copy()  # no view: it would keep the shard alive
        super().__init__(client.client_id, features, client.labels[:0].copy())
        self._num_samples = client.num_samples

    @property
    def num_samples(self) -> int:
        return self._num_samples


def without_training_split(dataset: Dataset) -> Dataset:
    """``dataset`` less its training split, which its clients' shards hold."""
    return replace(
        dataset,
        train_features=dataset.train_features[:0].copy(),
        train_labels=dataset.train_labels[:0].copy(),
    )


def leave_data_to_workers(federation: Federation) -> None:
    """Drop the driver's copy of the clients' data once the workers read their own: the
    driver keeps who holds how many samples, and the validation and test splits."""
    federation.clients = [WorkerHeldClient(client) for client in federation.clients]
    federation.dataset = without_training_split(federation.dataset)

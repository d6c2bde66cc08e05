"""Each participant's own training data, one ``.npz`` per client process.

On a real fleet every device holds its own data. For experiments, ``flare task
split-data`` plays that out: it loads a data set exactly as ``flare task create`` does
(same source, same seed, hence the same standardisation and the same held-out validation
split), partitions the training split among clients with :mod:`flare.data` partitioners,
and writes one file per client plus the test split for evaluating global models.
"""

from pathlib import Path

import numpy as np

from flare.data import load_dataset, partition, read_labelled_npz
from flare.federation.clients import Client

TEST_FILE = "test.npz"


def split_data(
    source: str,
    clients: int,
    out: Path,
    *,
    scheme: str = "iid",
    alpha: float = 0.5,
    seed: int = 0,
) -> list[Path]:
    """Write ``client-<i>.npz`` (``X``, ``y``) for each client and ``test.npz``; return them."""
    dataset = load_dataset(source, seed=seed)
    shards = partition(
        dataset.train_labels, clients, scheme, rng=np.random.default_rng([seed, 1]), alpha=alpha
    )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, rows in enumerate(shards):
        path = out / f"client-{index}.npz"
        np.savez(path, X=dataset.train_features[rows], y=dataset.train_labels[rows])
        written.append(path)
    np.savez(out / TEST_FILE, X=dataset.test_features, y=dataset.test_labels)
    return [*written, out / TEST_FILE]


def read_client_data(path: Path, name: str, num_features: int, num_classes: int) -> Client:
    """A client holding the ``X``/``y`` arrays of ``path``, checked against the task's model."""
    features, labels = read_labelled_npz(path, num_features=num_features, num_classes=num_classes)
    return Client(name, features.astype(np.float32), labels)

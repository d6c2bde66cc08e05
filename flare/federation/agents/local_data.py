"""Each participant's own training data, one ``.npz`` per client process.

On a real fleet every device holds its own data. For experiments, ``flare task
split-data`` plays that out: it loads a data set exactly as ``flare task create`` does
(same source, same seed, hence the same standardisation and the same held-out validation
split), partitions the training split among clients with :mod:`flare.data` partitioners,
and writes one file per client plus the test split for evaluating global models.
"""

import zipfile
from pathlib import Path

import numpy as np

from flare.data import load_dataset, partition
from flare.errors import DataError
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
    try:
        with np.load(path, allow_pickle=False) as archive:
            features, labels = archive["X"], archive["y"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: need an .npz holding X and y ({exc})") from exc
    if features.ndim != 2 or labels.shape != (len(features),) or len(labels) == 0:
        raise DataError(f"{path}: need X of shape (n, d) and y of shape (n,) with n > 0")
    if features.shape[1] != num_features:
        raise DataError(
            f"{path}: {features.shape[1]} features; the task's model takes {num_features}"
        )
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"{path}: labels must be class indices below {num_classes}")
    if not np.isfinite(features).all():
        raise DataError(f"{path}: features contain NaN or Inf")
    return Client(name, features.astype(np.float32), labels.astype(np.int64))

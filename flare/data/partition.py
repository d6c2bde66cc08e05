"""Partitioners: how the clients' training data is split among them.

Each returns one index array per client into the training split; together
they cover every sample exactly once. All are deterministic given ``rng``.
"""

import numpy as np

from flare.errors import ConfigError

PARTITIONS = ("iid", "dirichlet", "shards")


def partition(
    labels: np.ndarray,
    num_clients: int,
    scheme: str,
    *,
    rng: np.random.Generator,
    alpha: float = 0.5,
    shards_per_client: int = 2,
) -> list[np.ndarray]:
    """Split sample indices among ``num_clients`` by the named ``scheme``."""
    if num_clients < 1:
        raise ConfigError("need at least one client")
    if num_clients > len(labels):
        raise ConfigError(
            f"{num_clients} clients but the training split has only {len(labels)} samples; "
            "every client needs at least one"
        )
    if scheme == "iid":
        return iid(len(labels), num_clients, rng)
    if scheme == "dirichlet":
        return dirichlet(labels, num_clients, alpha, rng)
    if scheme == "shards":
        return shards(labels, num_clients, shards_per_client, rng)
    raise ConfigError(f"unknown partition {scheme!r}; choose one of {', '.join(PARTITIONS)}")


def iid(num_samples: int, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, then deal out near-equal contiguous parts."""
    return [np.sort(part) for part in np.array_split(rng.permutation(num_samples), num_clients)]


def dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Per class, split its samples among clients in proportions drawn from Dir(alpha).

    Small ``alpha`` gives each client few classes; large ``alpha`` tends to IID.
    """
    if not alpha > 0:
        raise ConfigError(f"dirichlet alpha must be > 0, got {alpha}")
    parts: list[list[int]] = [[] for _ in range(num_clients)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        shares = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
        for client, chunk in enumerate(np.split(members, cuts)):
            parts[client].extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def shards(
    labels: np.ndarray, num_clients: int, shards_per_client: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Sort by label, cut into equal shards, give each client ``shards_per_client`` of them."""
    num_shards = num_clients * shards_per_client
    if num_shards > len(labels):
        raise ConfigError(
            f"{num_clients} clients x {shards_per_client} shards needs at least {num_shards} "
            f"samples; the training split has {len(labels)}"
        )
    by_label = np.argsort(labels, kind="stable")
    pieces = np.array_split(by_label, num_shards)
    assignment = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([pieces[s] for s in row])) for row in assignment]

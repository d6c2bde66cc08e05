"""Data sets and partitioners: splits are disjoint, reproducible, and bad files fail clearly."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.data import load_dataset, partition
from flare.errors import ConfigError, DataError


def test_digits_splits_are_disjoint_and_standardised():
    data = load_dataset("digits", seed=0)
    total = len(data.train_labels) + len(data.validation_labels) + len(data.test_labels)
    assert total == 1797
    assert data.num_classes == 10
    assert data.num_features == 64
    assert abs(float(data.train_features.mean())) < 1e-3
    assert data.train_features.dtype == np.float32


def test_same_seed_same_split_and_other_seed_differs():
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    assert np.array_equal(a.validation_labels, b.validation_labels)
    assert np.array_equal(a.train_features, b.train_features)
    assert not np.array_equal(a.train_features, c.train_features)


def test_npz_with_explicit_test_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "blobs.npz"
    np.savez(
        path,
        X=rng.normal(size=(200, 3, 3)),
        y=rng.integers(0, 4, 200),
        X_test=rng.normal(size=(50, 3, 3)),
        y_test=rng.integers(0, 4, 50),
    )
    data = load_dataset(str(path), seed=0)
    assert data.num_features == 9
    assert len(data.test_labels) == 50
    assert len(data.train_labels) + len(data.validation_labels) == 200


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((5, 2))}, "no array named 'y'"),
        ({"X": np.zeros((5, 2)), "y": np.zeros(4, dtype=int)}, "need X of shape"),
        ({"X": np.full((5, 2), np.nan), "y": np.zeros(5, dtype=int)}, "NaN or Inf"),
        ({"X": np.zeros((5, 2)), "y": np.full(5, -1)}, "non-negative"),
        ({"X": np.zeros((5, 2)), "y": np.zeros(5)}, "labels integers"),
        (
            {"X": np.zeros((5, 2)), "y": np.zeros(5, dtype=int), "X_test": np.zeros((2, 2))},
            "together",
        ),
    ],
)
def test_malformed_npz_is_refused(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path), seed=0)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(tmp_path / "nope.npz"), seed=0)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DataError, match="not a readable"):
        load_dataset(str(corrupt), seed=0)


def test_pickled_object_arrays_are_never_loaded(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, X=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4, dtype=int))
    with pytest.raises(DataError):
        load_dataset(str(path), seed=0)


@settings(max_examples=40, deadline=None)
@given(
    num_samples=st.integers(30, 300),
    num_clients=st.integers(1, 12),
    scheme=st.sampled_from(["iid", "dirichlet", "shards"]),
    seed=st.integers(0, 2**16),
)
def test_partitions_cover_every_sample_exactly_once(num_samples, num_clients, scheme, seed):
    labels = np.random.default_rng(seed).integers(0, 5, num_samples)
    parts = partition(labels, num_clients, scheme, rng=np.random.default_rng(seed), alpha=0.3)
    assert len(parts) == num_clients
    merged = np.sort(np.concatenate(parts))
    assert np.array_equal(merged, np.arange(num_samples))


def test_dirichlet_small_alpha_is_skewed_and_large_alpha_is_not():
    labels = np.repeat(np.arange(10), 100)

    def mean_classes_per_client(alpha: float) -> float:
        parts = partition(labels, 10, "dirichlet", rng=np.random.default_rng(0), alpha=alpha)
        return float(np.mean([len(np.unique(labels[p])) for p in parts if len(p)]))

    assert mean_classes_per_client(0.1) < 5
    assert mean_classes_per_client(100.0) == 10


def test_shards_give_few_labels_per_client():
    labels = np.repeat(np.arange(10), 100)
    parts = partition(labels, 10, "shards", rng=np.random.default_rng(0))
    assert max(len(np.unique(labels[p])) for p in parts) <= 2


def test_partition_errors():
    labels = np.zeros(10, dtype=int)
    with pytest.raises(ConfigError, match="unknown partition"):
        partition(labels, 2, "stripes", rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="at least 12 samples"):
        partition(labels, 6, "shards", rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="11 clients but the training split has only 10"):
        partition(labels, 11, "iid", rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="alpha"):
        partition(labels, 2, "dirichlet", rng=np.random.default_rng(0), alpha=0.0)

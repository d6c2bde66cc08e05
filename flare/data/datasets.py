"""Data sets: scikit-learn's bundled digits by default, or the user's own ``.npz``.

Every data set is split the same way: a test split for reporting accuracy, a
public validation split for the MI filter, and the rest for the clients. The
validation split is held out from the clients' data.
"""

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flare.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """A classification data set, already split and standardised."""

    name: str
    train_features: np.ndarray
    train_labels: np.ndarray
    validation_features: np.ndarray
    validation_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    num_classes: int

    @property
    def num_features(self) -> int:
        return int(self.train_features.shape[1])


def load_dataset(
    source: str,
    *,
    seed: int,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> Dataset:
    """Load ``"digits"`` or a path to an ``.npz`` holding ``X`` and ``y``.

    An ``.npz`` may also hold ``X_test`` and ``y_test``; then ``test_fraction``
    is ignored. Features are flattened per sample and standardised with the
    training split's statistics.
    """
    if source == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        features, labels, test = bunch.data, bunch.target, None
        name = "digits"
    else:
        features, labels, test = _read_npz(Path(source))
        name = Path(source).name
    return _split(name, features, labels, test, seed, validation_fraction, test_fraction)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    if not path.is_file():
        raise DataError(f"data set not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz archive ({exc})") from exc
    for key in ("X", "y"):
        if key not in arrays:
            raise DataError(f"{path} holds no array named {key!r} (found: {sorted(arrays)})")
    train = _validated(arrays["X"], arrays["y"], f"{path}: X/y")
    test = None
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: X_test and y_test must be given together")
    if "X_test" in arrays:
        test = _validated(arrays["X_test"], arrays["y_test"], f"{path}: X_test/y_test")
        if test[0].shape[1] != train[0].shape[1]:
            raise DataError(
                f"{path}: X_test has {test[0].shape[1]} features, X has {train[0].shape[1]}"
            )
    return train[0], train[1], test


def _validated(
    features: np.ndarray, labels: np.ndarray, what: str
) -> tuple[np.ndarray, np.ndarray]:
    if features.dtype.kind not in "biuf" or labels.dtype.kind not in "biu":
        raise DataError(f"{what}: features must be numeric and labels integers")
    if features.ndim < 2 or labels.ndim != 1 or len(features) != len(labels):
        raise DataError(
            f"{what}: need X of shape (n, ...) and y of shape (n,), "
            f"got {features.shape} and {labels.shape}"
        )
    if len(labels) == 0:
        raise DataError(f"{what}: no samples")
    flat = features.reshape(len(features), -1).astype(np.float64)
    if not np.isfinite(flat).all():
        raise DataError(f"{what}: features contain NaN or Inf")
    if labels.min() < 0:
        raise DataError(f"{what}: labels must be non-negative class indices")
    return flat, labels.astype(np.int64)


def _split(
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    test: tuple[np.ndarray, np.ndarray] | None,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
) -> Dataset:
    num_classes = int(max(labels.max(), test[1].max() if test else 0)) + 1
    if num_classes < 2:
        raise DataError(f"{name}: need at least two classes")
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = 0 if test else round(test_fraction * len(labels))
    n_val = max(1, round(validation_fraction * len(labels)))
    if len(labels) - n_test - n_val < 1:
        raise DataError(f"{name}: {len(labels)} samples are too few to split")
    test_idx, val_idx, train_idx = np.split(order, [n_test, n_test + n_val])
    test_features, test_labels = test if test else (features[test_idx], labels[test_idx])
    mean = features[train_idx].mean(axis=0)
    std = features[train_idx].std(axis=0)
    std[std == 0] = 1.0

    def scale(x: np.ndarray) -> np.ndarray:
        return ((x - mean) / std).astype(np.float32)

    return Dataset(
        name=name,
        train_features=scale(features[train_idx]),
        train_labels=labels[train_idx],
        validation_features=scale(features[val_idx]),
        validation_labels=labels[val_idx],
        test_features=scale(test_features),
        test_labels=test_labels,
        num_classes=num_classes,
    )

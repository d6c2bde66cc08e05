"""Data sets: scikit-learn's bundled digits by default, or the user's own ``.npz``.

An ``.npz`` is read through :class:`~flare.data.npz.NpzArchive`, which checks what
each array declares before reading it; the values are then checked here: labels
are class indices, features finite and within float32's range.

Every data set is split the same way: a test split for reporting accuracy, a
public validation split for the MI filter, and the rest for the clients. The
validation split is held out from the clients' data.
"""

import gzip
import importlib.util
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flare.data.npz import MAX_DATASET_BYTES, ArrayHeader, NpzArchive, check_size
from flare.errors import DataError

MAX_CLASSES = 10_000
"""Labels are class indices below this: the model's output layer has one unit a class."""

MIN_TRAINING_SAMPLES = 2
"""Standardising needs a spread, so the training split must hold at least this many samples."""

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_log = logging.getLogger(__name__)


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
    max_bytes: int = MAX_DATASET_BYTES,
) -> Dataset:
    """Load ``"digits"`` or a path to an ``.npz`` holding ``X`` and ``y``.

    An ``.npz`` may also hold ``X_test`` and ``y_test``; then ``test_fraction``
    is ignored. Features are flattened per sample and standardised with the
    training split's statistics. Labels are class indices below :data:`MAX_CLASSES`;
    the arrays may take at most ``max_bytes`` as float64. Anything else is a
    :class:`DataError`, raised from the archive's headers before its arrays are read
    wherever the headers suffice.
    """
    if source == "digits":
        features, labels = _read_digits()
        test = None
        name = "digits"
    else:
        features, labels, test = _read_npz(Path(source), max_bytes)
        name = Path(source).name
    return _split(name, features, labels, test, seed, validation_fraction, test_fraction)


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits, read as its ``load_digits`` reads them.

    Importing ``sklearn.datasets`` takes seconds (it pulls in most of scikit-learn), so the
    bundled CSV is located without importing the package and parsed the same way.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the digits data set needs scikit-learn installed")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    try:
        with gzip.open(path, mode="rt", encoding="utf-8") as text:
            table = np.loadtxt(text, delimiter=",")
    except OSError as error:
        raise DataError(f"the bundled digits are not readable at {path}: {error}") from error
    return table[:, :-1], table[:, -1].astype(int, copy=False)


def read_labelled_npz(
    path: Path,
    *,
    num_features: int,
    num_classes: int,
    max_bytes: int = MAX_DATASET_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (flattened per sample, float64) and ``y`` (int64) of ``path``, as a model expects.

    Samples must have ``num_features`` values and labels lie below ``num_classes``;
    the checks of :func:`load_dataset` apply too.
    """
    with NpzArchive(path) as archive:
        _require(archive, ("X", "y"))
        pair = _declared_pair(archive, "X", "y")
        width = _width(pair[0])
        if width != num_features:
            raise DataError(f"{path}: {width} features; the task's model takes {num_features}")
        check_size(list(pair), max_bytes, str(path))
        return _read_pair(archive, pair, num_classes)


def _read_npz(
    path: Path, max_bytes: int
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    with NpzArchive(path) as archive:
        _require(archive, ("X", "y"))
        if ("X_test" in archive.names) != ("y_test" in archive.names):
            raise DataError(f"{path}: X_test and y_test must be given together")
        train = _declared_pair(archive, "X", "y")
        declared = list(train)
        test_pair = None
        if "X_test" in archive.names:
            test_pair = _declared_pair(archive, "X_test", "y_test")
            if _width(test_pair[0]) != _width(train[0]):
                raise DataError(
                    f"{path}: X_test has {_width(test_pair[0])} features, X has {_width(train[0])}"
                )
            declared.extend(test_pair)
        check_size(declared, max_bytes, str(path))
        features, labels = _read_pair(archive, train, MAX_CLASSES)
        test = _read_pair(archive, test_pair, MAX_CLASSES) if test_pair else None
    return features, labels, test


def _require(archive: NpzArchive, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key not in archive.names:
            raise DataError(
                f"{archive.path} holds no array named {key!r} (found: {sorted(archive.names)})"
            )


def _width(features: ArrayHeader) -> int:
    return math.prod(features.shape[1:])


def _declared_pair(
    archive: NpzArchive, features_key: str, labels_key: str
) -> tuple[ArrayHeader, ArrayHeader]:
    """The headers of a features/labels pair, once their shapes and dtypes make sense."""
    what = f"{archive.path}: {features_key}/{labels_key}"
    features, labels = archive.header(features_key), archive.header(labels_key)
    if features.dtype.kind not in "biuf" or labels.dtype.kind not in "biu":
        raise DataError(
            f"{what}: features must be numeric and labels integers "
            f"(got {features.dtype} and {labels.dtype})"
        )
    if len(features.shape) < 2 or len(labels.shape) != 1 or features.shape[0] != labels.shape[0]:
        raise DataError(
            f"{what}: need X of shape (n, ...) and y of shape (n,), "
            f"got {features.shape} and {labels.shape}"
        )
    if labels.shape[0] == 0:
        raise DataError(f"{what}: no samples")
    if _width(features) == 0:
        raise DataError(f"{what}: samples have no features (shape {features.shape})")
    return features, labels


def _read_pair(
    archive: NpzArchive, pair: tuple[ArrayHeader, ArrayHeader], num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    features_header, labels_header = pair
    what = f"{archive.path}: {features_header.name}/{labels_header.name}"
    labels = archive.read(labels_header.name)
    # judged in the file's own dtype: a uint64 label cast first could wrap to -1
    lowest, highest = labels.min(), labels.max()
    if lowest < 0:
        raise DataError(f"{what}: labels must be non-negative class indices, found {lowest}")
    if highest >= num_classes:
        raise DataError(
            f"{what}: label {highest} is out of range; labels must be class indices "
            f"below {num_classes}"
        )
    features = archive.read(features_header.name)
    flat = features.reshape(len(features), -1).astype(np.float64)
    del features  # free the file's copy before the checks' temporaries
    if not np.isfinite(flat).all():
        raise DataError(f"{what}: features contain NaN or Inf")
    peak = max(-float(flat.min()), float(flat.max()))
    if peak > _FLOAT32_MAX:
        raise DataError(
            f"{what}: a feature reaches magnitude {peak:.3g}, beyond float32's "
            f"{_FLOAT32_MAX:.3g}; rescale the data"
        )
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
    all_labels = np.concatenate([labels, test[1]]) if test else labels
    classes = np.unique(all_labels)
    if len(classes) < 2:
        raise DataError(f"{name}: every sample has label {classes[0]}; need at least two classes")
    num_classes = int(classes[-1]) + 1
    n_test = 0 if test else round(test_fraction * len(labels))
    n_val = max(1, round(validation_fraction * len(labels)))
    n_train = len(labels) - n_test - n_val
    if n_train < MIN_TRAINING_SAMPLES or (n_test < 1 and not test):
        raise DataError(
            f"{name}: {len(labels)} samples are too few to split into training "
            f"({n_train}, need {MIN_TRAINING_SAMPLES}), validation ({n_val}) and test "
            f"({len(test[1]) if test else n_test}, need 1) sets"
        )
    order = np.random.default_rng(seed).permutation(len(labels))
    test_idx, val_idx, train_idx = np.split(order, [n_test, n_test + n_val])
    test_features, test_labels = test if test else (features[test_idx], labels[test_idx])
    unseen = np.setdiff1d(all_labels, labels[train_idx])
    if len(unseen):
        _log.warning(
            "%s: class(es) %s have no training samples; the model cannot learn them",
            name,
            ", ".join(str(c) for c in unseen),
        )
    mean = features[train_idx].mean(axis=0)
    std = features[train_idx].std(axis=0)
    std[std == 0] = 1.0

    def scale(x: np.ndarray, part: str) -> np.ndarray:
        scaled = (x - mean) / std
        # a feature with a tiny training spread can scale far values past float32
        if max(-float(scaled.min()), float(scaled.max())) > _FLOAT32_MAX:
            raise DataError(
                f"{name}: standardised by the training split's spread, some {part} features "
                "exceed float32's range; rescale the data"
            )
        return scaled.astype(np.float32)

    return Dataset(
        name=name,
        train_features=scale(features[train_idx], "training"),
        train_labels=labels[train_idx],
        validation_features=scale(features[val_idx], "validation"),
        validation_labels=labels[val_idx],
        test_features=scale(test_features, "test"),
        test_labels=test_labels,
        num_classes=num_classes,
    )

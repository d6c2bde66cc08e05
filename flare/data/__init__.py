"""Data sets and partitioners."""

from flare.data.datasets import MAX_CLASSES, Dataset, load_dataset, read_labelled_npz
from flare.data.npz import MAX_DATASET_BYTES
from flare.data.partition import PARTITIONS, partition

__all__ = [
    "MAX_CLASSES",
    "MAX_DATASET_BYTES",
    "PARTITIONS",
    "Dataset",
    "load_dataset",
    "partition",
    "read_labelled_npz",
]

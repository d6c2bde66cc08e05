"""Data sets and partitioners."""

from flare.data.datasets import Dataset, load_dataset
from flare.data.partition import PARTITIONS, partition

__all__ = ["PARTITIONS", "Dataset", "load_dataset", "partition"]

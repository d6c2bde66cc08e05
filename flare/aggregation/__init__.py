"""Aggregation strategies: FedAvg, the MI filter, Krum, Multi-Krum, median, trimmed mean."""

from flare.aggregation.base import (
    AggregationContext,
    AggregationError,
    AggregationResult,
    Aggregator,
    ClientUpdate,
    Predictor,
)
from flare.aggregation.coordinatewise import CoordinateMedian, TrimmedMean
from flare.aggregation.fedavg import FedAvg
from flare.aggregation.krum import Krum, MultiKrum
from flare.aggregation.mi_filter import MIFilter
from flare.aggregation.registry import AGGREGATORS, make_aggregator

__all__ = [
    "AGGREGATORS",
    "AggregationContext",
    "AggregationError",
    "AggregationResult",
    "Aggregator",
    "ClientUpdate",
    "CoordinateMedian",
    "FedAvg",
    "Krum",
    "MIFilter",
    "MultiKrum",
    "Predictor",
    "TrimmedMean",
    "make_aggregator",
]

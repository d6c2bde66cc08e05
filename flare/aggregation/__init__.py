"""Aggregation strategies: FedAvg, the MI filter, Krum, Multi-Krum, median, trimmed mean,
FLTrust, centered clipping, geometric median, and bucketing around any of them."""

from flare.aggregation.base import (
    AggregationContext,
    AggregationError,
    AggregationResult,
    Aggregator,
    ClientUpdate,
    Predictor,
    Trainer,
)
from flare.aggregation.bucketing import Bucketing
from flare.aggregation.centered_clipping import CenteredClipping
from flare.aggregation.coordinatewise import CoordinateMedian, TrimmedMean
from flare.aggregation.fedavg import FedAvg
from flare.aggregation.fltrust import FLTrust
from flare.aggregation.geometric_median import GeometricMedian
from flare.aggregation.krum import Krum, MultiKrum
from flare.aggregation.mi_filter import MIFilter
from flare.aggregation.registry import AGGREGATORS, make_aggregator

__all__ = [
    "AGGREGATORS",
    "AggregationContext",
    "AggregationError",
    "AggregationResult",
    "Aggregator",
    "Bucketing",
    "CenteredClipping",
    "ClientUpdate",
    "CoordinateMedian",
    "FLTrust",
    "FedAvg",
    "GeometricMedian",
    "Krum",
    "MIFilter",
    "MultiKrum",
    "Predictor",
    "Trainer",
    "TrimmedMean",
    "make_aggregator",
]

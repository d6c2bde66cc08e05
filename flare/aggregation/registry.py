"""Aggregators by name, as a task's configuration refers to them."""

import inspect

from flare.aggregation.base import Aggregator
from flare.aggregation.bucketing import Bucketing
from flare.aggregation.centered_clipping import CenteredClipping
from flare.aggregation.coordinatewise import CoordinateMedian, TrimmedMean
from flare.aggregation.fedavg import FedAvg
from flare.aggregation.fltrust import FLTrust
from flare.aggregation.geometric_median import GeometricMedian
from flare.aggregation.krum import Krum, MultiKrum
from flare.aggregation.mi_filter import MIFilter
from flare.errors import ConfigError

AGGREGATORS: dict[str, type[Aggregator]] = {
    cls.name: cls
    for cls in (
        FedAvg,
        MIFilter,
        Krum,
        MultiKrum,
        CoordinateMedian,
        TrimmedMean,
        FLTrust,
        CenteredClipping,
        GeometricMedian,
        Bucketing,
    )
}
"""Every aggregation strategy, keyed by the name a task configuration uses."""


def make_aggregator(name: str, **params: object) -> Aggregator:
    """Build the aggregator called ``name`` with constructor ``params``.

    Raises :class:`~flare.errors.ConfigError` for an unknown name, an unknown
    parameter, or a value the strategy rejects.
    """
    try:
        cls = AGGREGATORS[name]
    except KeyError:
        known = ", ".join(sorted(AGGREGATORS))
        raise ConfigError(f"unknown aggregator {name!r}; choose one of {known}") from None
    named_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = {
        parameter.name
        for parameter in inspect.signature(cls.__init__).parameters.values()
        if parameter.kind in named_kinds and parameter.name != "self"
    }
    unknown = sorted(set(params) - accepted)
    if unknown:
        allowed = ", ".join(sorted(accepted)) or "none"
        raise ConfigError(
            f"aggregator {name!r} has no parameter(s) {', '.join(unknown)}; allowed: {allowed}"
        )
    try:
        return cls(**params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:  # e.g. a string where a number belongs
        raise ConfigError(f"aggregator {name!r}: {error}") from error

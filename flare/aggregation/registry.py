"""Aggregators by name, as a task's configuration refers to them."""

import inspect
import types
import typing

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
    cls = _rule_class(name)
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


def _rule_class(name: str) -> type[Aggregator]:
    try:
        return AGGREGATORS[name]
    except KeyError:
        known = ", ".join(sorted(AGGREGATORS))
        raise ConfigError(f"unknown aggregator {name!r}; choose one of {known}") from None


Setting = bool | int | float | str | None
"""A rule's constructor setting as a command line spells it."""


def parse_setting(rule: str, name: str, text: str) -> Setting:
    """``text`` as the type ``rule``'s constructor declares for ``name``.

    Raises :class:`ConfigError` for an unknown rule, a setting the rule does not have or a
    value that is not of its type (``true``/``false`` for a flag, ``none`` where ``None`` is
    allowed).
    """
    hints = typing.get_type_hints(_rule_class(rule).__init__)
    hints.pop("return", None)
    if name not in hints:
        allowed = ", ".join(sorted(hints)) or "none"
        raise ConfigError(f"rule {rule!r} has no setting {name!r}; allowed: {allowed}")
    declared = hints[name]
    kinds = typing.get_args(declared) if isinstance(declared, types.UnionType) else (declared,)
    if text.lower() == "none" and type(None) in kinds:
        return None
    for kind in kinds:
        if kind is bool and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind in (int, float, str):
            try:
                return kind(text)
            except ValueError:
                continue
    raise ConfigError(f"{rule} setting {name}={text!r} is not a {declared}")


def parse_settings(rule: str, assignments: list[str]) -> dict[str, Setting]:
    """``NAME=VALUE`` assignments as ``rule``'s constructor settings, the rule built once
    with them so that a value it rejects fails here. Raises :class:`ConfigError` for an
    assignment without ``=``, a name given twice, or what :func:`parse_setting` and the rule
    refuse."""
    settings: dict[str, Setting] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals:
            raise ConfigError(f"{assignment!r} is not NAME=VALUE")
        if name in settings:
            raise ConfigError(f"setting {name!r} given twice")
        settings[name] = parse_setting(rule, name, value)
    make_aggregator(rule, **settings)
    return settings

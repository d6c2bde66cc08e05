"""The rows of ``bench_robustness.py``: registry rules, and variants of them with settings
other than their defaults, parsed and checked before any run starts."""

import argparse
from dataclasses import dataclass
from typing import Any

from flare.aggregation import AGGREGATORS
from flare.aggregation.registry import Setting, parse_settings
from flare.errors import ConfigError


@dataclass(frozen=True)
class Row:
    """One row of the tables: a registry rule under a label, with the settings that differ
    from the rule's defaults (none for a plain rule, whose label is its name)."""

    label: str
    rule: str
    settings: tuple[tuple[str, Setting], ...] = ()

    def describe(self) -> dict[str, Any]:
        """What the JSON records for the label."""
        return {"rule": self.rule, "settings": dict(self.settings)}


def parse_variant(text: str) -> Row:
    """``LABEL=RULE:NAME=VALUE[,NAME=VALUE...]`` as a row; the rule is built once here so
    that a value it rejects fails before any run starts."""
    label, _, definition = text.partition("=")
    rule, _, assignments = definition.partition(":")
    if not label or any(character in label for character in " =:,") or not assignments:
        raise argparse.ArgumentTypeError(
            f"variant {text!r}: expected LABEL=RULE:NAME=VALUE[,NAME=VALUE...]"
        )
    if label in AGGREGATORS:
        raise argparse.ArgumentTypeError(f"variant label {label!r} is a rule's own name")
    if rule not in AGGREGATORS:
        known = ", ".join(AGGREGATORS)
        raise argparse.ArgumentTypeError(f"variant {label!r}: unknown rule {rule!r} ({known})")
    try:
        settings = parse_settings(rule, assignments.split(","))
    except ConfigError as error:
        raise argparse.ArgumentTypeError(f"variant {label!r}: {error}") from None
    return Row(label, rule, tuple(sorted(settings.items())))


def rows_of(aggregators: list[str], variants: list[Row]) -> list[Row]:
    """The rows named by ``--aggregators``: registry rules, and labels that ``--variant``
    declared. Raises :class:`ConfigError` for a name that is neither, a label declared
    twice, or a declared variant left out of ``--aggregators`` (a misspelt row)."""
    declared = {variant.label: variant for variant in variants}
    if len(declared) < len(variants):
        raise ConfigError("a variant label is declared twice")
    rows = []
    for name in aggregators:
        if name in AGGREGATORS:
            rows.append(Row(name, name))
        elif name in declared:
            rows.append(declared[name])
        else:
            raise ConfigError(
                f"--aggregators {name!r} is neither a rule ({', '.join(AGGREGATORS)}) "
                "nor a label declared by --variant"
            )
    unused = sorted(set(declared) - set(aggregators))
    if unused:
        raise ConfigError(f"variant(s) {', '.join(unused)} declared but not in --aggregators")
    return rows


def variants_of(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Label → rule and settings, for the rows that are variants."""
    return {row.label: row.describe() for row in rows if row.settings}


def check_same_variants(known: dict[str, Any], variants: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` if a label of ``variants`` stands for other settings in
    ``known`` (a previous run's): one row would then mix runs of two rules."""
    for label, definition in variants.items():
        if label in known and known[label] != definition:
            raise ConfigError(
                f"variant {label!r} is {definition} here but {known[label]} in the merged JSON"
            )

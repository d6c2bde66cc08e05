"""Options more than one command takes, declared once: a task's on-chain parameters and a
device's client-level differential privacy.

Their defaults come from :mod:`flare.federation.task_parameters`, which imports nothing
heavy, so every ``--help`` shows them without loading the chain layer, numpy or torch.
"""

import argparse
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from flare.errors import ConfigError
from flare.federation.safety import (
    DEFAULT_ADVERSARY_SHARE,
    DEFAULT_MAX_CAPTURE_PROBABILITY,
    CommitteeRisk,
    check_capture_bound,
)
from flare.federation.task_parameters import DEFAULT_TASK_PARAMETERS, OPTION_NAMES, TaskParameters

TASK_PARAMETER_HELP = {
    "min_clients": "registrations to start the task, submissions to propose",
    "expected_committee": "expected committee size k",
    "min_committee": "seats needed to decide",
    "quorum_bps": "approvals, basis points",
    "submission_window": "blocks",
    "vote_window": "blocks",
    "max_rounds": "rounds to train",
}
"""What each task parameter's option sets, for its help text (which adds the default)."""


def add_task_parameter_options(
    group: argparse._ActionsContainer, names: tuple[str, ...], *, apply_defaults: bool
) -> None:
    """Options for the :class:`TaskParameters` fields ``names``, their defaults in the help.

    With ``apply_defaults`` a left-out option takes the default while parsing; without, it
    parses as ``None`` (the command can tell it was left out) and the default applies when
    the command builds the parameters (:func:`task_parameters_from_args`).
    """
    for name in names:
        default = getattr(DEFAULT_TASK_PARAMETERS, name)
        group.add_argument(
            OPTION_NAMES[name],
            dest=name,
            metavar=OPTION_NAMES[name].removeprefix("--").replace("-", "_").upper(),
            type=int,
            default=default if apply_defaults else None,
            help=f"{TASK_PARAMETER_HELP[name]} (default {default})",
        )


def task_parameters_from_args(args: argparse.Namespace, **values: Any) -> TaskParameters:
    """The parameters the parsed options (and ``values``) give, defaults for the rest;
    refused with the option's name if the contract would refuse them."""
    given = {
        name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name, None) is not None
    }
    return TaskParameters(**{**given, **values})


def add_committee_bound_options(
    group: argparse._ActionsContainer, *, adversary_share: bool, apply_defaults: bool
) -> None:
    """The safety bound a command checks before it creates a task (docs/protocol.md §11): with
    ``adversary_share``, the share of participants assumed hostile (a simulation knows its own
    attackers). Without ``apply_defaults`` left-out options parse as ``None``, as for
    :func:`add_task_parameter_options`."""
    if adversary_share:
        group.add_argument(
            "--adversary-share",
            type=float,
            default=DEFAULT_ADVERSARY_SHARE if apply_defaults else None,
            help="share of participants (admitted keys or stake) the bound assumes hostile "
            f"(default {DEFAULT_ADVERSARY_SHARE})",
        )
    group.add_argument(
        "--max-capture-probability",
        type=float,
        default=DEFAULT_MAX_CAPTURE_PROBABILITY if apply_defaults else None,
        help="most probability per attempt that the adversary alone reaches quorum "
        f"(default {DEFAULT_MAX_CAPTURE_PROBABILITY:g})",
    )
    group.add_argument(
        "--force",
        action="store_true",
        default=False if apply_defaults else None,
        help="go ahead even if the capture probability exceeds the bound",
    )


def check_committee_bound(args: argparse.Namespace, risk: CommitteeRisk, adversary: str) -> str:
    """The line that states ``risk``, refused in one line if its capture probability exceeds
    ``--max-capture-probability`` and ``--force`` was not given."""
    bound = args.max_capture_probability
    if not args.force:
        check_capture_bound(
            risk, DEFAULT_MAX_CAPTURE_PROBABILITY if bound is None else bound, adversary
        )
    return risk.describe(adversary)


def add_aggregator_setting_option(parser: argparse._ActionsContainer) -> None:
    """``--aggregator-param NAME=VALUE``, repeatable: a setting of the aggregation rule other
    than its default, checked against the rule once the command knows it
    (:func:`aggregator_settings_from_args`)."""
    parser.add_argument(
        "--aggregator-param",
        dest="aggregator_settings",
        action="append",
        metavar="NAME=VALUE",
        help="a setting of the aggregation rule, repeatable, e.g. coordinate_clip_factor=2 "
        "for mi (docs/mi-filter.md, docs/aggregation.md)",
    )


def aggregator_settings_from_args(args: argparse.Namespace, rule: str) -> dict[str, Any]:
    """The settings ``--aggregator-param`` gives for ``rule``, each parsed as the type the
    rule declares; refused in one line for a setting the rule lacks or a value it rejects."""
    from flare.aggregation.registry import parse_settings

    try:
        return parse_settings(rule, args.aggregator_settings or [])
    except ConfigError as error:
        raise ConfigError(f"--aggregator-param: {error}") from None


WEI_UNITS = {"gwei": 10**9, "ether": 10**18, "wei": 1}
"""The units a stake may be written in (``wei`` last: ``gwei`` ends with it); a bare number
is wei."""


def wei_amount(text: str) -> int:
    """An argparse type for a stake: wei (``100000``) or a decimal with a unit (``0.5ether``,
    ``20gwei``), refused unless it is a positive whole number of wei."""
    number, scale = text.strip().lower(), 1
    for unit, factor in WEI_UNITS.items():
        if number.endswith(unit):
            number, scale = number.removesuffix(unit).strip(), factor
            break
    try:
        wei = Decimal(number) * scale
    except InvalidOperation:
        wei = Decimal("NaN")
    if not wei.is_finite():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an amount: give wei, or a number with gwei or ether"
        )
    if wei <= 0 or wei != wei.to_integral_value():
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of wei")
    return int(wei)


def format_wei(amount: int) -> str:
    """``amount`` wei as people read it: in ether, with the exact wei beside it."""
    ether = Decimal(amount) / WEI_UNITS["ether"]
    return f"{ether.normalize():f} ether ({amount} wei)"


def read_admission_list(path: Path) -> tuple[str, ...]:
    """The addresses an admission list file admits, refused in one line if malformed."""
    from flare.cli import check_input_file

    check_input_file(path, "--admit")
    from flare.chain.api.admission import parse_admission_list

    return parse_admission_list(path.read_text(), f"--admit {path}")


def add_client_dp_options(
    parser: argparse.ArgumentParser, description: str, *, calibration: bool
) -> None:
    """A device's client-level DP: the clip and the noise multiplier; with ``calibration``,
    the alternative of a target ε and the δ at which ε is counted."""
    group = parser.add_argument_group("client-level differential privacy", description)
    group.add_argument("--dp-clip", type=float, help="L2 bound on each client's update")
    group.add_argument(
        "--dp-noise-multiplier", type=float, help="noise std per coordinate, in units of the clip"
    )
    if calibration:
        group.add_argument(
            "--dp-epsilon",
            type=float,
            help="target ε after all rounds, instead of --dp-noise-multiplier: "
            "calibrates the noise",
        )
        group.add_argument("--dp-delta", type=float, help="δ at which ε is reported")

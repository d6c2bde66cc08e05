"""``flare simulate``: run federated training offline and report on it.

Every option is checked before any work starts, so a typo never costs a run; a run that
something stops part-way (its chain node gone, Ctrl-C) still writes the report and plots
of the rounds it finished.
"""

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from flare.cli import (
    add_threads_option,
    apply_threads,
    check_input_file,
    check_output_directory,
    check_output_file,
    defer_defaults,
)
from flare.cli.help_values import (
    AGGREGATOR_NAMES,
    ATTACK_NAMES,
    BACKEND_NAMES,
    CODEC_NAMES,
    MODEL_NAMES,
    PARTITION_NAMES,
)
from flare.cli.options import (
    add_aggregator_setting_option,
    add_client_dp_options,
    add_committee_bound_options,
    add_task_parameter_options,
    aggregator_settings_from_args,
    check_committee_bound,
    task_parameters_from_args,
)
from flare.errors import ConfigError
from flare.federation.task_parameters import OPTION_NAMES

if TYPE_CHECKING:
    from flare.cli.display import RoundTable
    from flare.federation.config import SimulationConfig
    from flare.federation.protocol.driver import ProtocolSimulation
    from flare.federation.protocol.settings import ProtocolConfig
    from flare.federation.report import SimulationReport
    from flare.federation.simulation import Simulation

SIMULATED_TASK_PARAMETERS = ("expected_committee", "min_committee", "quorum_bps", "min_clients")
"""The task parameters a simulation takes as options; it sets rounds and windows itself."""
PROTOCOL_OPTIONS = {
    **{name: OPTION_NAMES[name] for name in SIMULATED_TASK_PARAMETERS},
    "dishonest_committee": "--dishonest-committee",
    "max_capture_probability": "--max-capture-probability",
    "force": "--force",
    "chain": "--chain",
    "deployment": "--deployment",
    "state": "--state",
    "store": "--store",
}
"""Options that configure the protocol run, by argparse destination: --offline has none."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except an unset one (``None``): its help says what
    leaving it out means."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "simulate",
        help="run a federated training simulation",
        description="Run federated training with simulated clients and write a report.",
        formatter_class=_HelpFormatter,
    )
    # SimulationConfig's defaults, read only when this command is used: no other command's
    # help needs them.
    defer_defaults(p, _defaults)
    p.add_argument("--dataset", help="'digits' or a .npz with X, y")
    p.add_argument(
        "--model",
        help=f"a built-in name ({', '.join(MODEL_NAMES)}), package.module:function or "
        "path/to/file.py:function (docs/models.md)",
    )
    p.add_argument("--clients", type=int)
    p.add_argument("--rounds", type=int)
    p.add_argument("--partition", choices=PARTITION_NAMES)
    p.add_argument("--alpha", type=float, help="Dirichlet concentration")
    p.add_argument("--malicious", type=int, help="how many attackers")
    p.add_argument("--attack", choices=ATTACK_NAMES)
    p.add_argument(
        "--attack-strength",
        type=float,
        default=None,
        help="noise sigma / random scale / sign-flip scale / scaling factor / alie z / "
        "ipm epsilon / backdoor boost (attack's default)",
    )
    p.add_argument(
        "--attack-knowledge",
        choices=("full", "partial"),
        help="what colluding attackers (alie, ipm, min-max, min-sum, adaptive-mi) forge from: "
        "every honest update of the round, or only their own",
    )
    p.add_argument(
        "--attack-count-factor",
        type=float,
        metavar="FACTOR",
        help="every attacker claims FACTOR times its true sample count",
    )
    p.add_argument("--aggregator", choices=AGGREGATOR_NAMES)
    add_aggregator_setting_option(p)
    p.add_argument("--codec", choices=CODEC_NAMES)
    p.add_argument("--rank", type=int, help="PowerSGD rank")
    p.add_argument("--dropout", type=float, help="P(client skips round)")
    p.add_argument("--seed", type=int)
    p.add_argument("--local-epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    add_client_dp_options(
        p,
        "each device clips its update and adds Gaussian noise before encoding "
        "(docs/privacy.md); off unless --dp-clip is given",
        calibration=True,
    )
    protocol = p.add_argument_group(
        "protocol", "every round through the in-memory chain and a content-addressed store"
    )
    protocol.add_argument(
        "--offline", action="store_true", help="skip the protocol: plain in-process rounds"
    )
    # Left out, they parse as None, so that --offline can tell they were given.
    add_task_parameter_options(protocol, SIMULATED_TASK_PARAMETERS, apply_defaults=False)
    add_committee_bound_options(protocol, adversary_share=False, apply_defaults=False)
    protocol.add_argument(
        "--dishonest-committee",
        action="store_true",
        help="attackers who win seats propose the plain average of everything and back it",
    )
    protocol.add_argument(
        "--chain",
        metavar="URL",
        help="run on this development node (Anvil): every call a signed transaction "
        "(default: the embedded chain)",
    )
    protocol.add_argument(
        "--deployment", type=Path, help="with --chain: the coordinator to use (default: deploy)"
    )
    protocol.add_argument(
        "--state", type=Path, help="keep the chain in this new SQLite file (default: in memory)"
    )
    protocol.add_argument(
        "--store", type=Path, help="keep blobs in this directory (default: in memory)"
    )
    cluster = p.add_argument_group(
        "backend", "where clients train and encode; every backend gives the same report"
    )
    cluster.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        help="'local': in this process; 'ray': Ray actors, each holding a shard of the "
        "clients (docs/ray.md; needs pip install 'flare[ray]')",
    )
    cluster.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="with --backend ray: join this cluster (default: start a Ray on this machine)",
    )
    cluster.add_argument(
        "--workers",
        type=int,
        help="with --backend ray: Ray actors holding the clients (default: one per CPU)",
    )
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write PNG plots into this directory")
    p.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write one self-contained HTML page of the run: plots, round table, committees",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or round table")
    add_threads_option(p)
    p.set_defaults(handler=run)


def _defaults() -> dict[str, object]:
    from flare.federation.config import SimulationConfig

    config = SimulationConfig()
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}


def config_from_args(args: argparse.Namespace) -> "SimulationConfig":
    """The :class:`SimulationConfig` the parsed options describe."""
    from flare.federation.config import SimulationConfig

    names = {f.name for f in dataclasses.fields(SimulationConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    if args.aggregator_settings:
        rule = values.get("aggregator") or SimulationConfig().aggregator
        values["aggregator_params"] = aggregator_settings_from_args(args, rule)
    return SimulationConfig(**values)


def protocol_from_args(args: argparse.Namespace) -> "ProtocolConfig | None":
    """The protocol the options describe, or ``None`` with ``--offline`` (which takes none)."""
    from flare.federation.protocol.settings import ProtocolConfig

    given = [
        option
        for dest, option in PROTOCOL_OPTIONS.items()
        if getattr(args, dest) is not None and getattr(args, dest) is not False
    ]
    if args.offline:
        if given:
            raise ConfigError(
                f"--offline skips the protocol run; {', '.join(given)} would do nothing"
            )
        return None
    if args.chain is not None and args.state is not None:
        raise ConfigError("--state keeps the embedded chain; with --chain the node keeps it")
    if args.deployment is not None and args.chain is None:
        raise ConfigError("--deployment names a coordinator on a node: give --chain too")
    return ProtocolConfig(
        task=task_parameters_from_args(args),
        dishonest_committee=args.dishonest_committee,
        state=args.state,
        store=args.store,
        chain_url=args.chain,
        deployment=args.deployment,
    )


def check_paths(args: argparse.Namespace) -> None:
    """Refuse every path the run would fail to read or write, before the run."""
    if args.report is not None:
        check_output_file(args.report, "--report")
    if args.plot is not None:
        check_output_directory(args.plot, "--plot")
    if args.html is not None:
        check_output_file(args.html, "--html")
    if args.store is not None:
        check_output_directory(args.store, "--store")
    if args.state is not None:
        check_output_file(args.state, "--state")
        if args.state.exists():
            raise ConfigError(f"--state {args.state} exists; name a new file for a new run")
    if args.deployment is not None:
        check_input_file(args.deployment, "--deployment")


def run(args: argparse.Namespace) -> int:
    from flare.cli.display import RoundTable
    from flare.federation.report import RunInterrupted

    config = config_from_args(args)
    protocol = protocol_from_args(args)
    simulation = _simulation(config, protocol)
    bound = None if protocol is None else _committee_bound(args, config, protocol)
    check_paths(args)
    apply_threads(args.threads)
    observer = RoundTable(enabled=not args.quiet)
    if bound is not None:
        observer.note(bound)
    try:
        with observer:
            report = simulation.run(observer)
    except RunInterrupted as exc:
        observer.summary(exc.report)
        write_outputs(exc.report, args, observer)
        if isinstance(exc.__cause__, KeyboardInterrupt):
            raise KeyboardInterrupt from exc  # the CLI's usual exit for Ctrl-C
        raise
    observer.summary(report)
    write_outputs(report, args, observer)
    return 0


def _simulation(
    config: "SimulationConfig", protocol: "ProtocolConfig | None"
) -> "Simulation | ProtocolSimulation":
    """The run the options describe; building it checks that the options fit together."""
    from flare.federation.simulation import Simulation

    if protocol is None:
        return Simulation(config)
    from flare.federation.protocol.driver import ProtocolSimulation

    return ProtocolSimulation(config, protocol)


def _committee_bound(
    args: argparse.Namespace, config: "SimulationConfig", protocol: "ProtocolConfig"
) -> str:
    """The run's committee risk against its own attackers, refused above the bound."""
    from flare.federation.safety import committee_risk

    risk = committee_risk(protocol.task_parameters(config), config.clients, config.malicious)
    return check_committee_bound(args, risk, f"its {config.malicious} attackers")


def write_outputs(
    report: "SimulationReport", args: argparse.Namespace, observer: "RoundTable"
) -> None:
    """The JSON report, the plots and the HTML page the options ask for."""
    if args.report is not None:
        report.write_json(args.report)
        observer.note(f"report written to {args.report}")
    if args.plot is not None:
        from flare.cli.plots import write_plots

        for path in write_plots(report, args.plot):
            observer.note(f"plot written to {path}")
    if args.html is not None:
        from flare.cli.html_report import write_html_report

        observer.note(f"HTML report written to {write_html_report(report, args.html)}")

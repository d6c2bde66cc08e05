"""``flare simulate``: run federated training offline and report on it."""

import argparse
import dataclasses
from pathlib import Path

from flare.cli import add_threads_option, apply_threads
from flare.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    # Choices come from the registries, so the help lists exactly what exists.
    from flare.aggregation import AGGREGATORS
    from flare.compression import CODECS
    from flare.data import PARTITIONS
    from flare.federation.clients import ATTACKS
    from flare.models import MODELS

    defaults = _defaults()
    p = commands.add_parser(
        "simulate",
        help="run a federated training simulation",
        description="Run federated training with simulated clients and write a report.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default=defaults.dataset, help="'digits' or a .npz with X, y")
    p.add_argument("--model", default=defaults.model, choices=sorted(MODELS))
    p.add_argument("--clients", type=int, default=defaults.clients)
    p.add_argument("--rounds", type=int, default=defaults.rounds)
    p.add_argument("--partition", default=defaults.partition, choices=PARTITIONS)
    p.add_argument("--alpha", type=float, default=defaults.alpha, help="Dirichlet concentration")
    p.add_argument("--malicious", type=int, default=defaults.malicious, help="how many attackers")
    p.add_argument("--attack", default=defaults.attack, choices=sorted(ATTACKS))
    p.add_argument(
        "--attack-strength",
        type=float,
        default=None,
        help="noise sigma / random scale / sign-flip scale / scaling factor (attack's default)",
    )
    p.add_argument("--aggregator", default=defaults.aggregator, choices=sorted(AGGREGATORS))
    p.add_argument("--codec", default=defaults.codec, choices=sorted(CODECS))
    p.add_argument("--rank", type=int, default=defaults.rank, help="PowerSGD rank")
    p.add_argument("--dropout", type=float, default=defaults.dropout, help="P(client skips round)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--local-epochs", type=int, default=defaults.local_epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    privacy = p.add_argument_group(
        "client-level differential privacy",
        "each device clips its update and adds Gaussian noise before encoding "
        "(docs/privacy.md); off unless --dp-clip is given",
    )
    privacy.add_argument("--dp-clip", type=float, help="L2 bound on each client's update")
    privacy.add_argument(
        "--dp-noise-multiplier", type=float, help="noise std per coordinate, in units of the clip"
    )
    privacy.add_argument(
        "--dp-epsilon",
        type=float,
        help="target ε after all rounds, instead of --dp-noise-multiplier: calibrates the noise",
    )
    privacy.add_argument(
        "--dp-delta", type=float, default=defaults.dp_delta, help="δ at which ε is reported"
    )
    protocol = p.add_argument_group(
        "protocol", "every round through the in-memory chain and a content-addressed store"
    )
    protocol.add_argument(
        "--offline", action="store_true", help="skip the protocol: plain in-process rounds"
    )
    protocol.add_argument("--committee", type=int, default=5, help="expected committee size k")
    protocol.add_argument("--min-committee", type=int, default=3, help="seats needed to decide")
    protocol.add_argument("--quorum", type=int, default=6667, help="approvals, basis points")
    protocol.add_argument("--min-clients", type=int, default=1, help="submissions to propose")
    protocol.add_argument(
        "--dishonest-committee",
        action="store_true",
        help="attackers who win seats propose the plain average of everything and back it",
    )
    protocol.add_argument(
        "--chain",
        metavar="URL",
        help="run on this development node (Anvil): every call a signed transaction",
    )
    protocol.add_argument(
        "--deployment", type=Path, help="with --chain: the coordinator to use (default: deploy)"
    )
    protocol.add_argument("--state", type=Path, help="keep the chain in this SQLite file")
    protocol.add_argument("--store", type=Path, help="keep blobs in this directory")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write PNG plots into this directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar or round table")
    add_threads_option(p)
    p.set_defaults(handler=run)


def _defaults():
    from flare.federation.config import SimulationConfig

    return SimulationConfig()


def config_from_args(args: argparse.Namespace):
    """The :class:`SimulationConfig` the parsed options describe."""
    from flare.federation.config import SimulationConfig

    names = {f.name for f in dataclasses.fields(SimulationConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    return SimulationConfig(**values)


def run(args: argparse.Namespace) -> int:
    apply_threads(args.threads)
    from flare.cli.display import RoundTable
    from flare.federation.simulation import Simulation

    config = config_from_args(args)
    if args.plot is not None and args.plot.exists() and not args.plot.is_dir():
        raise ConfigError(f"--plot must name a directory; {args.plot} is a file")
    observer = RoundTable(enabled=not args.quiet)
    if args.offline:
        simulation = Simulation(config)
    else:
        from flare.federation.protocol.driver import ProtocolConfig, ProtocolSimulation

        if args.chain is not None and args.state is not None:
            raise ConfigError("--state keeps the embedded chain; with --chain the node keeps it")
        if args.state is not None and args.state.exists():
            raise ConfigError(f"--state {args.state} exists; name a new file for a new run")
        simulation = ProtocolSimulation(
            config,
            ProtocolConfig(
                expected_committee=args.committee,
                min_committee=args.min_committee,
                quorum_bps=args.quorum,
                min_clients=args.min_clients,
                dishonest_committee=args.dishonest_committee,
                state=args.state,
                store=args.store,
                chain_url=args.chain,
                deployment=args.deployment,
            ),
        )
    with observer:
        report = simulation.run(observer)
    observer.summary(report)
    if args.report is not None:
        report.write_json(args.report)
        observer.note(f"report written to {args.report}")
    if args.plot is not None:
        from flare.cli.plots import write_plots

        for path in write_plots(report, args.plot):
            observer.note(f"plot written to {path}")
    return 0

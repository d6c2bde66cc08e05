"""``flare task create|start|status|split-data``: a task as its creator and observers see it.

Every command reaches the chain and the blob store through the network configuration
(:mod:`flare.config`): ``--config`` names the file, and the options below override it.
"""

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from flare.cli import (
    add_threads_option,
    apply_threads,
    check_input_file,
    check_output_directory,
    integer_at_least,
    positive_finite_float,
)
from flare.cli.help_values import MODEL_NAMES, PARTITION_NAMES
from flare.cli.network import add_network_options, load_keys, network_config
from flare.cli.options import (
    add_aggregator_setting_option,
    add_committee_bound_options,
    add_task_parameter_options,
    aggregator_settings_from_args,
    check_committee_bound,
    format_wei,
    read_admission_list,
    task_parameters_from_args,
    wei_amount,
)
from flare.federation.task_parameters import OPTION_NAMES

if TYPE_CHECKING:
    from flare.chain import ChainConnector, SenderAccount
    from flare.config import NetworkConfig
    from flare.federation.task_parameters import TaskParameters
    from flare.storage import StorageProvider


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "task",
        help="create, start and inspect a task on the chain; split data among clients",
        description="A task is one federated training job on the coordination contract.",
    )
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))

    create = actions.add_parser("create", help="upload the initial model and create a task")
    create.add_argument(
        "--model",
        default="mlp",
        help=f"{', '.join(MODEL_NAMES)}, or your own: package.module:function or "
        "path/to/file.py:function (docs/models.md)",
    )
    create.add_argument("--dataset", default="digits", help="digits, or an .npz with X and y")
    create.add_argument("--aggregator", default="mi", help="mi, fedavg, krum, median, …")
    add_aggregator_setting_option(create)
    add_task_parameter_options(create, tuple(OPTION_NAMES), apply_defaults=True)
    bound = create.add_argument_group(
        "safety bound",
        "refuse a committee that an adversary with this share captures too often "
        "(docs/protocol.md §11)",
    )
    add_committee_bound_options(bound, adversary_share=True, apply_defaults=True)
    enrollment = create.add_argument_group(
        "who may register",
        "default: anyone, one seat weight per key (docs/protocol.md §2.5, §2.6)",
    ).add_mutually_exclusive_group()
    enrollment.add_argument(
        "--admit",
        type=Path,
        metavar="FILE",
        help="a permissioned task: only these addresses (one a line) may register; the "
        "creator can change the list later",
    )
    enrollment.add_argument(
        "--min-stake",
        type=wei_amount,
        metavar="AMOUNT",
        help="a staked task: anyone who bonds at least AMOUNT (wei, or e.g. 0.5ether) may "
        "register, and seats are drawn in proportion to stake",
    )
    create.add_argument("--seed", type=int, default=0, help="data split and initial weights")
    privacy = create.add_argument_group(
        "client-level differential privacy",
        "require DP of every participant; the manifest states it for anyone auditing the task "
        "(docs/privacy.md)",
    )
    privacy.add_argument(
        "--dp-max-epsilon", type=float, help="most ε a participant may spend over all rounds"
    )
    privacy.add_argument("--dp-delta", type=float, default=1e-5, help="δ at which ε is counted")
    privacy.add_argument("--dp-clip", type=float, help="L2 clip every participant applies")
    add_network_options(create, keys=True)
    add_threads_option(create)
    create.set_defaults(handler=run_create)

    start = actions.add_parser("start", help="open round 1 (the creator, once enough registered)")
    start.add_argument("--task", type=integer_at_least(1), required=True)
    add_network_options(start, keys=True)
    start.set_defaults(handler=run_start)

    admit = actions.add_parser(
        "admit", help="replace a permissioned task's admission list (the creator only)"
    )
    admit.add_argument("--task", type=integer_at_least(1), required=True)
    admit.add_argument(
        "--admit", type=Path, metavar="FILE", required=True, help="the addresses, one a line"
    )
    add_committee_bound_options(admit, adversary_share=True, apply_defaults=True)
    add_network_options(admit, keys=True)
    admit.set_defaults(handler=run_admit)

    status = actions.add_parser("status", help="round, phase, committee, proposals, history")
    status.add_argument("--task", type=integer_at_least(1), required=True)
    status.add_argument("--test", type=Path, help="an .npz (X, y) to score the global model on")
    add_network_options(status, keys=False)
    add_threads_option(status)
    status.set_defaults(handler=run_status)

    split = actions.add_parser("split-data", help="write one .npz of training data per client")
    split.add_argument("--dataset", default="digits", help="digits, or an .npz with X and y")
    split.add_argument("--clients", type=integer_at_least(1), required=True)
    split.add_argument("--partition", default="iid", choices=PARTITION_NAMES)
    split.add_argument(
        "--alpha", type=positive_finite_float, default=0.5, help="dirichlet concentration"
    )
    split.add_argument("--seed", type=int, default=0, help="the seed `task create` uses")
    split.add_argument("--out", type=Path, required=True, help="directory for the files")
    split.set_defaults(handler=run_split)


def run_create(args: argparse.Namespace) -> int:
    parameters = task_parameters_from_args(args)
    admitted = read_admission_list(args.admit) if args.admit is not None else ()
    bound = _committee_bound(args, parameters, admitted, staked=args.min_stake is not None)
    from flare.federation.config import check_seed

    check_seed(args.seed)
    apply_threads(args.threads)
    config = network_config(args)
    from flare.config import open_chain, open_store
    from flare.federation.agents import TaskSpec, publish_task

    spec = TaskSpec(
        model=args.model,
        dataset=args.dataset,
        aggregator=args.aggregator,
        aggregator_params=aggregator_settings_from_args(args, args.aggregator),
        parameters=parameters,
        seed=args.seed,
        dp_max_epsilon=args.dp_max_epsilon,
        dp_delta=args.dp_delta,
        dp_clip=args.dp_clip,
        admitted=admitted,
        min_stake=args.min_stake or 0,
    )
    with open_chain(config, _sender(config)) as chain:
        task_id = publish_task(chain, open_store(config), spec)
        task = chain.task(task_id)
    print(f"task {task_id} created: model {task.model.to_cid()}, manifest {task.manifest.to_cid()}")
    print(bound)
    requirement = spec.privacy_requirement()
    if requirement is not None:
        print(f"participants must run {requirement.describe(parameters.max_rounds)}")
    return 0


def _committee_bound(
    args: argparse.Namespace,
    parameters: "TaskParameters",
    admitted: tuple[str, ...],
    *,
    staked: bool = False,
) -> str:
    """The committee risk of the task at its declared adversary share: exact for the
    admitted fleet; for an open task the limit of many participants, and for a staked one
    the same limit for a share of stake (docs/protocol.md §11)."""
    from flare.federation.safety import (
        adversaries_for_share,
        committee_risk,
        open_committee_risk,
    )

    share = args.adversary_share
    if not admitted:
        adversary = f"a {share:g} share of stake" if staked else f"a {share:g} share"
        return check_committee_bound(args, open_committee_risk(parameters, share), adversary)
    fleet = len(set(admitted))
    adversaries = adversaries_for_share(fleet, share)
    risk = committee_risk(parameters, fleet, adversaries)
    return check_committee_bound(args, risk, f"{adversaries} admitted keys (a {share:g} share)")


def run_start(args: argparse.Namespace) -> int:
    from flare.config import open_chain

    config = network_config(args)
    with open_chain(config, _sender(config)) as chain:
        starter = chain
        if config.keystore is None and config.local:
            # The embedded chain checks no signatures; only the creator may start a task
            # (docs/protocol.md §4.3), so without keys start it as the creator.
            starter = chain.as_sender(SimpleNamespace(address=chain.task(args.task).creator))
        opened = starter.start_task(args.task).block_number
        state = chain.current_round(args.task)
    print(
        f"task {args.task} started in block {opened}: round 1 takes submissions until "
        f"block {state.submission_deadline}, votes until {state.vote_deadline}"
    )
    return 0


def run_admit(args: argparse.Namespace) -> int:
    admitted = read_admission_list(args.admit)
    from dataclasses import asdict

    from flare.chain.api.admission import admission_root
    from flare.config import open_chain
    from flare.federation.task_parameters import TaskParameters

    config = network_config(args)
    with open_chain(config, _sender(config)) as chain:
        task = chain.task(args.task)
        bound = _committee_bound(args, TaskParameters(**asdict(task.params)), admitted)
        creator = chain
        if config.keystore is None and config.local:
            # As for start: the embedded chain checks no signatures, so act as the creator.
            creator = chain.as_sender(SimpleNamespace(address=task.creator))
        root = admission_root(admitted)
        block = creator.set_admission_root(args.task, root).block_number
    print(
        f"task {args.task} admits {len(set(admitted))} addresses from block {block}: "
        f"root 0x{root.hex()}"
    )
    print(bound)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from flare.config import open_chain, open_store

    if args.test is not None:  # only scoring needs torch: a plain status never imports it
        check_input_file(args.test, "--test")
        apply_threads(args.threads)
    config = network_config(args)
    with open_chain(config, read_only=True) as chain:  # a status must not create a chain
        for line in _status_lines(chain, args.task):
            print(line)
        print(_privacy_line(chain, open_store(config), args.task))
        if args.test is not None:
            print(_score_line(chain, open_store(config), args.task, args.test))
    return 0


def run_split(args: argparse.Namespace) -> int:
    from flare.federation.config import check_seed

    check_seed(args.seed)
    check_output_directory(args.out, "--out")
    from flare.federation.agents import split_data

    written = split_data(
        args.dataset,
        args.clients,
        args.out,
        scheme=args.partition,
        alpha=args.alpha,
        seed=args.seed,
    )
    print(f"wrote {len(written) - 1} client files and {written[-1].name} to {args.out}")
    return 0


def _sender(config: "NetworkConfig") -> "SenderAccount":
    """Who sends: the configured keys; on the embedded chain, which checks no signatures,
    a throwaway account when none are configured."""
    if config.keystore is None and config.local:
        from eth_account import Account

        return Account.create()
    return load_keys(config).account


def _status_lines(chain: "ChainConnector", task_id: int) -> list[str]:
    from flare.chain import Proposed, RoundFinalized, RoundTimedOut, TaskStatus

    task = chain.task(task_id)
    p = task.params
    head = chain.block_number()
    lines = [
        f"task {task_id} on chain {chain.chain_id} at {chain.contract_address}, block {head}: "
        f"{task.status.name.lower()}, {task.registered_count} registered "
        f"(start needs {p.min_clients})",
        f"committee k={p.expected_committee}, min {p.min_committee}, "
        f"quorum {p.quorum_bps / 100:g}%; windows {p.submission_window}+{p.vote_window} "
        f"blocks; {p.max_rounds} rounds",
        f"global model {task.model.to_cid()}",
        _admission_line(chain.admission_root(task_id), chain.min_stake(task_id)),
    ]
    if task.status is TaskStatus.REGISTERING:
        return lines
    state = chain.current_round(task_id)
    phase = state.phase_at(head + 1).name.lower()
    lines.append(
        f"round {state.round} attempt {state.attempt} (epoch {state.epoch}): {phase}; "
        f"submissions until block {state.submission_deadline}, votes until {state.vote_deadline}"
    )
    seats = chain.committee(task_id, state.round, state.attempt)
    lines.append(
        f"  {state.submission_count} submissions, committee {len(seats)}: "
        + (", ".join(seat.member for seat in seats) or "none yet")
    )
    opened = chain.round_opened(task_id, state.round, state.attempt)
    for event in chain.events([Proposed], task_id=task_id, from_block=opened.block_number):
        if isinstance(event, Proposed) and (event.round, event.attempt) == (
            state.round,
            state.attempt,
        ):
            record = chain.proposal(task_id, event.proposal_id)
            lines.append(
                f"  proposal #{event.proposal_id} by {event.proposer}: {event.model.to_cid()}, "
                f"{record.approvals} approve / {record.rejections} reject "
                f"(quorum {state.quorum_threshold})"
            )
    lines.append("history:")
    for event in chain.events([RoundFinalized, RoundTimedOut], task_id=task_id):
        if isinstance(event, RoundFinalized):
            lines.append(
                f"  round {event.round} attempt {event.attempt}: finalized → "
                f"{event.model.to_cid()} ({event.submission_count} submissions, "
                f"committee {event.committee_size})"
            )
        elif isinstance(event, RoundTimedOut):
            lines.append(
                f"  round {event.round} attempt {event.attempt}: timed out "
                f"({event.submission_count} submissions, committee {event.committee_size})"
            )
    return lines


def _admission_line(root: bytes, min_stake: int) -> str:
    if min_stake:
        return f"admission: staked, each participant bonds at least {format_wei(min_stake)}"
    if root == bytes(32):
        return "admission: open to anyone"
    return f"admission: permissioned, root 0x{root.hex()}"


def _privacy_line(chain: "ChainConnector", store: "StorageProvider", task_id: int) -> str:
    """What the task's manifest requires of participants' privacy, for an auditor."""
    from flare.federation.protocol.artifacts import MalformedArtifactError, decode_manifest
    from flare.storage.errors import StorageError

    task = chain.task(task_id)
    try:
        manifest = decode_manifest(store.get(task.manifest.to_cid())).manifest
    except (StorageError, MalformedArtifactError) as exc:
        return f"privacy: manifest unreadable ({exc})"
    if manifest.privacy is None:
        return "privacy: the task requires no client-level DP"
    return f"privacy: participants must run {manifest.privacy.describe(task.params.max_rounds)}"


def _score_line(chain: "ChainConnector", store: "StorageProvider", task_id: int, test: Path) -> str:
    from flare.federation.agents import read_client_data
    from flare.federation.protocol.aggregate import load_task_context
    from flare.federation.protocol.artifacts import build_task_model, decode_model
    from flare.models import TorchModelAdapter

    context = load_task_context(chain, store, task_id)
    manifest = context.bundle.manifest
    data = read_client_data(test, "test", manifest.num_features, manifest.num_classes)
    model = chain.task(task_id).model.to_cid()
    evaluator = TorchModelAdapter(build_task_model(manifest))
    evaluator.set_weights(decode_model(store.get(model), context.spec))
    result = evaluator.evaluate(data.features, data.labels)
    return f"global model accuracy {result.accuracy:.1%} (loss {result.loss:.3f}) on {test}"

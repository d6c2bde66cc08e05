"""``flare model export``: a task's global model, taken out of Flare (docs/models.md)."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from flare.cli import check_output_directory, integer_at_least
from flare.cli.network import add_network_options, network_config
from flare.errors import ConfigError

if TYPE_CHECKING:
    from flare.chain import ChainConnector, ContentRef


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "model",
        help="take a task's global model out of Flare",
        description="Work with a task's models as plain files.",
    )
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    export = actions.add_parser(
        "export",
        help="write a round's global model as safetensors and a loader",
        description="Write a round's global model, checked against its CID and the task's "
        "architecture, as model.safetensors plus load.py, the lines that load it into a "
        "fresh instance of the task's model.",
    )
    export.add_argument("--task", type=integer_at_least(1), required=True)
    export.add_argument(
        "--round",
        type=integer_at_least(0),
        help="the round whose finalized model to write; 0: the initial model "
        "(default: the latest finalized round)",
    )
    export.add_argument("--out", type=Path, required=True, help="directory for the files")
    add_network_options(export, keys=False)
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    check_output_directory(args.out, "--out")
    config = network_config(args)
    from flare.config import open_chain, open_store
    from flare.federation.protocol.artifacts import (
        build_task_model,
        decode_manifest,
        decode_model,
        model_blob_limit,
    )
    from flare.models.export import ExportedModel, write_export
    from flare.models.factory import parameter_shapes

    store = open_store(config)
    with open_chain(config, read_only=True) as chain:
        task = chain.task(args.task)
        round_number, ref = _global_model(chain, args.task, args.round)
    manifest = decode_manifest(store.get(task.manifest.to_cid())).manifest
    # A user's model is bound by its shapes, so its code is needed only to load the export.
    if manifest.architecture is not None:
        spec = manifest.architecture.parameters
    else:
        spec = parameter_shapes(build_task_model(manifest))
    cid = ref.to_cid()
    weights = decode_model(store.get(cid, max_bytes=model_blob_limit(spec)), spec)
    model = ExportedModel(
        manifest.model, manifest.num_features, manifest.num_classes, args.task, round_number, cid
    )
    for path in write_export(weights, model, args.out):
        print(f"wrote {path}")
    print(f"{model.described()}; load it with {args.out / 'load.py'}")
    return 0


def _global_model(
    chain: "ChainConnector", task_id: int, round_number: int | None
) -> tuple[int, "ContentRef"]:
    """The round and model the chain records: round 0 the initial model, None the latest."""
    from flare.chain import RoundFinalized, TaskCreated

    if round_number == 0:
        created = chain.events([TaskCreated], task_id=task_id)
        return 0, next(e.model for e in created if isinstance(e, TaskCreated))
    finalized = {
        event.round: event.model
        for event in chain.events([RoundFinalized], task_id=task_id)
        if isinstance(event, RoundFinalized)
    }
    if round_number is None:
        if not finalized:
            raise ConfigError(
                f"task {task_id} has no finalized round yet; --round 0 exports its initial model"
            )
        round_number = max(finalized)
    if round_number not in finalized:
        raise ConfigError(f"round {round_number} of task {task_id} is not finalized")
    return round_number, finalized[round_number]

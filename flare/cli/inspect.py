"""``flare inspect``: decode an update or global-model blob with every check a participant
applies, and describe it.

The blob is checked against a model's weights: the task's, from its manifest (a manifest
blob file, or the task on chain with its store), or a model named by reference as
``flare task create`` takes it, with the data's features and classes.
"""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from flare.cli import add_threads_option, apply_threads, integer_at_least
from flare.cli.network import add_network_options, network_config
from flare.errors import ConfigError

if TYPE_CHECKING:
    from flare.federation.protocol.artifacts import TaskManifest
    from flare.tensors import ModelSpec, Weights

MAX_MODEL_BYTES = 1 << 30
"""Largest model (as raw float32) inspect decodes against: decoding a valid update
allocates its dense delta, so --features and --classes must not ask for terabytes."""
DEFAULT_MODEL = "mlp"
DEFAULT_FEATURES = 64
DEFAULT_CLASSES = 10


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "inspect",
        help="validate and describe an update or global-model blob",
        description="Decode an update or global-model blob against a model's weights, with "
        "every check a participant applies; print what it holds, or one line saying why it "
        "is refused. The model is the task's (--manifest or --task) or one named by --model.",
    )
    p.add_argument("blob", type=Path, help="the blob file")
    model = p.add_argument_group("model", "what the blob must fit (default: mlp, 64, 10)")
    model.add_argument(
        "--model",
        help="a built-in name (cnn, logreg, mlp), package.module:function or "
        "path/to/file.py:function (docs/models.md)",
    )
    model.add_argument("--features", type=integer_at_least(1), help="model input features")
    model.add_argument("--classes", type=integer_at_least(1), help="model classes")
    model.add_argument(
        "--manifest", type=Path, metavar="FILE", help="the task's manifest blob: its model"
    )
    model.add_argument(
        "--task",
        type=integer_at_least(1),
        help="the task whose model to use, its manifest read through the network options",
    )
    p.add_argument(
        "--max-bytes", type=integer_at_least(1), default=None, help="refuse blobs above this size"
    )
    add_network_options(p, keys=False)
    add_threads_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from flare.federation.protocol.artifacts import MalformedArtifactError, model_unavailable
    from flare.storage import compute_cid

    apply_threads(args.threads)
    spec, described = _spec_from_args(args)
    limit = _read_limit(spec, args.max_bytes)
    blob = _read_blob(args.blob, limit)
    print(f"{args.blob}: {len(blob)} bytes, CID {compute_cid(blob)}, checked against {described}")
    try:
        unavailable = model_unavailable(blob)
    except MalformedArtifactError:
        _describe_update(blob, spec, limit)
    else:
        _describe_model(blob, spec, unavailable)
    return 0


def _describe_update(blob: bytes, spec: "ModelSpec", limit: int) -> None:
    from flare.compression import decode_update

    decoded = decode_update(blob, spec, max_blob_bytes=limit)
    b = decoded.binding
    print(
        f"update, codec {decoded.codec}, bound to sender {b.sender}, task {b.task}, "
        f"round {b.round}, attempt {b.attempt}, base {b.base_model}, {b.num_samples} samples"
    )
    _print_tensors(decoded.delta)


def _describe_model(blob: bytes, spec: "ModelSpec", unavailable: frozenset[int]) -> None:
    from flare.federation.protocol.artifacts import decode_model

    weights = decode_model(blob, spec)
    left_out = ", ".join(map(str, sorted(unavailable))) or "none"
    print(f"global model; submissions left out as unavailable: {left_out}")
    _print_tensors(weights)


def _print_tensors(tensors: "Weights") -> None:
    import numpy as np

    for name, tensor in tensors.items():
        print(f"  {name:<20} {tuple(tensor.shape)!s:<14} L2 {np.linalg.norm(tensor):.4g}")


def _read_limit(spec: "ModelSpec", max_bytes: int | None) -> int:
    """The most bytes a valid update or global model of ``spec`` takes, or ``max_bytes``."""
    from flare.compression.decode import blob_limit
    from flare.federation.protocol.artifacts import model_blob_limit

    limit = max(blob_limit(spec), model_blob_limit(spec))
    return limit if max_bytes is None else min(max_bytes, limit)


def _read_blob(path: Path, limit: int) -> bytes:
    from flare.compression.base import MalformedUpdateError

    try:
        if not path.is_file():
            raise ConfigError(f"no such file: {path}")
        size = path.stat().st_size
        if size > limit:  # said before reading: the file may be far larger than any blob
            raise MalformedUpdateError(f"blob has {size} bytes, the limit is {limit}")
        with path.open("rb") as file:
            return file.read(limit + 1)  # one more than allowed: a file that grew is refused
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _spec_from_args(args: argparse.Namespace) -> tuple["ModelSpec", str]:
    """The weights the blob must fit, and how to name where they came from."""
    by_reference = [args.model, args.features, args.classes]
    if args.task is not None and args.manifest is not None:
        raise ConfigError("give --task or --manifest, not both")
    if args.task is None and args.manifest is None:
        model = args.model or DEFAULT_MODEL
        features = args.features or DEFAULT_FEATURES
        classes = args.classes or DEFAULT_CLASSES
        spec = model_spec(model, features, classes)
        return spec, f"model {model} ({features} features, {classes} classes)"
    if any(value is not None for value in by_reference):
        raise ConfigError("--model, --features and --classes come from the task's manifest")
    if args.task is not None:
        manifest, source = _task_manifest(args), f"task {args.task}"
    else:
        manifest, source = _manifest_file(args.manifest), str(args.manifest)
    return _manifest_spec(manifest), f"model {manifest.model} of {source}"


def _manifest_file(path: Path) -> "TaskManifest":
    from flare.federation.protocol.artifacts import decode_manifest
    from flare.storage import DEFAULT_MAX_BLOB_SIZE

    try:
        with path.open("rb") as file:
            blob = file.read(DEFAULT_MAX_BLOB_SIZE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read --manifest {path}: {exc.strerror or exc}") from None
    if len(blob) > DEFAULT_MAX_BLOB_SIZE:
        raise ConfigError(f"--manifest {path} is over {DEFAULT_MAX_BLOB_SIZE} bytes")
    return decode_manifest(blob).manifest


def _task_manifest(args: argparse.Namespace) -> "TaskManifest":
    from flare.config import open_chain, open_store
    from flare.federation.protocol.artifacts import decode_manifest

    config = network_config(args)
    with open_chain(config, read_only=True) as chain:
        manifest_cid = chain.task(args.task).manifest.to_cid()
    return decode_manifest(open_store(config).get(manifest_cid)).manifest


def _manifest_spec(manifest: "TaskManifest") -> "ModelSpec":
    """A manifest's weights: the bound architecture of a user's model (no code needed),
    else the built-in model's."""
    if manifest.architecture is None:
        return model_spec(manifest.model, manifest.num_features, manifest.num_classes)
    spec = dict(manifest.architecture.parameters)
    _check_decodable(spec, f"the {manifest.model} model the manifest binds")
    return spec


def model_spec(model: str, features: int, classes: int) -> "ModelSpec":
    """The weights of ``model`` (any reference) for this data, found without allocating them."""
    import torch

    from flare.models import build_model
    from flare.models.factory import parameter_shapes

    with torch.device("meta"):  # shapes only: a huge --features must not allocate
        module = build_model(model, features, classes, seed=0)
    spec = parameter_shapes(module)
    _check_decodable(spec, f"a {model} model for {features} features and {classes} classes")
    return spec


def _check_decodable(spec: "ModelSpec", described: str) -> None:
    from flare.tensors import raw_nbytes

    if raw_nbytes(spec) > MAX_MODEL_BYTES:
        raise ConfigError(
            f"{described} holds {raw_nbytes(spec)} bytes; "
            f"inspect decodes models of at most {MAX_MODEL_BYTES}"
        )

"""``flare inspect``: decode an update blob the way an aggregator would, and describe it."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from flare.cli import add_threads_option, apply_threads, integer_at_least
from flare.cli.help_values import MODEL_NAMES
from flare.errors import ConfigError

if TYPE_CHECKING:
    from flare.tensors import ModelSpec

MAX_MODEL_BYTES = 1 << 30
"""Largest model (as raw float32) inspect decodes against: decoding a valid update
allocates its dense delta, so --features and --classes must not ask for terabytes."""


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "inspect",
        help="validate and describe an update blob",
        description="Decode an update blob against a model's shapes, with every check the "
        "aggregator applies; print what it holds, or one line saying why it is refused.",
    )
    p.add_argument("blob", type=Path, help="the blob file")
    p.add_argument("--model", default="mlp", choices=MODEL_NAMES, help="model the blob must fit")
    p.add_argument("--features", type=integer_at_least(1), default=64, help="model input features")
    p.add_argument("--classes", type=integer_at_least(1), default=10, help="model classes")
    p.add_argument(
        "--max-bytes", type=integer_at_least(1), default=None, help="refuse blobs above this size"
    )
    add_threads_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from flare.compression import decode_update
    from flare.compression.base import MalformedUpdateError
    from flare.compression.decode import blob_limit
    from flare.storage import compute_cid

    apply_threads(args.threads)
    spec = model_spec(args.model, args.features, args.classes)
    limit = blob_limit(spec) if args.max_bytes is None else min(args.max_bytes, blob_limit(spec))
    try:
        if not args.blob.is_file():
            raise ConfigError(f"no such file: {args.blob}")
        size = args.blob.stat().st_size
        if size > limit:  # said before reading: the file may be far larger than any update
            raise MalformedUpdateError(f"blob has {size} bytes, the limit is {limit}")
        with args.blob.open("rb") as file:
            blob = file.read(limit + 1)  # one more than allowed: a file that grew is refused
    except OSError as exc:
        raise ConfigError(f"cannot read {args.blob}: {exc.strerror or exc}") from None
    decoded = decode_update(blob, spec, max_blob_bytes=limit)
    b = decoded.binding
    print(f"{args.blob}: {len(blob)} bytes, CID {compute_cid(blob)}, codec {decoded.codec}")
    print(
        f"bound to sender {b.sender}, task {b.task}, round {b.round}, attempt {b.attempt}, "
        f"base {b.base_model}, {b.num_samples} samples"
    )
    for name, tensor in decoded.delta.items():
        print(f"  {name:<20} {tuple(tensor.shape)!s:<14} L2 {np.linalg.norm(tensor):.4g}")
    return 0


def model_spec(model: str, features: int, classes: int) -> "ModelSpec":
    """The shapes of ``model`` for this data, found without allocating its weights."""
    import torch

    from flare.models import build_model
    from flare.tensors import raw_nbytes

    with torch.device("meta"):  # shapes only: a huge --features must not allocate
        module = build_model(model, features, classes, seed=0)
    spec = {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}
    if raw_nbytes(spec) > MAX_MODEL_BYTES:
        raise ConfigError(
            f"a {model} model for {features} features and {classes} classes holds "
            f"{raw_nbytes(spec)} bytes; inspect decodes models of at most {MAX_MODEL_BYTES}"
        )
    return spec

"""``flare inspect``: decode an update blob the way an aggregator would, and describe it."""

import argparse
from pathlib import Path

from flare.cli import add_threads_option
from flare.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "inspect",
        help="validate and describe an update blob (or a global model blob)",
        description="Decode an update blob against a model's shapes, with every check the "
        "aggregator applies; print what it holds, or one line saying why it is refused.",
    )
    p.add_argument("blob", type=Path, help="the blob file")
    p.add_argument("--model", default="mlp", help="model the blob must fit")
    p.add_argument("--features", type=int, default=64, help="model input features")
    p.add_argument("--classes", type=int, default=10, help="model classes")
    p.add_argument("--max-bytes", type=int, default=None, help="refuse blobs above this size")
    add_threads_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from flare.compression import decode_update
    from flare.models import build_model
    from flare.storage import compute_cid
    from flare.tensors import spec_of

    if not args.blob.is_file():
        raise ConfigError(f"no such file: {args.blob}")
    blob = args.blob.read_bytes()
    spec = spec_of(
        {
            k: v.numpy()
            for k, v in build_model(args.model, args.features, args.classes, seed=0)
            .state_dict()
            .items()
        }
    )
    decoded = decode_update(blob, spec, max_blob_bytes=args.max_bytes)
    b = decoded.binding
    print(f"{args.blob}: {len(blob)} bytes, CID {compute_cid(blob)}, codec {decoded.codec}")
    print(
        f"bound to sender {b.sender}, task {b.task}, round {b.round}, attempt {b.attempt}, "
        f"base {b.base_model}, {b.num_samples} samples"
    )
    for name, tensor in decoded.delta.items():
        print(f"  {name:<20} {tuple(tensor.shape)!s:<14} L2 {np.linalg.norm(tensor):.4g}")
    return 0

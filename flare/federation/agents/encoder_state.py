"""A client's encoder state on disk, so that a restarted process keeps its error feedback.

PowerSGD remembers, per tensor, what the last update's factors missed (error feedback)
and the last ``Q`` factor (warm start). Lose that on a restart and the missed part of
every earlier update is gone for good. The state is written as safetensors (never pickle)
with its codec, parameters and random generator state in the metadata.

Writing it is a two-phase commit tied to the chain. Encoding an update advances the
state, but the update only counts once the chain records the submission. So the new
state is first *staged* with the attempt's epoch, and *committed* once the submission is
on chain. A process killed in between finds the staged file on restart and settles it
from chain state alone: the participant's ``submit_epoch`` equals the staged epoch (the
submission landed: commit) or it does not (it never did: discard, and encode again from
the committed state, which gives the same bytes).
"""

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from flare.compression.base import UpdateEncoder
from flare.compression.powersgd import PowerSGDEncoder
from flare.errors import ConfigError

STATE_FORMAT = "flare-encoder-state/1"
COMMITTED_NAME = "encoder.safetensors"
STAGED_NAME = "encoder-staged.safetensors"


class EncoderStateStore:
    """The committed and staged encoder state of one participant in one task."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.committed = directory / COMMITTED_NAME
        self.staged = directory / STAGED_NAME

    def restore(self, encoder: UpdateEncoder, submitted_epoch: int) -> None:
        """Load the committed state into ``encoder``, first settling a staged one.

        ``submitted_epoch`` is the participant's ``submit_epoch`` as the chain shows it.
        Stateless encoders (``none``, ``gzip``) have nothing to restore.
        """
        if self.staged.exists():
            if _stored_epoch(self.staged) == submitted_epoch:
                os.replace(self.staged, self.committed)
            else:
                self.staged.unlink()
        if isinstance(encoder, PowerSGDEncoder) and self.committed.exists():
            _load_into(encoder, self.committed)

    def stage(self, encoder: UpdateEncoder, epoch: int) -> None:
        """Write the state ``encoder`` reached by encoding the update of attempt ``epoch``."""
        if not isinstance(encoder, PowerSGDEncoder):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"error/{name}": array for name, array in encoder.error_memory.items()}
        tensors.update({f"warm_q/{name}": array for name, array in encoder.warm_q.items()})
        metadata = {
            "format": STATE_FORMAT,
            "codec": encoder.codec.name,
            "params": json.dumps(encoder.codec.params(), sort_keys=True),
            "rng": json.dumps(encoder.rng.bit_generator.state),
            "epoch": str(epoch),
        }
        temporary = self.staged.with_name(self.staged.name + ".tmp")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, temporary, metadata)
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, self.staged)

    def commit(self, epoch: int) -> None:
        """Make the state staged for ``epoch`` the committed one: its submission is on chain."""
        if self.staged.exists() and _stored_epoch(self.staged) == epoch:
            os.replace(self.staged, self.committed)


def _metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(path, framework="np") as handle:
            metadata = handle.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"unreadable encoder state {path}: {exc}") from exc
    if metadata.get("format") != STATE_FORMAT:
        raise ConfigError(f"{path} is not a {STATE_FORMAT} file")
    return metadata


def _stored_epoch(path: Path) -> int:
    return int(_metadata(path)["epoch"])


def _load_into(encoder: PowerSGDEncoder, path: Path) -> None:
    """Replace ``encoder``'s state with the file's, refusing state of another configuration."""
    metadata = _metadata(path)
    params = json.dumps(encoder.codec.params(), sort_keys=True)
    if (metadata["codec"], metadata["params"]) != (encoder.codec.name, params):
        raise ConfigError(
            f"{path} holds {metadata['codec']} {metadata['params']} state, not "
            f"{encoder.codec.name} {params}; keep the codec or move the state directory away"
        )
    stored = load_file(path)
    expected = {f"error/{n}": a.shape for n, a in encoder.error_memory.items()}
    expected.update({f"warm_q/{n}": a.shape for n, a in encoder.warm_q.items()})
    if {name: array.shape for name, array in stored.items()} != expected:
        raise ConfigError(f"{path} was written for another model; move it away to start afresh")
    for name in encoder.error_memory:
        encoder.error_memory[name] = stored[f"error/{name}"]
    for name in encoder.warm_q:
        encoder.warm_q[name] = stored[f"warm_q/{name}"]
    encoder.rng.bit_generator.state = json.loads(metadata["rng"])

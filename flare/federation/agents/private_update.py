"""A DP participant's noised update for the current round, kept on disk until it is sent.

A round can take several attempts, all from the same base model, and a process can be
killed between uploading an update and submitting it. With fresh noise each time, every
re-send would publish another noisy copy of the same data and spend ε again. So the first
noised delta of a round is written here, keyed by round and base model, before anything
leaves the device; every later attempt (or a restarted process) sends that same delta
again, which is post-processing of one release and costs nothing more. Losing this file
mid-round (deleting the state directory) gives up that guarantee for the round.

The noise itself comes from the operating system (``numpy.random.default_rng()`` with no
seed), never from anything another party could know. The file is safetensors (never
pickle) and is written with owner-only permissions: it holds the noised delta only, but
nobody else needs it.
"""

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from flare.errors import ConfigError
from flare.federation.clients import LocalUpdate
from flare.tensors import ModelSpec

UPDATE_FORMAT = "flare-dp-update/1"
FILE_NAME = "dp-update.safetensors"


class PrivateUpdateStore:
    """The one noised update a DP participant keeps: the current round's."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME

    def load(self, round_number: int, base_model: str, spec: ModelSpec) -> LocalUpdate | None:
        """The update kept for this round and base model, or None (nothing kept, or stale)."""
        if not self.path.exists():
            return None
        try:
            with safe_open(self.path, framework="np") as handle:
                metadata = handle.metadata() or {}
            if metadata.get("format") != UPDATE_FORMAT:
                raise ConfigError(f"{self.path} is not a {UPDATE_FORMAT} file")
            key = json.loads(metadata["key"])
            if key != {"round": round_number, "base_model": base_model}:
                return None
            tensors = load_file(self.path)
            num_samples = int(metadata["num_samples"])
            train_loss = float(metadata["train_loss"])
        except (OSError, SafetensorError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"unreadable DP update {self.path} ({exc}); move it away to draw fresh noise, "
                "which spends ε again for this round"
            ) from exc
        if {name: tuple(array.shape) for name, array in tensors.items()} != dict(spec):
            raise ConfigError(f"{self.path} was written for another model; move it away")
        delta = {name: tensors[name] for name in spec}
        return LocalUpdate(delta=delta, num_samples=num_samples, train_loss=train_loss)

    def save(self, round_number: int, base_model: str, update: LocalUpdate) -> None:
        """Keep ``update`` as this round's, durably, before it is encoded or sent."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {
            "format": UPDATE_FORMAT,
            "key": json.dumps({"round": round_number, "base_model": base_model}, sort_keys=True),
            "num_samples": str(update.num_samples),
            "train_loss": repr(float(update.train_loss)),
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        tensors = {name: np.ascontiguousarray(array) for name, array in update.delta.items()}
        save_file(tensors, temporary, metadata)
        os.chmod(temporary, 0o600)
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

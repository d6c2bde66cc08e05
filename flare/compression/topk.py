"""Top-k sparsification with error feedback, as a codec of its own.

Each matrix-shaped tensor sends only its ``keep`` largest-magnitude entries (flat indices
as int32, values as float32), ``keep`` being ``per_mille`` thousandths of the tensor,
rounded up; what is not sent stays in the client's error memory and joins next round's
delta. Vectors, and tensors whose indices and values would not be smaller than the dense
tensor, travel dense and exact. It is the baseline PowerSGD's second stage is measured
against.
"""

import numpy as np

from flare.compression.base import Codec, MalformedUpdateError, UpdateBinding, UpdateEncoder
from flare.compression.container import container_for
from flare.compression.dense import checked_delta
from flare.compression.layout import SPARSE, TensorLayout, checked_shapes, unambiguous
from flare.errors import ConfigError
from flare.tensors import ModelSpec, Weights

DEFAULT_PER_MILLE = 10
MAX_INDEX = 2**31 - 1
"""Indices travel as int32, so larger tensors travel dense."""


def kept_entries(size: int, per_mille: int) -> int:
    """How many entries of a tensor of ``size`` elements are sent: per_mille/1000, rounded up."""
    return max(1, -(-size * per_mille // 1000))


def largest_entries(values: np.ndarray, keep: int, work: np.ndarray) -> np.ndarray:
    """The ascending int32 indices of the ``keep`` largest magnitudes of ``values`` (1-d).

    Ties go to the lower index, so the same input gives the same bytes: the first ``keep``
    of a stable sort by decreasing magnitude, found without sorting. Every magnitude above
    the ``keep``-th largest is kept, and as many of those equal to it as there is room for,
    lowest indices first. ``work``, of the size and type of ``values``, is overwritten.
    """
    if keep >= values.size:
        return np.arange(values.size, dtype=np.int32)
    kth = values.size - keep
    np.abs(values, out=work).partition(kth)
    threshold = work[kth]
    magnitudes = np.abs(values, out=work)
    above = magnitudes > threshold
    tied = np.flatnonzero(magnitudes == threshold)[: keep - np.count_nonzero(above)]
    above[tied] = True
    return np.flatnonzero(above).astype(np.int32)


class TopKEncoder(UpdateEncoder):
    """One client's top-k state: the error memory of every sparse tensor."""

    def __init__(self, codec: "TopKCodec", spec: ModelSpec) -> None:
        self.codec = codec
        self.spec = dict(spec)
        self.layout = codec.layout(spec)
        self.container = container_for(codec, self.layout)
        sparse = [entry for entry in self.layout if entry.kind == SPARSE]
        self.error_memory = {entry.name: np.zeros(entry.size) for entry in sparse}
        # Delta plus carried error is summed into the scratch array, which then becomes the
        # new error memory while the old one becomes the next round's scratch, and the
        # magnitudes are ranked in arrays of their own: no tensor-sized array is allocated
        # per round (a fresh one can cost page faults).
        self._scratch = {entry.name: np.empty(entry.size) for entry in sparse}
        self._work = {entry.name: np.empty(entry.size) for entry in sparse}

    def encode(self, delta: Weights, binding: UpdateBinding) -> bytes:
        """Send the largest entries of ``delta`` plus the carried error; keep the rest."""
        delta = checked_delta(delta, self.spec)
        tensors: dict[str, np.ndarray] = {}
        for entry in self.layout:
            if entry.kind != SPARSE:
                tensors[entry.name] = delta[entry.name]
                continue
            flat = self._scratch[entry.name]
            np.add(delta[entry.name].ravel(), self.error_memory[entry.name], out=flat)
            indices = largest_entries(flat, entry.keep, self._work[entry.name])
            with np.errstate(over="ignore"):
                values = flat[indices].astype(np.float32)
            if not np.isfinite(values).all():
                raise MalformedUpdateError(f"delta {entry.name!r} overflows float32 once summed")
            flat[indices] -= values  # what is still owed
            tensors.update(zip(entry.stored_tensors(), (indices, values), strict=True))
        blob = self.container.write(binding, tensors)
        for name, owed in self._scratch.items():
            self._scratch[name], self.error_memory[name] = self.error_memory[name], owed
        return blob


class TopKCodec(Codec):
    """Top-k entries of every matrix-shaped tensor where indices and values are smaller."""

    name = "topk"

    def __init__(self, per_mille: int = DEFAULT_PER_MILLE) -> None:
        if (
            not isinstance(per_mille, int)
            or isinstance(per_mille, bool)
            or not 1 <= per_mille <= 1000
        ):
            raise ConfigError(f"topk per_mille must be an integer in [1, 1000], got {per_mille!r}")
        self.per_mille = per_mille

    def params(self) -> dict[str, int]:
        return {"per_mille": self.per_mille}

    def layout(self, spec: ModelSpec) -> list[TensorLayout]:
        layout = []
        for name, shape in checked_shapes(spec):
            entry = TensorLayout(name, shape)
            keep = kept_entries(entry.size, self.per_mille)
            # An index and a value cost 8 bytes against the dense tensor's 4 per entry.
            if len(shape) >= 2 and 2 * keep < entry.size <= MAX_INDEX:
                entry = TensorLayout(name, shape, kind=SPARSE, keep=keep)
            layout.append(entry)
        return unambiguous(layout)

    def new_encoder(self, spec: ModelSpec, seed: int) -> UpdateEncoder:
        return TopKEncoder(self, spec)

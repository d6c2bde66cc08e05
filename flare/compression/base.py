"""The codec interface: how a client's weight delta becomes bytes and back.

A codec is configuration only (Flower-style: a small, plain class). Anything a
codec remembers between rounds on the client side — PowerSGD's error feedback
and warm-start matrices — lives in an :class:`UpdateEncoder` that the client
owns. Decoding is a pure function of the blob and the model spec, because the
decoder is whoever receives a stranger's bytes.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from flare.compression.layout import TensorLayout
from flare.errors import FlareError
from flare.tensors import ModelSpec, Weights


class MalformedUpdateError(FlareError, ValueError):
    """An update blob is truncated, oversized, non-finite, or does not fit the model."""


@dataclass(frozen=True)
class UpdateBinding:
    """What an update is bound to, so it cannot be replayed or claimed by another.

    Every field is written into the blob's canonical metadata and read back on decode.
    In the offline simulation ``task`` and ``base_model`` may be plain labels; on the
    protocol path they are the task id and the base global model's CID.
    """

    sender: str
    task: str
    round: int
    attempt: int
    base_model: str
    num_samples: int


@dataclass(frozen=True)
class DecodedUpdate:
    """A decoded, validated update: a dense float32 delta and what it is bound to."""

    delta: Weights
    binding: UpdateBinding
    codec: str


class UpdateEncoder(ABC):
    """One client's stateful encoder (stateless codecs keep no state)."""

    @abstractmethod
    def encode(self, delta: Weights, binding: UpdateBinding) -> bytes:
        """Canonical bytes for ``delta``: the same delta, binding and state give the same bytes."""


class Codec(ABC):
    """An update codec: configuration plus a factory for per-client encoders.

    The decoder rebuilds a codec from the name and :meth:`params` written in a blob and
    accepts the blob only if its layout equals :meth:`layout` for the local model spec,
    so a codec's configuration alone decides what a valid blob looks like.
    """

    name: ClassVar[str]
    gzip_wrapped: ClassVar[bool] = False
    """True when the whole container travels gzip-compressed."""
    stateless: ClassVar[bool] = False
    """True when its encoders keep no state: any one of them encodes a delta to the same
    bytes, however often, so one encoder can serve every client and a replay resends them."""

    @abstractmethod
    def params(self) -> dict[str, int]:
        """The configuration, exactly as written into every blob (all keys explicit)."""

    @abstractmethod
    def layout(self, spec: ModelSpec) -> list[TensorLayout]:
        """How each tensor of ``spec`` travels; the only layout the decoder accepts."""

    @abstractmethod
    def new_encoder(self, spec: ModelSpec, seed: int) -> UpdateEncoder:
        """A fresh encoder for one client; ``seed`` fixes any random initial state."""

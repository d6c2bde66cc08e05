"""Lossless codecs: ``none`` (raw float32) and ``gzip`` (the same container, gzipped).

These are the baselines PowerSGD is measured against, and the safe choice when the
uplink is not the bottleneck: the aggregator sees exactly the client's delta.
"""

from collections.abc import Mapping

import numpy as np

from flare.compression.base import (
    Codec,
    MalformedUpdateError,
    UpdateBinding,
    UpdateEncoder,
)
from flare.compression.container import write_update
from flare.compression.layout import TensorLayout, plan_layout
from flare.compression.wire import gzip_compress
from flare.tensors import ModelSpec, Weights


def checked_delta(delta: Mapping[str, np.ndarray], spec: ModelSpec) -> Weights:
    """``delta`` as float32 in spec order, after checking names, shapes and finiteness.

    Encoders refuse what the decoder would refuse, so a client learns of a diverged
    training run (NaN) or a model mismatch locally instead of from a rejected upload.
    """
    if set(delta) != set(spec):
        missing, extra = sorted(set(spec) - set(delta)), sorted(set(delta) - set(spec))
        raise MalformedUpdateError(f"delta does not match spec: missing {missing}, extra {extra}")
    checked: Weights = {}
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused
        for name, shape in spec.items():
            array = np.asarray(delta[name], dtype=np.float32)
            if array.shape != tuple(shape):
                raise MalformedUpdateError(
                    f"delta {name!r} has shape {array.shape}, spec says {tuple(shape)}"
                )
            if not np.isfinite(array).all():
                raise MalformedUpdateError(f"delta {name!r} contains NaN or Inf (as float32)")
            checked[name] = array
    return checked


class DenseEncoder(UpdateEncoder):
    """Stateless encoder that sends every tensor as float32, optionally gzipped."""

    def __init__(self, codec: Codec, spec: ModelSpec) -> None:
        self.codec = codec
        self.spec = dict(spec)
        self.layout = codec.layout(spec)

    def encode(self, delta: Weights, binding: UpdateBinding) -> bytes:
        container = write_update(self.codec, binding, self.layout, checked_delta(delta, self.spec))
        return gzip_compress(container) if self.codec.gzip_wrapped else container


class NoneCodec(Codec):
    """No compression: the delta as raw little-endian float32."""

    name = "none"
    stateless = True

    def params(self) -> dict[str, int]:
        return {}

    def layout(self, spec: ModelSpec) -> list[TensorLayout]:
        return plan_layout(spec, rank=None)

    def new_encoder(self, spec: ModelSpec, seed: int) -> UpdateEncoder:
        return DenseEncoder(self, spec)


class GzipCodec(NoneCodec):
    """Lossless: the ``none`` container compressed with deterministic gzip (level 9).

    Trained float32 deltas compress only modestly (their low mantissa bits are noise);
    it mostly pays off for sparse or frozen layers.
    """

    name = "gzip"
    gzip_wrapped = True

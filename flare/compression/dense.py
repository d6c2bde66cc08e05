"""Lossless codecs: ``none`` (raw float32) and ``gzip`` (the same container, gzipped).

These are the baselines PowerSGD is measured against, and the safe choice when the
uplink is not the bottleneck: the aggregator sees exactly the client's delta.
"""

import math
from collections.abc import Mapping

import numpy as np

from flare.compression.base import (
    Codec,
    MalformedUpdateError,
    UpdateBinding,
    UpdateEncoder,
)
from flare.compression.container import container_for
from flare.compression.layout import TensorLayout, plan_layout
from flare.compression.native import write_natively
from flare.compression.wire import gzip_compress
from flare.tensors import ModelSpec, Weights


def all_finite(values: np.ndarray) -> bool:
    """Whether every one of ``values`` is finite.

    A NaN or an infinity makes the sum of squares NaN or infinite, and that sum is one BLAS
    pass without a temporary (``vdot`` warns of no overflow); only where it is not finite,
    which an overflow of finite values can also make it, are the values checked one by one.
    """
    return math.isfinite(np.vdot(values, values)) or bool(np.isfinite(values).all())


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
            if not all_finite(array):
                raise MalformedUpdateError(f"delta {name!r} contains NaN or Inf (as float32)")
            checked[name] = array
    return checked


class DenseEncoder(UpdateEncoder):
    """Stateless encoder that sends every tensor as float32, optionally gzipped."""

    def __init__(self, codec: Codec, spec: ModelSpec) -> None:
        self.codec = codec
        self.spec = dict(spec)
        self.layout = codec.layout(spec)
        self.container = container_for(codec, self.layout)

    def encode(self, delta: Weights, binding: UpdateBinding) -> bytes:
        written = write_natively(self.container, delta, binding)
        if written is not None:
            return written[0]
        container = self.container.write(binding, checked_delta(delta, self.spec))
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

"""The device's half of client-level differential privacy: clip the update, add noise.

A client's update is its weight delta over every tensor of the model. Before it leaves
the device it is scaled down to an L2 norm of at most ``clip`` and each coordinate gets
independent Gaussian noise of standard deviation ``noise_multiplier * clip``. That is
the Gaussian mechanism applied to one client's whole contribution: everything later
(encoding, PowerSGD's error feedback, aggregation, the MI filter) only sees the noised
delta, so it is post-processing and costs no privacy. docs/privacy.md has the argument.
"""

import math
from dataclasses import dataclass

import numpy as np

from flare.privacy.params import DPParams
from flare.tensors import Weights

CLIP_SHRINK = 1.0 - 2.0**-20
"""Clipping aims this fraction below the bound: casting to float32 moves each value by at
most 2^-24 of itself, so the float32 result still lies within the bound."""


def l2_norm(delta: Weights) -> float:
    """The L2 norm of an update over all its tensors, accumulated in float64."""
    return math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in delta.values()))


def clip_update(delta: Weights, clip: float) -> Weights:
    """``delta`` scaled down, if needed, so that its L2 norm over all tensors is at most ``clip``.

    A delta holding NaN or Inf (training diverged) has no norm to bound; it counts as a
    zero update, so that such a device still sends (pure noise) and whether it sends
    never depends on its data.
    """
    if not all(np.isfinite(array).all() for array in delta.values()):
        return {name: np.zeros(array.shape, dtype=np.float32) for name, array in delta.items()}
    norm = l2_norm(delta)
    if norm <= clip:
        return {name: np.asarray(array, dtype=np.float32) for name, array in delta.items()}
    scale = clip / norm * CLIP_SHRINK
    return {
        name: (np.asarray(array, dtype=np.float64) * scale).astype(np.float32)
        for name, array in delta.items()
    }


def privatize(delta: Weights, params: DPParams, rng: np.random.Generator) -> Weights:
    """Clip ``delta`` to ``params.clip`` and add N(0, (z·clip)²) to every coordinate.

    Noise is drawn tensor by tensor in the update's canonical order, so one generator
    state gives one result.
    """
    clipped = clip_update(delta, params.clip)
    return {
        name: (
            np.asarray(array, dtype=np.float64)
            + params.noise_std * rng.standard_normal(array.shape)
        ).astype(np.float32)
        for name, array in clipped.items()
    }


@dataclass
class LocalDP:
    """One device's DP step: its parameters and its private noise generator.

    The generator must be unknown to everyone else: a real device seeds it from the
    operating system. Anyone who knows the generator's state can subtract the noise.
    """

    params: DPParams
    rng: np.random.Generator

    def privatize(self, delta: Weights) -> Weights:
        """The update as it leaves the device."""
        return privatize(delta, self.params, self.rng)

"""Clip every coordinate of a set of updates to a multiple of their median magnitude there.

A backdoor enters a model through weights that clean data barely moves (on digits, those
reading the trigger's pixels): a backdoored update changes them by many times what its
peers do, while its norm, its direction and its predictions on clean validation data look
ordinary. Bounding each coordinate by ``factor ×`` the coordinate-wise median of ``|δᵢ|``
keeps a minority's pull there within the honest spread, and leaves the coordinates where
the updates agree in size almost untouched.

Exact and order-free: the median is a selection (with an even count, one float64 add and
one halving), the bound one float64 product, and the clip a selection between the value and
the bound with the value's sign.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np

from flare.aggregation.order_statistics import coordinate_median
from flare.errors import ConfigError
from flare.tensors import ModelSpec, Weights


def check_clip_factor(value: float | None) -> float | None:
    """``value`` as a float if it is a positive finite number; ``None`` passes (off)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"coordinate_clip_factor must be a number or None, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"coordinate_clip_factor must be positive and finite, got {value!r}")
    return float(value)


def median_magnitudes(deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec) -> Weights:
    """Per coordinate, the median over ``deltas`` of ``|δᵢ|``, in float64."""
    return coordinate_median(
        [{name: np.abs(np.asarray(delta[name])) for name in spec} for delta in deltas], spec
    )


def clipped_to_median_magnitude(
    deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec, factor: float
) -> tuple[list[Weights], int]:
    """Each delta with every coordinate bounded by ``factor ×`` the median magnitude there
    (float64, the sign kept), and how many coordinate values were clipped in all."""
    bounds = {name: factor * median for name, median in median_magnitudes(deltas, spec).items()}
    clipped: list[Weights] = []
    count = 0
    for delta in deltas:
        result: Weights = {}
        for name in spec:
            values = np.asarray(delta[name], dtype=np.float64)
            beyond = np.abs(values) > bounds[name]
            count += int(np.count_nonzero(beyond))
            result[name] = np.where(beyond, np.copysign(bounds[name], values), values)
        clipped.append(result)
    return clipped, count

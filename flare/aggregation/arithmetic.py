"""Reproducible arithmetic shared by every aggregator.

Committee members on different machines recompute the aggregate and compare
bytes, so nothing here may depend on BLAS, thread counts or reduction order:

* sums over clients are explicit Python loops in submission order, each step
  one elementwise float64 ufunc (no matmul, no ``np.sum`` over the client axis,
  no fused multiply-add), rounded to float32 once at the end;
* sums over parameters (norms, dot products, distances) use one ``np.sum`` per
  tensor, flattened to a C-ordered float64 vector first (``np.sum`` follows the
  memory layout; on a 1-D contiguous vector its pairwise order is fixed by the
  length), and combine the tensors with the correctly rounded ``math.fsum``;
* any float that feeds a decision is first rounded with :func:`round_score` or
  :func:`round_significant`, so that only a difference larger than the
  documented precision can change who is trusted.
"""

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from flare.aggregation.base import AggregationError, ClientUpdate
from flare.tensors import ModelSpec, Weights, spec_of

SCORE_DECIMALS = 9
"""Scores measured in bits or as ratios are compared after rounding to 1e-9."""

SIGNIFICANT_DIGITS = 9
"""Scale-dependent quantities (norms, distances) keep nine significant digits."""


def round_score(value: float) -> float:
    """Round a bounded score (bits, ratios) to :data:`SCORE_DECIMALS` decimals."""
    return round(float(value), SCORE_DECIMALS)


def round_significant(value: float) -> float:
    """Round a scale-dependent value to :data:`SIGNIFICANT_DIGITS` significant digits.

    CPython's float formatting is correctly rounded, hence identical everywhere.
    """
    return float(f"{float(value):.{SIGNIFICANT_DIGITS - 1}e}")


def validate_updates(updates: Sequence[ClientUpdate], global_weights: Weights) -> ModelSpec:
    """Check that the round's updates can be aggregated; return the model spec.

    Every update must name a distinct client, claim a positive sample count, and
    carry finite tensors with exactly the global model's names and shapes.
    """
    if not updates:
        raise AggregationError("no updates to aggregate")
    spec = spec_of(global_weights)
    seen: set[str] = set()
    for update in updates:
        who = update.client_id
        if who in seen:
            raise AggregationError(f"client {who!r} submitted more than one update")
        seen.add(who)
        if isinstance(update.num_samples, bool) or not isinstance(
            update.num_samples, numbers.Integral
        ):
            raise AggregationError(f"client {who!r}: num_samples must be an int")
        if update.num_samples <= 0:
            raise AggregationError(f"client {who!r}: num_samples must be positive")
        if set(update.delta) != set(spec):
            missing = sorted(set(spec) - set(update.delta))
            extra = sorted(set(update.delta) - set(spec))
            raise AggregationError(
                f"client {who!r}: tensor names differ from the model "
                f"(missing {missing}, unexpected {extra})"
            )
        for name, shape in spec.items():
            array = np.asarray(update.delta[name])
            if tuple(array.shape) != shape:
                raise AggregationError(
                    f"client {who!r}: tensor {name!r} has shape {tuple(array.shape)}, "
                    f"model needs {shape}"
                )
            if not np.issubdtype(array.dtype, np.floating):
                raise AggregationError(f"client {who!r}: tensor {name!r} is not floating point")
            if not np.all(np.isfinite(array)):
                raise AggregationError(f"client {who!r}: tensor {name!r} is not finite")
    return spec


def zeros_like_spec(spec: ModelSpec) -> Weights:
    """An all-zero float32 delta of ``spec``: what a round with nobody trusted returns."""
    return {name: np.zeros(shape, dtype=np.float32) for name, shape in spec.items()}


def weighted_average(
    deltas: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[float],
    spec: ModelSpec,
    scales: Sequence[float] | None = None,
) -> Weights:
    """``Σ wᵢ·sᵢ·δᵢ / Σ wᵢ``, bitwise reproducible, returned as float32.

    ``weights`` are usually sample counts; ``scales`` (default 1) shrink single
    updates, e.g. to clip them to a norm bound, without changing their weight.
    Each client's coefficient ``wᵢ·sᵢ`` is one float64 product; the tensors are
    accumulated in float64 in the given order with one multiply and one add per
    step, divided once by ``Σ wᵢ`` and rounded once to float32.
    """
    if not deltas:
        raise AggregationError("cannot average zero updates")
    if len(weights) != len(deltas):
        raise AggregationError("need exactly one weight per update")
    if scales is None:
        scales = [1.0] * len(deltas)
    if len(scales) != len(deltas):
        raise AggregationError("need exactly one scale per update")
    total = math.fsum(float(w) for w in weights)
    if not total > 0:
        raise AggregationError("weights must sum to a positive number")
    coefficients = [float(w) * float(s) for w, s in zip(weights, scales, strict=True)]
    averaged: Weights = {}
    for name, shape in spec.items():
        accumulator = np.zeros(shape, dtype=np.float64)
        term = np.empty(shape, dtype=np.float64)
        for delta, coefficient in zip(deltas, coefficients, strict=True):
            np.multiply(np.asarray(delta[name], dtype=np.float64), coefficient, out=term)
            np.add(accumulator, term, out=accumulator)
        np.divide(accumulator, total, out=accumulator)
        averaged[name] = accumulator.astype(np.float32)
    return averaged


def _flat_float64(tensor: np.ndarray) -> np.ndarray:
    """A C-ordered 1-D float64 copy: ``np.sum`` follows memory order, so fix the order."""
    return np.ascontiguousarray(tensor, dtype=np.float64).reshape(-1)


def dot(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], spec: ModelSpec) -> float:
    """``⟨a, b⟩`` over all tensors: elementwise float64 products, one pairwise ``np.sum``
    per C-ordered tensor, and a correctly rounded ``math.fsum`` across tensors."""
    return math.fsum(
        float(np.sum(np.multiply(_flat_float64(a[name]), _flat_float64(b[name])))) for name in spec
    )


def squared_distance(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], spec: ModelSpec
) -> float:
    """``‖a − b‖²`` over all tensors, computed like :func:`dot` (no matmul, no BLAS)."""
    return math.fsum(
        float(np.sum(np.square(_flat_float64(a[name]) - _flat_float64(b[name])))) for name in spec
    )


def l2_norm(delta: Mapping[str, np.ndarray], spec: ModelSpec) -> float:
    """Euclidean norm over all tensors, rounded to nine significant digits."""
    return round_significant(math.sqrt(max(dot(delta, delta, spec), 0.0)))


def coordinate_median(deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec) -> Weights:
    """Per coordinate, the median over clients, in float64.

    Sorting along the client axis is exact; with an even count the two middle
    values are averaged by one float64 add and one halving.
    """
    count = len(deltas)
    middle = count // 2
    median: Weights = {}
    for name in spec:
        ordered = np.sort(stacked_tensor(deltas, name), axis=0)
        if count % 2 == 0:
            ordered[middle] = (ordered[middle - 1] + ordered[middle]) / 2.0
        median[name] = ordered[middle]
    return median


def stacked_tensor(deltas: Sequence[Mapping[str, np.ndarray]], name: str) -> np.ndarray:
    """One tensor of every client stacked on a new leading client axis, as float64."""
    return np.stack([np.asarray(delta[name], dtype=np.float64) for delta in deltas])


def median_of(values: Sequence[float]) -> float:
    """Median of a short list, computed in plain Python (sorting is exact)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2

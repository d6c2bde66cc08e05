"""The coordinate-wise median and trimmed mean against plain Python references, bitwise.

Each reference orders one coordinate's values with Python's ``sorted`` (−0.0 before +0.0
for the median) and does its arithmetic in Python floats, which are IEEE doubles like
numpy's float64: the median of an even count is ``(lower + upper) / 2``, the trimmed sum
adds the kept values in ascending order to +0.0. The inputs are the ones an order
statistic gets wrong first: zeros of both signs, ties, subnormals of every width, the
largest finite values and infinities, one to three clients, and counts past the sorted
rows' limit (the partitioned path).
"""

import math
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.aggregation import TrimmedMean, order_statistics
from flare.aggregation.order_statistics import coordinate_median

ADVERSARIAL = [
    -0.0,
    0.0,
    0.0,
    -0.0,
    1.0,
    1.0,
    -1.0,
    2.0**-149,  # the smallest float32 subnormal
    -(2.0**-149),
    2.0**-24,  # the smallest float16 subnormal
    5e-324,  # the smallest float64 subnormal
    -5e-324,
    3.4028234663852886e38,  # the largest float32
    -3.4028234663852886e38,
    1e308,
    -1e308,
    math.inf,
    -math.inf,
]
DTYPES = [np.float16, np.float32, np.float64]


@st.composite
def client_rounds(draw: st.DrawFn) -> tuple[list[np.ndarray], int]:
    """One tensor per client, each in a width of its own, values mostly adversarial."""
    count = draw(st.one_of(st.integers(1, 3), st.integers(4, 40), st.just(301)), label="n")
    size = draw(st.integers(1, 24), label="coordinates")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    special_share = draw(st.sampled_from([0.3, 0.9, 1.0]), label="special share")
    tensors = []
    with np.errstate(over="ignore"):
        for _ in range(count):
            special = rng.choice(np.array(ADVERSARIAL), size=size)
            values = np.where(rng.random(size) < special_share, special, rng.normal(size=size))
            tensors.append(values.astype(draw(st.sampled_from(DTYPES))))
    return tensors, size


def ordered_column(tensors: list[np.ndarray], coordinate: int) -> list[float]:
    """One coordinate's values as Python floats, ascending, −0.0 before +0.0, each rounded
    to float64 where a client's type is wider (none here) and widened exactly otherwise."""
    column = [float(np.float64(tensor[coordinate])) for tensor in tensors]
    return sorted(column, key=lambda value: (value, math.copysign(1.0, value)))


def reference_median(tensors: list[np.ndarray], size: int) -> np.ndarray:
    count = len(tensors)
    middle = count // 2
    medians = []
    for coordinate in range(size):
        ordered = ordered_column(tensors, coordinate)
        if count % 2:
            medians.append(ordered[middle])
        else:
            medians.append((ordered[middle - 1] + ordered[middle]) / 2.0)
    return np.array(medians, dtype=np.float64)


def reference_trimmed_mean(tensors: list[np.ndarray], size: int, trimmed: int) -> np.ndarray:
    count = len(tensors)
    means = []
    for coordinate in range(size):
        total = 0.0
        for value in ordered_column(tensors, coordinate)[trimmed : count - trimmed]:
            total += value
        means.append(total / (count - 2 * trimmed))
    return np.array(means, dtype=np.float64).astype(np.float32)


def same_bytes_but_nan_payloads(left: np.ndarray, right: np.ndarray) -> bool:
    """Equal bytes wherever either holds a number, NaN in the same places: infinities of
    both signs make NaN (−∞ + ∞), whose payload is up to the kernel."""
    nan = np.isnan(left)
    if left.dtype != right.dtype or not np.array_equal(nan, np.isnan(right)):
        return False
    return np.where(nan, 0, left).tobytes() == np.where(nan, 0, right).tobytes()


@settings(max_examples=300, deadline=None)
@given(
    client_rounds(),
    st.sampled_from([0, order_statistics.SORTED_ROWS_UP_TO]),
    st.sampled_from([8, 1 << 20]),
    st.sampled_from([-1.0, 0.5, 2.0]),
)
def test_median_equals_a_python_sort_of_each_coordinate(
    case: tuple, sorted_rows_up_to: int, block_bytes: int, sparse_share: float
) -> None:
    """Sorted rows and partitioned ones, one coordinate per block and the whole tensor in
    one, the sparse path (share −1), the dense path (share 2) and the guess between."""
    tensors, size = case
    deltas = [{"t": tensor} for tensor in tensors]
    with (
        mock.patch.object(order_statistics, "SORTED_ROWS_UP_TO", sorted_rows_up_to),
        mock.patch.object(order_statistics, "CLIENT_BLOCK_BYTES", block_bytes),
        mock.patch.object(order_statistics, "SPARSE_SHARE", sparse_share),
        np.errstate(invalid="ignore", over="ignore"),
    ):
        median = coordinate_median(deltas, {"t": (size,)})["t"]
        expected = reference_median(tensors, size)
    assert same_bytes_but_nan_payloads(median, expected)


@settings(max_examples=300, deadline=None)
@given(client_rounds(), st.sampled_from([0.0, 0.1, 0.3, 0.49]), st.sampled_from([8, 1 << 20]))
def test_trimmed_mean_equals_ascending_python_adds(
    case: tuple, trim_fraction: float, block_bytes: int
) -> None:
    tensors, size = case
    rule = TrimmedMean(trim_fraction)
    trimmed = rule.dropped_per_end(len(tensors))
    deltas = [{"t": tensor} for tensor in tensors]
    with (
        mock.patch.object(order_statistics, "CLIENT_BLOCK_BYTES", block_bytes),
        np.errstate(invalid="ignore", over="ignore"),
    ):
        mean = rule.trimmed_mean(deltas, {"t": (size,)})["t"]
        expected = reference_trimmed_mean(tensors, size, trimmed)
    assert same_bytes_but_nan_payloads(mean, expected)

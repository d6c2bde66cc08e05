"""The coordinate-wise median that counts signs first gives the bytes of the one it replaced.

``reference_median`` is the previous implementation, kept verbatim as the specification:
every coordinate partitioned, and the sign of a zero median read back from each client's
tensor, one client at a time. The inputs are the ones the counting shortcut must get right:
mostly zeros of both signs (sparse updates, where most medians are zeros and are never
partitioned), ties at the middle, infinities and NaNs, mixed dtypes, and more than 255
clients (the counts are carried out of bytes every 255 clients).
"""

import math
from collections.abc import Mapping, Sequence
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.aggregation import order_statistics
from flare.aggregation.order_statistics import SignCounts, client_blocks, coordinate_median

SPEC = {"w": (3, 7), "b": (5,)}


def reference_signed(
    selected: np.ndarray, position: int, start: int, sources: Sequence[np.ndarray]
) -> np.ndarray:
    values = selected.astype(np.float64)
    zeros = np.flatnonzero(values == 0.0)
    if zeros.size:
        where = zeros + start
        negative = np.zeros(zeros.size, dtype=np.int64)
        for source in sources:
            negative += np.signbit(source[where])
        values[zeros] = np.where(negative > position, -0.0, 0.0)
    return values


def reference_median(deltas: Sequence[Mapping[str, np.ndarray]], spec: dict) -> dict:
    count = len(deltas)
    middle = count // 2
    median = {}
    for name, shape in spec.items():
        sources = [np.asarray(delta[name]).reshape(-1) for delta in deltas]
        result = np.empty(math.prod(shape), dtype=np.float64)
        for block in client_blocks([delta[name] for delta in deltas]):
            start = block.coordinates.start
            block.values.partition(middle, axis=1)
            upper = reference_signed(block.values[:, middle], middle, start, sources)
            if count % 2:
                result[block.coordinates] = upper
            else:
                lower = block.values[:, :middle].max(axis=1)
                lower = reference_signed(lower, middle - 1, start, sources)
                result[block.coordinates] = (lower + upper) / 2.0
        median[name] = result.reshape(shape)
    return median


def assert_same_bytes(actual: dict, expected: dict) -> None:
    """Equal bytes, but for the payload of a NaN: numpy's float16 sort on an AVX-512 CPU
    (its x86-simd-sort kernels) writes NaNs of a payload of its own, where its partition
    keeps theirs. No NaN reaches a round's median (the decoder refuses every update holding
    one); that every NaN lands where the reference's does is still checked."""
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype, name
        assert np.array_equal(np.isnan(actual[name]), np.isnan(tensor)), name
        canonical = [np.where(np.isnan(t), np.nan, t) for t in (actual[name], tensor)]
        assert canonical[0].tobytes() == canonical[1].tobytes(), name


SPARSE = [-0.0, 0.0, 0.0, -0.0, 0.0, 1.5, -1.5, 2.0**-20, -3.0]
DENSE = [-2.0, -1.0, -0.5, -0.0, 0.0, 0.25, 1.0, 3.0, 7.0]
SPECIAL = [-math.inf, math.inf, math.nan, -0.0, 0.0, 1.0, -1.0]


def round_of(values: list[float], dtypes: list[type], count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    pool = np.array(values, dtype=np.float64)
    return [
        {
            name: rng.choice(pool, size=shape).astype(dtypes[index % len(dtypes)])
            for name, shape in SPEC.items()
        }
        for index in range(count)
    ]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([SPARSE, DENSE, SPECIAL]),
    st.lists(st.sampled_from([np.float16, np.float32, np.float64]), min_size=1, max_size=3),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, order_statistics.SORTED_ROWS_UP_TO]),
    st.sampled_from([8, 256, 1 << 20]),
    st.sampled_from([-1.0, 1.0]),
)
def test_median_equals_the_per_client_sign_reading(
    values: list[float],
    dtypes: list[type],
    count: int,
    seed: int,
    sorted_rows_up_to: int,
    block_bytes: int,
    sparse_share: float,
) -> None:
    """Sorted rows and partitioned ones, blocks of one coordinate (some with zeros, some
    without) and blocks of the whole tensor, signs counted client by client (the sparse
    path, taken for every tensor at a share of −1) or per block: the same bytes as the
    reference."""
    deltas = round_of(values, dtypes, count, seed)
    with (
        mock.patch.object(order_statistics, "SORTED_ROWS_UP_TO", sorted_rows_up_to),
        mock.patch.object(order_statistics, "CLIENT_BLOCK_BYTES", block_bytes),
        mock.patch.object(order_statistics, "SPARSE_SHARE", sparse_share),
        np.errstate(invalid="ignore"),
    ):
        median = coordinate_median(deltas, SPEC)
    with np.errstate(invalid="ignore"):
        assert_same_bytes(median, reference_median(deltas, SPEC))


@pytest.mark.parametrize("count", [255, 256, 511, 600])
@pytest.mark.parametrize("values", [SPARSE, DENSE], ids=["sparse", "dense"])
def test_median_of_hundreds_of_clients_equals_the_reference(
    count: int, values: list[float]
) -> None:
    deltas = round_of(values, [np.float32], count, seed=count)
    assert_same_bytes(coordinate_median(deltas, SPEC), reference_median(deltas, SPEC))


def test_sign_counts_do_not_wrap_past_a_byte() -> None:
    """600 clients all sending −0.0: every count is 600, none wrapped at 256."""
    counts = SignCounts.of_clients([np.full(4, -0.0, dtype=np.float32) for _ in range(600)])
    assert counts.below_zero.tolist() == [0] * 4
    assert counts.up_to_zero.tolist() == [600] * 4
    assert counts.sign_bit.tolist() == [600] * 4


@pytest.mark.parametrize("count", [600, 601])
@pytest.mark.parametrize("negative_zeros", [299, 300, 301, 302])
def test_a_zero_median_in_a_dense_tensor_takes_its_sign_from_the_clients(
    count: int, negative_zeros: int
) -> None:
    """Dense updates (never the sparse path) but one coordinate where every client sends a
    zero, ``negative_zeros`` of them −0.0, the first ones, which the selection reorders:
    the zero at each middle position is −0.0 exactly when more clients than that position
    sent −0.0."""
    rng = np.random.default_rng(count + negative_zeros)
    deltas = []
    for client in range(count):
        tensor = rng.normal(size=64).astype(np.float32)
        tensor[17] = -0.0 if client < negative_zeros else 0.0
        deltas.append({"t": tensor})
    assert not order_statistics.mostly_zeros([delta["t"] for delta in deltas])
    median = coordinate_median(deltas, {"t": (64,)})["t"]
    middle = count // 2
    positions = (middle,) if count % 2 else (middle - 1, middle)
    signs = [negative_zeros > position for position in positions]
    assert median[17] == 0.0
    # with an even count, −0.0 and +0.0 at the middle average to +0.0
    assert math.copysign(1.0, median[17]) == (-1.0 if all(signs) else 1.0)
    assert_same_bytes({"t": median}, reference_median(deltas, {"t": (64,)}))


@pytest.mark.parametrize("negative_zeros", [300, 301])
def test_a_zero_median_of_a_majority_of_negative_zeros_is_negative(negative_zeros: int) -> None:
    """601 clients, only zeros: the median is −0.0 exactly when −0.0 fills the middle."""
    deltas = [{"t": np.array([-0.0], dtype=np.float32)} for _ in range(negative_zeros)]
    deltas += [{"t": np.array([0.0], dtype=np.float32)} for _ in range(601 - negative_zeros)]
    (median,) = coordinate_median(deltas, {"t": (1,)})["t"]
    assert median == 0.0
    assert math.copysign(1.0, median) == (-1.0 if negative_zeros > 300 else 1.0)

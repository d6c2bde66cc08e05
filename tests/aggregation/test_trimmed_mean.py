"""The trimmed mean's sums: the kept values of each coordinate added in ascending order,
bit for bit as a plain float64 sort of the stacked updates followed by one elementwise
add per kept rank; and the aggregate's bytes on fixed inputs, pinned."""

import hashlib
import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.aggregation import AggregationContext, ClientUpdate, TrimmedMean, order_statistics
from flare.aggregation.coordinatewise import ascending_trimmed_sums

SPECIAL_VALUES = [-0.0, 0.0, 1.0, -1.0, 2.5, 2.5, math.inf, -math.inf, math.nan, 1e-40, 3e38]
DTYPES = [np.float16, np.float32, np.float64, np.longdouble]


def plain_trimmed_sums(tensors: list[np.ndarray], trimmed: int) -> np.ndarray:
    """Every client widened to float64, stacked, sorted along the clients; the kept ranks
    added in ascending order, starting from +0.0."""
    ordered = np.sort(np.stack([np.asarray(t, dtype=np.float64).reshape(-1) for t in tensors]), 0)
    sums = np.zeros(ordered.shape[1], dtype=np.float64)
    for rank in range(trimmed, len(tensors) - trimmed):
        sums = np.add(sums, ordered[rank])
    return sums


@st.composite
def client_tensors(draw: st.DrawFn) -> tuple[list[np.ndarray], int]:
    """Values drawn from the special ones and plain normals, each client in a width of its
    own; sometimes a client sends another's tensor."""
    count = draw(st.integers(1, 25), label="clients")
    size = draw(st.integers(1, 40), label="coordinates")
    special_share = draw(st.sampled_from([0.0, 0.3, 0.9]), label="special share")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    tensors = []
    for _ in range(count):
        special = rng.choice(np.array(SPECIAL_VALUES), size=size)
        values = np.where(rng.random(size) < special_share, special, rng.normal(size=size))
        with np.errstate(over="ignore"):
            tensors.append(values.astype(draw(st.sampled_from(DTYPES))))
    if count > 1 and draw(st.booleans(), label="duplicate"):
        tensors[1] = tensors[0].copy()
    return tensors, draw(st.integers(0, (count - 1) // 2), label="trimmed")


def same_bytes_but_nan_payloads(left: np.ndarray, right: np.ndarray) -> bool:
    """Equal bytes wherever either holds a number; NaN in the same places. Which of two
    NaNs an add returns is up to the kernel, and no NaN leaves the rule: a client holding
    NaN or an infinity is refused by its distance to the result."""
    nan = np.isnan(left)
    if not np.array_equal(nan, np.isnan(right)):
        return False
    return np.where(nan, 0.0, left).tobytes() == np.where(nan, 0.0, right).tobytes()


@settings(max_examples=300, deadline=None)
@given(client_tensors(), st.sampled_from([8, 64, 1 << 20]))
def test_sums_equal_a_plain_sort_and_ascending_adds(case: tuple, block_bytes: int) -> None:
    """Signed zeros, duplicates, infinities, NaN and mixed widths: the bytes match at
    every block size, so at every block boundary."""
    tensors, trimmed = case
    with np.errstate(over="ignore", invalid="ignore"):
        expected = plain_trimmed_sums(tensors, trimmed)
        with mock.patch.object(order_statistics, "CLIENT_BLOCK_BYTES", block_bytes):
            fast = ascending_trimmed_sums(tensors, trimmed)
    assert fast.dtype == np.float64
    assert same_bytes_but_nan_payloads(fast, expected)


FIXED_CLIENTS = np.array(
    [
        [-0.0, 0.0, 1.0, math.inf, 2.5, -1.0],
        [0.0, -0.0, 1.0, 3.0, 2.5, -1.0],
        [-0.0, -0.0, 1.0, -math.inf, 2.5, 1e-40],
        [0.0, 0.0, -2.0, 3.0, 0.1, -3e38],
        [-0.0, -0.0, 1.0, 3.0, 2.5, 3e38],
        [0.0, -0.0, 0.5, math.inf, -0.0, 0.2],
        [-0.0, 0.0, 1.0, 4.0, 2.5, 0.3],
    ]
)
"""Seven clients at six coordinates: zeros of both signs only, duplicates, infinities of
both signs (kept when at most one value per end is trimmed), and values that cancel only
when added in ascending order."""


@pytest.mark.parametrize("trimmed", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_bytes", [8, 1 << 20])
def test_sums_of_fixed_inputs_equal_a_plain_sort_and_ascending_adds(
    trimmed: int, dtype: type, block_bytes: int
) -> None:
    tensors = [row.astype(dtype) for row in FIXED_CLIENTS]
    with np.errstate(over="ignore", invalid="ignore"):
        expected = plain_trimmed_sums(tensors, trimmed)
        with mock.patch.object(order_statistics, "CLIENT_BLOCK_BYTES", block_bytes):
            fast = ascending_trimmed_sums(tensors, trimmed)
    assert same_bytes_but_nan_payloads(fast, expected)
    assert not np.signbit(fast[:2]).any() and (fast[:2] == 0.0).all()


def test_no_sum_is_negative_zero() -> None:
    """Sums start at +0.0, so a coordinate whose kept values are all −0.0 sums to +0.0."""
    tensors = [np.array([-0.0, -0.0], dtype=np.float32) for _ in range(5)]
    sums = ascending_trimmed_sums(tensors, 1)
    assert not np.signbit(sums).any() and (sums == 0.0).all()


def fixed_round() -> tuple[list[ClientUpdate], AggregationContext]:
    """31 clients, zeros of both signs, copies of a neighbour, one float64 and one float16."""
    rng = np.random.default_rng(13)
    spec = {"w": (70, 30), "b": (30,)}
    deltas: list[dict[str, np.ndarray]] = []
    for client in range(31):
        delta = {
            name: rng.normal(0.0, 0.05, size=shape).astype(np.float32)
            for name, shape in spec.items()
        }
        if client % 5 == 0:
            delta["w"][client % 7] = 0.0
            delta["b"][:4] = -0.0
        if client % 6 == 1:
            delta = {name: tensor.copy() for name, tensor in deltas[-1].items()}
        deltas.append(delta)
    deltas[3] = {name: tensor.astype(np.float64) for name, tensor in deltas[3].items()}
    deltas[4] = {name: tensor.astype(np.float16) for name, tensor in deltas[4].items()}
    updates = [ClientUpdate(f"c{i}", delta, 10 + i) for i, delta in enumerate(deltas)]
    return updates, AggregationContext({n: np.zeros(s, np.float32) for n, s in spec.items()})


PINNED_DIGESTS = {
    0.0: "86488bb464ac7a3595265a8d17b608650b440de9f174682e60c132d6e8e0480d",
    0.1: "199b49188480955ebd7aeb37266532dbb488ebff2bd7476796a2cb9c1651007d",
    0.3: "4898b72f12600ab14bd3910bfda73f3101ba0a88c9d87307d3182c163873b6a3",
    0.49: "06b071c731ebd84e3c3dcad6daee753f9c1e58c8f47451a98cf9b434cee7dc4d",
}
"""SHA-256 of the aggregate's ``w`` then ``b`` bytes, as the implementation before the
block-transposed sums computed them: committees on older and newer versions agree."""


def test_aggregate_bytes_are_pinned_on_fixed_inputs() -> None:
    updates, context = fixed_round()
    for trim_fraction, digest in PINNED_DIGESTS.items():
        delta = TrimmedMean(trim_fraction).aggregate(updates, context).delta
        assert hashlib.sha256(delta["w"].tobytes() + delta["b"].tobytes()).hexdigest() == digest

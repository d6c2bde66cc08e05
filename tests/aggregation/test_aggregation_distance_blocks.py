"""The distances every accept-all rule reports, computed a block of clients at a time:
bit for bit the pairwise ones at every block size, so at every block boundary."""

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.aggregation import arithmetic
from flare.aggregation.arithmetic import squared_distance, squared_distances_to


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 9),
    st.sampled_from([(1,), (7,), (130,), (3, 45), ()]),
    st.sampled_from([np.float16, np.float32, np.float64, np.longdouble]),
    st.sampled_from([1, 100, 1_500, 1 << 20]),
    st.integers(0, 2**32 - 1),
)
def test_distances_by_blocks_of_clients_equal_pairwise_ones(
    count: int, shape: tuple, dtype: type, block_bytes: int, seed: int
) -> None:
    """Blocks of one client, of a few and of all of them; a tensor of one value, and one
    that does not fill a block evenly."""
    rng = np.random.default_rng(seed)
    spec = {"t": shape, "u": (3,)}

    def tensor(size: tuple) -> np.ndarray:
        return (rng.normal(size=size) * 10).astype(dtype)

    target = {name: tensor(size) for name, size in spec.items()}
    deltas = [{name: tensor(size) for name, size in spec.items()} for _ in range(count)]
    with mock.patch.object(arithmetic, "DISTANCE_BLOCK_BYTES", block_bytes):
        batched = squared_distances_to(target, deltas, spec)
    assert batched == [squared_distance(delta, target, spec) for delta in deltas]


def test_non_finite_values_reach_the_distance() -> None:
    """The median and trimmed mean refuse NaN and infinities by the distance alone, so a
    block must carry them through to that client's distance and no other's."""
    spec = {"t": (4,)}
    target = {"t": np.zeros(4, dtype=np.float32)}
    deltas = [{"t": np.ones(4, dtype=np.float32)} for _ in range(5)]
    deltas[1] = {"t": np.array([1.0, np.nan, 1.0, 1.0], dtype=np.float32)}
    deltas[3] = {"t": np.array([1.0, 1.0, -np.inf, 1.0], dtype=np.float32)}
    with mock.patch.object(arithmetic, "DISTANCE_BLOCK_BYTES", 64):
        distances = squared_distances_to(target, deltas, spec)
    assert np.isnan(distances[1]) and distances[3] == np.inf
    assert [distances[i] for i in (0, 2, 4)] == [4.0, 4.0, 4.0]

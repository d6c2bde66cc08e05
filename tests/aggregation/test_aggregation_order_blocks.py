"""How the order statistics split a tensor into blocks of coordinates: at least 1,024
coordinates where four times the block budget holds them, and the same bytes as ordering
the whole stacked round at once, across the block boundaries of a round of 300 clients."""

import numpy as np
import pytest

from flare.aggregation.coordinatewise import ascending_trimmed_sums
from flare.aggregation.order_statistics import block_width, coordinate_median


@pytest.mark.parametrize(
    ("clients", "dtype", "width"),
    [
        (20, np.float32, 13_107),  # 1 MiB of values spans more than 1,024 coordinates
        (300, np.float32, 1_024),  # widened: 1 MiB would span 873
        (1_000, np.float32, 1_024),  # widened: 1 MiB would span 262
        (1_000, np.float64, 524),  # widened as far as 4 MiB allows
        (10_000, np.float32, 104),  # 4 MiB allows only 104
    ],
)
def test_blocks_span_at_least_1024_coordinates_within_four_budgets(
    clients: int, dtype: type, width: int
) -> None:
    assert block_width(clients, np.dtype(dtype)) == width


def round_of(clients: int, size: int, seed: int) -> list[np.ndarray]:
    """Updates around a common direction, a third of them scaled and flipped, with ties."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(0.0, 0.05, size)
    tensors = []
    for client in range(clients):
        update = direction + rng.normal(0.0, 0.02, size)
        tensors.append((-4.0 * update if client % 3 == 0 else update).astype(np.float32))
    tensors[7] = tensors[5].copy()
    return tensors


def test_median_across_widened_blocks_equals_one_sort_of_the_round() -> None:
    """2,600 coordinates of 300 clients: two full blocks of 1,024 and a remainder."""
    tensors = round_of(300, 2_600, seed=3)
    ordered = np.sort(np.stack(tensors).astype(np.float64), axis=0)
    expected = (ordered[149] + ordered[150]) / 2.0
    median = coordinate_median([{"t": tensor} for tensor in tensors], {"t": (2_600,)})["t"]
    assert median.tobytes() == expected.tobytes()


def test_trimmed_sums_across_widened_blocks_equal_one_sort_of_the_round() -> None:
    tensors = round_of(301, 2_600, seed=4)
    ordered = np.sort(np.stack(tensors).astype(np.float64), axis=0)
    expected = np.zeros(2_600)
    for rank in range(90, 301 - 90):
        expected = expected + ordered[rank]
    assert ascending_trimmed_sums(tensors, 90).tobytes() == expected.tobytes()

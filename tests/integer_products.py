"""An integer matrix product summed in another order, to show exactness does not depend on it."""

import numpy as np


def reversed_blocks(left: np.ndarray, right: np.ndarray, block: int = 7) -> np.ndarray:
    """The same product summed block by block, last block first."""
    total = np.zeros((left.shape[0], right.shape[1]))
    for start in reversed(range(0, left.shape[1], block)):
        total = total + left[:, start : start + block] @ right[start : start + block]
    return total

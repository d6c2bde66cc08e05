"""The vectors a colluding bloc forges from the honest updates it knows.

Each function takes the known honest updates as the rows of a ``(k, d)`` matrix and returns
the one ``d``-vector every attacker of the bloc sends. Definitions follow the papers and
their reference code (see ``docs/attacks.md``): the spread σ is the coordinate-wise standard
deviation with ``ddof = 1``, and with a single known update, whose spread is unknown, σ is 0.
"""

from collections.abc import Callable

import numpy as np

MIN_MAX_START = 10.0
"""First γ the min-max / min-sum search tries (Shejwalkar and Houmansadr's code)."""
SEARCH_TOLERANCE = 1e-5
"""The search stops once its last accepted and last tried γ are this close."""


def spread(known: np.ndarray) -> np.ndarray:
    """Coordinate-wise standard deviation (``ddof = 1``) of the rows; 0 for one row."""
    if len(known) < 2:
        return np.zeros(known.shape[1], dtype=np.float64)
    return np.std(known, axis=0, ddof=1)


def alie_vector(known: np.ndarray, z: float) -> np.ndarray:
    """A Little Is Enough (Baruch et al., 2019): ``mean − z·σ`` per coordinate."""
    return known.mean(axis=0) - z * spread(known)


def ipm_vector(known: np.ndarray, epsilon: float) -> np.ndarray:
    """Inner-product manipulation (Xie et al., 2020): ``−ε·mean``."""
    return -epsilon * known.mean(axis=0)


def min_max_vector(known: np.ndarray) -> np.ndarray:
    """Min-max (Shejwalkar and Houmansadr, 2021): ``mean − γ·σ`` with the largest γ whose
    farthest distance to a known update is at most the largest distance between two."""
    threshold = float(np.max(pairwise_sq_distances(known)))
    return perturbed_mean(known, lambda sq: float(np.max(sq)) <= threshold)


def min_sum_vector(known: np.ndarray) -> np.ndarray:
    """Min-sum (same paper): ``mean − γ·σ`` with the largest γ whose summed squared distance
    to the known updates is at most the smallest such sum of any known update."""
    threshold = float(np.min(pairwise_sq_distances(known).sum(axis=1)))
    return perturbed_mean(known, lambda sq: float(np.sum(sq)) <= threshold)


def perturbed_mean(known: np.ndarray, accepts: Callable[[np.ndarray], bool]) -> np.ndarray:
    """``mean + γ·p`` with ``p = −σ`` and the largest γ whose squared distances to the
    known updates ``accepts``."""
    mean = known.mean(axis=0)
    direction = -spread(known)
    gamma = largest_gamma(lambda g: accepts(sq_distances_to(known, mean + g * direction)))
    return mean + gamma * direction


def largest_gamma(accepts: Callable[[float], bool]) -> float:
    """The reference binary search: try γ = 10, move by a halving step up on success and down
    on failure, and return the last γ accepted (0 when none is).

    The constraints are convex in γ and hold at γ = 0, so the accepted γ form an interval
    from 0 and the search converges to its upper end within :data:`SEARCH_TOLERANCE`, or to
    twice the start when the interval reaches past that (its steps sum to the start).
    """
    accepted, tried, step = 0.0, MIN_MAX_START, MIN_MAX_START
    while abs(accepted - tried) > SEARCH_TOLERANCE:
        if accepts(tried):
            accepted = tried
            tried += step / 2
        else:
            tried -= step / 2
        step /= 2
    return accepted


def sq_distances_to(known: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance from ``vector`` to each row of ``known``."""
    return np.sum((known - vector) ** 2, axis=1)


def pairwise_sq_distances(known: np.ndarray) -> np.ndarray:
    """The ``(k, k)`` matrix of squared distances between the rows of ``known``."""
    return np.stack([sq_distances_to(known, row) for row in known])

"""Colluding attacks: a bloc that reads the round's honest updates and sends one forgery.

On a public chain every honest update is readable before the submission window closes.
Each ``*_vector`` function takes the known honest updates as the rows of a ``(k, d)`` matrix
and returns the one ``d``-vector every attacker of the bloc sends. Definitions follow the
papers and their reference code (see ``docs/attacks.md``): the spread σ is the coordinate-wise
standard deviation with ``ddof = 1``, and with a single known update, whose spread is
unknown, σ is 0.
"""

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from flare.aggregation.base import Aggregator, Predictor, Trainer
from flare.errors import ConfigError
from flare.federation.clients import Attack, AttackSituation, LocalUpdate
from flare.tensors import Weights, flatten, spec_of, unflatten

KNOWLEDGE_MODES = ("full", "partial")
"""What a colluding bloc has seen: every honest update of the round, or only its own."""

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


def largest_gamma(accepts: Callable[[float], bool], tolerance: float = SEARCH_TOLERANCE) -> float:
    """The reference binary search: try γ = 10, move by a halving step up on success and down
    on failure, and return the last γ accepted (0 when none is).

    The constraints are convex in γ and hold at γ = 0, so the accepted γ form an interval
    from 0 and the search converges to its upper end within ``tolerance``, or to twice the
    start when the interval reaches past that (its steps sum to the start).
    """
    accepted, tried, step = 0.0, MIN_MAX_START, MIN_MAX_START
    while abs(accepted - tried) > tolerance:
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


@dataclass(frozen=True)
class PublicRound:
    """What anyone can read in a round besides its updates: the model the round starts
    from, the task's validation split (public in its manifest) with the committee's own
    inference, and the task's aggregation rule."""

    global_weights: Weights
    predict: Predictor
    validation_features: np.ndarray
    validation_labels: np.ndarray
    aggregator: Aggregator
    reference_step: Trainer | None = None


class CollusionAttack(Attack):
    """A bloc of attackers that pools what it knows and sends one forged update.

    On a public chain every honest update is readable before the submission window closes,
    so with ``knowledge="full"`` the bloc forges from every participant's honest update of
    the round (its own members' included); with ``"partial"`` from its members' own honest
    updates only. Every member sends the same delta, each with its own true sample count.
    """

    def __init__(self, knowledge: str = "full") -> None:
        if knowledge not in KNOWLEDGE_MODES:
            raise ConfigError(
                f"unknown attack knowledge {knowledge!r}; choose one of "
                f"{', '.join(KNOWLEDGE_MODES)}"
            )
        self.knowledge = knowledge

    @abstractmethod
    def forge_delta(
        self, known: Mapping[str, LocalUpdate], bloc: Sequence[str], public: PublicRound
    ) -> Weights:
        """The delta every member of ``bloc`` sends, from the honest updates the bloc knows
        (by client id, the members' own included) and what the round makes public."""

    def corrupt(self, situation: AttackSituation) -> LocalUpdate:
        raise ConfigError(
            f"{self.name} is a colluding attack: its attackers need the round's honest "
            "updates, which only a simulation's round step hands them"
        )

    def collude(
        self, honest: Mapping[str, LocalUpdate], members: frozenset[str], public: PublicRound
    ) -> dict[str, LocalUpdate]:
        """What each of ``members`` sends, given every participant's honest update.

        ``honest`` holds the round's honest updates as they would be sent, the members'
        included; the result maps each member present in ``honest`` to its forged update,
        under its own sample count (inflated by :attr:`count_factor`).
        """
        present = [client_id for client_id in honest if client_id in members]
        if not present:
            return {}
        sources = (
            honest
            if self.knowledge == "full"
            else {client_id: honest[client_id] for client_id in present}
        )
        forged = self.forge_delta(sources, present, public)
        return {
            client_id: self.claimed(
                LocalUpdate(forged, honest[client_id].num_samples, honest[client_id].train_loss)
            )
            for client_id in present
        }


class VectorAttack(CollusionAttack):
    """A colluding attack whose forgery is a function of the known updates alone."""

    @abstractmethod
    def forge(self, known: np.ndarray) -> np.ndarray:
        """The bloc's vector from the known honest updates, one flattened update a row."""

    def forge_delta(
        self, known: Mapping[str, LocalUpdate], bloc: Sequence[str], public: PublicRound
    ) -> Weights:
        spec = spec_of(next(iter(known.values())).delta)
        return unflatten(self.forge(np.stack([flatten(u.delta) for u in known.values()])), spec)


class AlieAttack(VectorAttack):
    """A Little Is Enough (Baruch et al., 2019): ``mean − z·σ`` coordinate-wise."""

    name = "alie"

    def __init__(self, z: float = 1.5, knowledge: str = "full") -> None:
        super().__init__(knowledge)
        self.z = z

    def forge(self, known: np.ndarray) -> np.ndarray:
        return alie_vector(known, self.z)


class IpmAttack(VectorAttack):
    """Inner-product manipulation (Xie et al., 2020): ``−ε·mean`` of the known updates."""

    name = "ipm"

    def __init__(self, epsilon: float = 0.5, knowledge: str = "full") -> None:
        super().__init__(knowledge)
        self.epsilon = epsilon

    def forge(self, known: np.ndarray) -> np.ndarray:
        return ipm_vector(known, self.epsilon)


class MinMaxAttack(VectorAttack):
    """Min-max (Shejwalkar and Houmansadr, 2021): ``mean − γ·σ``, γ as large as keeps the
    forged update no farther from any known update than the two farthest known updates."""

    name = "min-max"

    def forge(self, known: np.ndarray) -> np.ndarray:
        return min_max_vector(known)


class MinSumAttack(VectorAttack):
    """Min-sum (same paper): ``mean − γ·σ``, γ as large as keeps its summed squared distance
    to the known updates within that of the most central known update."""

    name = "min-sum"

    def forge(self, known: np.ndarray) -> np.ndarray:
        return min_sum_vector(known)

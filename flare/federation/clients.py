"""Clients: honest local training, and the attacks a malicious client can mount.

A client turns the current global weights into an update ΔW = W_local − W_global.
Every attack here is real: it starts from what an honest client would send, or
from training on poisoned data, and corrupts it the way the literature does.

With client-level differential privacy on (:class:`~flare.privacy.LocalDP`), what a
client sends is its delta clipped and noised on the device, before any encoding. An
attacker runs the same client software: the attacks built on the honest update, or on
training with poisoned labels, start from that privatised update.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flare.errors import ConfigError
from flare.federation import collusion
from flare.models.base import ModelAdapter
from flare.privacy import LocalDP
from flare.tensors import Weights, flatten, spec_of, subtract, unflatten

KNOWLEDGE_MODES = ("full", "partial")
"""What a colluding bloc has seen: every honest update of the round, or only its own."""


@dataclass(frozen=True)
class LocalUpdate:
    """What a client computed this round, before encoding."""

    delta: Weights
    num_samples: int
    train_loss: float


class Client:
    """An honest client holding a private shard of training data."""

    def __init__(self, client_id: str, features: np.ndarray, labels: np.ndarray) -> None:
        self.client_id = client_id
        self.features = features
        self.labels = labels

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def local_update(
        self, model: ModelAdapter, global_weights: Weights, *, seed: int
    ) -> LocalUpdate:
        """Train from ``global_weights`` on local data and return the weight delta."""
        return self.train_on(model, global_weights, self.labels, seed)

    def train_on(
        self, model: ModelAdapter, global_weights: Weights, labels: np.ndarray, seed: int
    ) -> LocalUpdate:
        """Train from ``global_weights`` on local features with the given labels."""
        model.set_weights(global_weights)
        result = model.train(self.features, labels, seed=seed)
        delta = subtract(model.get_weights(), global_weights)
        return LocalUpdate(delta=delta, num_samples=result.num_samples, train_loss=result.loss)


@dataclass(frozen=True)
class AttackSituation:
    """Everything an attacker knows when it builds its update: its data, model and round."""

    client: Client
    model: ModelAdapter
    global_weights: Weights
    num_classes: int
    rng: np.random.Generator
    seed: int
    privacy: LocalDP | None = None

    def honest_update(self) -> LocalUpdate:
        """What this client would send if it were honest."""
        return self.as_sent(
            self.client.local_update(self.model, self.global_weights, seed=self.seed)
        )

    def as_sent(self, update: LocalUpdate) -> LocalUpdate:
        """``update`` as the client software sends it: clipped and noised when DP is on."""
        return privatized(update, self.privacy)


class Attack(ABC):
    """How a malicious client corrupts its contribution."""

    name: ClassVar[str]

    @abstractmethod
    def corrupt(self, situation: "AttackSituation") -> LocalUpdate:
        """The malicious update this client sends."""


class NoiseAttack(Attack):
    """The honest update plus i.i.d. Gaussian noise of standard deviation ``sigma``."""

    name = "noise"

    def __init__(self, sigma: float = 0.5) -> None:
        self.sigma = sigma

    def corrupt(self, situation: "AttackSituation") -> LocalUpdate:
        honest = situation.honest_update()
        noisy = {
            name: (d + situation.rng.normal(0.0, self.sigma, d.shape)).astype(np.float32)
            for name, d in honest.delta.items()
        }
        return LocalUpdate(noisy, honest.num_samples, honest.train_loss)


class RandomWeightsAttack(Attack):
    """Replace the model by random weights, each tensor ``scale`` times the global's spread."""

    name = "random"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def corrupt(self, situation: "AttackSituation") -> LocalUpdate:
        delta = {}
        for name, w in situation.global_weights.items():
            spread = float(np.std(w)) or 0.1
            random_w = situation.rng.normal(0.0, self.scale * spread, w.shape)
            delta[name] = (random_w - w).astype(np.float32)
        return LocalUpdate(delta, situation.client.num_samples, float("nan"))


class SignFlipAttack(Attack):
    """The honest update reversed and multiplied by ``scale``: pushes the model uphill."""

    name = "sign-flip"

    def __init__(self, scale: float = 3.0) -> None:
        self.scale = scale

    def corrupt(self, situation: "AttackSituation") -> LocalUpdate:
        honest = situation.honest_update()
        flipped = {n: (-self.scale * d).astype(np.float32) for n, d in honest.delta.items()}
        return LocalUpdate(flipped, honest.num_samples, honest.train_loss)


class ScalingAttack(Attack):
    """The honest update boosted by ``factor`` so that it dominates a plain average."""

    name = "scaling"

    def __init__(self, factor: float = 10.0) -> None:
        self.factor = factor

    def corrupt(self, situation: "AttackSituation") -> LocalUpdate:
        honest = situation.honest_update()
        boosted = {n: (self.factor * d).astype(np.float32) for n, d in honest.delta.items()}
        return LocalUpdate(boosted, honest.num_samples, honest.train_loss)


class LabelFlipAttack(Attack):
    """Train honestly, but on poisoned labels ``y -> C − 1 − y``."""

    name = "label-flip"

    def corrupt(self, situation: "AttackSituation") -> LocalUpdate:
        client = situation.client
        flipped = situation.num_classes - 1 - client.labels
        poisoned = client.train_on(
            situation.model, situation.global_weights, flipped, situation.seed
        )
        return situation.as_sent(poisoned)


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
    def forge(self, known: np.ndarray) -> np.ndarray:
        """The bloc's vector from the known honest updates, one flattened update a row."""

    def corrupt(self, situation: "AttackSituation") -> LocalUpdate:
        raise ConfigError(
            f"{self.name} is a colluding attack: its attackers need the round's honest "
            "updates, which only the offline simulation hands them"
        )

    def collude(
        self, honest: Mapping[str, LocalUpdate], members: frozenset[str]
    ) -> dict[str, LocalUpdate]:
        """What each of ``members`` sends, given every participant's honest update.

        ``honest`` holds the round's honest updates as they would be sent, the members'
        included; the result maps each member present in ``honest`` to its forged update.
        """
        present = [client_id for client_id in honest if client_id in members]
        if not present:
            return {}
        sources = (
            honest
            if self.knowledge == "full"
            else {client_id: honest[client_id] for client_id in present}
        )
        spec = spec_of(next(iter(sources.values())).delta)
        known = np.stack([flatten(update.delta) for update in sources.values()])
        forged = unflatten(self.forge(known), spec)
        return {
            client_id: LocalUpdate(
                forged, honest[client_id].num_samples, honest[client_id].train_loss
            )
            for client_id in present
        }


class AlieAttack(CollusionAttack):
    """A Little Is Enough (Baruch et al., 2019): ``mean − z·σ`` coordinate-wise."""

    name = "alie"

    def __init__(self, z: float = 1.5, knowledge: str = "full") -> None:
        super().__init__(knowledge)
        self.z = z

    def forge(self, known: np.ndarray) -> np.ndarray:
        return collusion.alie_vector(known, self.z)


class IpmAttack(CollusionAttack):
    """Inner-product manipulation (Xie et al., 2020): ``−ε·mean`` of the known updates."""

    name = "ipm"

    def __init__(self, epsilon: float = 0.5, knowledge: str = "full") -> None:
        super().__init__(knowledge)
        self.epsilon = epsilon

    def forge(self, known: np.ndarray) -> np.ndarray:
        return collusion.ipm_vector(known, self.epsilon)


class MinMaxAttack(CollusionAttack):
    """Min-max (Shejwalkar and Houmansadr, 2021): ``mean − γ·σ``, γ as large as keeps the
    forged update no farther from any known update than the two farthest known updates."""

    name = "min-max"

    def forge(self, known: np.ndarray) -> np.ndarray:
        return collusion.min_max_vector(known)


class MinSumAttack(CollusionAttack):
    """Min-sum (same paper): ``mean − γ·σ``, γ as large as keeps its summed squared distance
    to the known updates within that of the most central known update."""

    name = "min-sum"

    def forge(self, known: np.ndarray) -> np.ndarray:
        return collusion.min_sum_vector(known)


def produce_update(
    client: Client,
    model: ModelAdapter,
    global_weights: Weights,
    num_classes: int,
    seed: int,
    attack: Attack | None = None,
    privacy: LocalDP | None = None,
) -> LocalUpdate:
    """What ``client`` sends this round: honest training, or ``attack`` when it has one.

    With ``privacy`` the honest update is clipped and noised before it is returned, so
    the encoder (and PowerSGD's error feedback) only ever sees the privatised delta.
    """
    if attack is None:
        return privatized(client.local_update(model, global_weights, seed=seed), privacy)
    situation = AttackSituation(
        client, model, global_weights, num_classes, np.random.default_rng(seed), seed, privacy
    )
    return attack.corrupt(situation)


def privatized(update: LocalUpdate, privacy: LocalDP | None) -> LocalUpdate:
    """``update`` with its delta clipped and noised by ``privacy`` (unchanged without it)."""
    if privacy is None:
        return update
    return LocalUpdate(privacy.privatize(update.delta), update.num_samples, update.train_loss)


ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (
        NoiseAttack,
        RandomWeightsAttack,
        SignFlipAttack,
        ScalingAttack,
        LabelFlipAttack,
        AlieAttack,
        IpmAttack,
        MinMaxAttack,
        MinSumAttack,
    )
}
WITHOUT_STRENGTH = (LabelFlipAttack, MinMaxAttack, MinSumAttack)
"""Attacks with no main parameter: a given strength is ignored (min-max searches its own)."""


def make_attack(name: str, strength: float | None = None, knowledge: str = "full") -> Attack:
    """Instantiate a named attack; ``strength`` overrides its main parameter, ``knowledge``
    says what a colluding attack's bloc has seen (ignored by the others)."""
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    cls = ATTACKS[name]
    options: dict[str, str] = {"knowledge": knowledge} if issubclass(cls, CollusionAttack) else {}
    if strength is None or cls in WITHOUT_STRENGTH:
        return cls(**options)
    if not np.isfinite(strength) or strength <= 0:
        raise ConfigError(f"attack strength must be a positive number, got {strength}")
    return cls(strength, **options)

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
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from flare.models.base import ModelAdapter
from flare.privacy import LocalDP
from flare.tensors import Weights, as_float32, subtract


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
    """How a malicious client corrupts its contribution.

    ``count_factor`` inflates the sample count every update of the attack claims: a count
    is self-reported, and a rule that weights by the claim hands the attacker that much
    more of the average (``flare.aggregation.counts`` is the defence).
    """

    name: ClassVar[str]
    count_factor: float = 1.0

    @abstractmethod
    def corrupt(self, situation: "AttackSituation") -> LocalUpdate:
        """The malicious update this client computes, with its true sample count."""

    def send(self, situation: "AttackSituation") -> LocalUpdate:
        """What this client sends: the corrupted update under its claimed count."""
        return self.claimed(self.corrupt(situation))

    def claimed(self, update: LocalUpdate) -> LocalUpdate:
        """``update`` with its sample count inflated by :attr:`count_factor`."""
        if self.count_factor == 1.0:
            return update
        return replace(update, num_samples=max(1, round(update.num_samples * self.count_factor)))


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
        flipped = {n: as_float32(-self.scale * d) for n, d in honest.delta.items()}
        return LocalUpdate(flipped, honest.num_samples, honest.train_loss)


class ScalingAttack(Attack):
    """The honest update boosted by ``factor`` so that it dominates a plain average."""

    name = "scaling"

    def __init__(self, factor: float = 10.0) -> None:
        self.factor = factor

    def corrupt(self, situation: "AttackSituation") -> LocalUpdate:
        honest = situation.honest_update()
        boosted = {n: as_float32(self.factor * d) for n, d in honest.delta.items()}
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
    return attack.send(situation)


def privatized(update: LocalUpdate, privacy: LocalDP | None) -> LocalUpdate:
    """``update`` with its delta clipped and noised by ``privacy`` (unchanged without it)."""
    if privacy is None:
        return update
    return LocalUpdate(privacy.privatize(update.delta), update.num_samples, update.train_loss)

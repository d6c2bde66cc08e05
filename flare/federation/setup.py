"""Build everything a run needs from its configuration: data, clients, model, codec, rule."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from flare.aggregation import make_aggregator
from flare.aggregation.base import Aggregator
from flare.compression import make_codec
from flare.compression.base import Codec
from flare.data import Dataset, load_dataset, partition
from flare.federation.attacks import make_attack
from flare.federation.clients import Attack, Client
from flare.federation.config import SimulationConfig
from flare.models import (
    ExactPredictor,
    TorchModelAdapter,
    TrainingConfig,
    UnsupportedLayerError,
    build_model,
)
from flare.models.exact_training import ExactReferenceStep, exact_reference_step
from flare.privacy import DPParams, LocalDP, PrivacyLedger, resolve_dp_params
from flare.tensors import ModelSpec, Weights, spec_of

ModelBuilder = Callable[[int, int], nn.Module]
"""``builder(num_features, num_classes) -> nn.Module``: a user's own model."""

log = logging.getLogger(__name__)

NOISE_STREAM = 0x4450
"""Keeps a simulated device's DP noise independent of its training randomness."""


@dataclass
class Federation:
    """The cast of a run: who holds which data, who attacks, and the shared machinery."""

    config: SimulationConfig
    dataset: Dataset
    clients: list[Client]
    malicious_ids: frozenset[str]
    attack: Attack
    trainer: TorchModelAdapter
    evaluator: TorchModelAdapter
    initial_weights: Weights
    codec: Codec
    aggregator: Aggregator
    predictor: ExactPredictor | None
    """Exact inference for the MI filter; None for a user model it cannot run."""
    privacy: DPParams | None = None
    privacy_ledger: PrivacyLedger | None = None
    reference_step: ExactReferenceStep | None = None
    """The MI filter's exact reference step; None for a model it cannot train exactly."""

    @property
    def spec(self) -> ModelSpec:
        return spec_of(self.initial_weights)

    def local_dp(self, seed: int) -> LocalDP | None:
        """A simulated device's DP step for the update it trains with ``seed`` (None: DP off).

        The noise follows from the run's seed, so a run is reproducible, and whoever knows
        the seed can subtract it: simulated noise protects nothing. Real devices draw
        theirs from the operating system (see ``flare participant run``).
        """
        if self.privacy is None:
            return None
        return LocalDP(self.privacy, np.random.default_rng([seed, NOISE_STREAM]))

    def account_round(self, senders: list[str]) -> dict[str, Any] | None:
        """Count one release per sender; ε at δ so far, max and per client (None: DP off)."""
        if self.privacy_ledger is None:
            return None
        return self.privacy_ledger.record_round(senders)

    def privacy_summary(self) -> dict[str, Any] | None:
        """The DP mechanism and accountant of this run, for its report."""
        return None if self.privacy_ledger is None else self.privacy_ledger.describe()

    def predict(self, weights: Weights, features: np.ndarray) -> np.ndarray:
        """Inference with ``weights``: what the MI filter runs on the validation split.

        Exact, as the committee's, unless the model has layers exact inference lacks.
        """
        if self.predictor is not None:
            return self.predictor.predict(weights, features)
        self.evaluator.set_weights(weights)
        return self.evaluator.predict(features)


def build_federation(
    config: SimulationConfig, model_builder: ModelBuilder | None = None
) -> Federation:
    """Load and split the data, create clients and pick the attackers, all from ``config.seed``."""
    dataset = load_dataset(config.dataset, seed=config.seed)
    rng = np.random.default_rng([config.seed, 1])
    shards = partition(
        dataset.train_labels, config.clients, config.partition, rng=rng, alpha=config.alpha
    )
    clients = [
        Client(f"client-{i}", dataset.train_features[idx], dataset.train_labels[idx])
        for i, idx in enumerate(shards)
    ]
    attackers = rng.choice(config.clients, size=config.malicious, replace=False)
    training = TrainingConfig(
        epochs=config.local_epochs, batch_size=config.batch_size, learning_rate=config.learning_rate
    )

    def new_module() -> nn.Module:
        if model_builder is None:
            return build_model(
                config.model, dataset.num_features, dataset.num_classes, seed=config.seed
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            return model_builder(dataset.num_features, dataset.num_classes)

    trainer = TorchModelAdapter(new_module(), training)
    try:
        predictor: ExactPredictor | None = ExactPredictor(trainer.module)
    except UnsupportedLayerError as exc:
        # One process labels every candidate here, so float32 labels agree with themselves.
        log.warning("%s: the MI filter uses float32 inference instead of exact inference", exc)
        predictor = None
    codec_params = {"rank": config.rank} if config.codec == "powersgd" else {}
    # A client publishes at most one update per round, so a target ε is spread over them all.
    privacy = resolve_dp_params(
        config.dp_clip,
        config.dp_noise_multiplier,
        config.dp_epsilon,
        config.dp_delta,
        config.rounds,
    )
    return Federation(
        config=config,
        dataset=dataset,
        clients=clients,
        malicious_ids=frozenset(clients[i].client_id for i in attackers),
        attack=make_attack(
            config.attack,
            config.attack_strength,
            config.attack_knowledge,
            config.attack_count_factor,
        ),
        trainer=trainer,
        evaluator=TorchModelAdapter(new_module(), training),
        initial_weights=trainer.get_weights(),
        codec=make_codec(config.codec, **codec_params),
        aggregator=make_aggregator(config.aggregator, **config.aggregator_params),
        predictor=predictor,
        reference_step=exact_reference_step(trainer.module),
        privacy=privacy,
        privacy_ledger=None if privacy is None else PrivacyLedger(privacy, config.dp_delta),
    )

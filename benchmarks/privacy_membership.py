"""The privacy benchmark's membership-inference attack on published updates, and the largest
AUC any attack can reach under (ε, δ)-DP (see bench_privacy.py)."""

import math
from typing import Any

import numpy as np
import torch
from privacy_settings import CLIP, DELTA, EXP_LIMIT, MODEL
from sklearn.metrics import roc_auc_score

from flare.compression import decode_update
from flare.compression.base import UpdateBinding
from flare.federation.config import SimulationConfig
from flare.federation.setup import build_federation
from flare.privacy import DPParams, calibrate_noise_multiplier, epsilon_after, privatize
from flare.tensors import add


def max_auc_under_dp(epsilon: float, delta: float) -> float:
    """The largest ROC AUC any membership test can reach against an (ε, δ)-DP release.

    (ε, δ)-DP confines every test's ROC curve to TPR ≤ e^ε·FPR + δ and, swapping the two
    worlds, 1 − FPR ≤ e^ε·(1 − TPR) + δ; the area under that envelope is the bound.
    """
    if epsilon > EXP_LIMIT:
        return 1.0  # e^ε overflows a float; the envelope is the whole square to within 1e-300
    fpr = np.linspace(0.0, 1.0, 200_001)
    envelope = np.minimum.reduce(
        [
            np.ones_like(fpr),
            math.exp(epsilon) * fpr + delta,
            1.0 - math.exp(-epsilon) * (1.0 - delta - fpr),
        ]
    )
    return float(np.trapezoid(np.clip(envelope, 0.0, 1.0), fpr))


def membership_attack(
    clients: int, local_epochs: int, epsilons: tuple[float, ...], draws: int, seed: int
) -> tuple[list[dict[str, Any]], float]:
    """AUC of a loss-threshold attack on each client's published round-1 update.

    Each client trains from the initial global model; its update is privatised at the
    noise multiplier that spends exactly ε on this one release (or sent raw: no DP, or
    only clipped), encoded as the device would, and decoded as the attacker would from
    IPFS. The attacker adds it to the global model and ranks samples by loss. Returns a
    row per setting and the clients' mean number of samples.
    """
    config = SimulationConfig(
        dataset="digits",
        model=MODEL,
        clients=clients,
        malicious=0,
        local_epochs=local_epochs,
        seed=seed,
    )
    federation = build_federation(config)
    dataset, spec = federation.dataset, federation.spec
    global_weights = federation.initial_weights
    settings: list[tuple[str, float | None, DPParams | None]] = [
        ("no DP", None, None),
        ("clip only", math.inf, DPParams(CLIP, 0.0)),
    ]
    for epsilon in epsilons:
        z = calibrate_noise_multiplier(epsilon, DELTA, releases=1)
        settings.append((f"ε = {epsilon:g}", epsilon, DPParams(CLIP, z)))
    aucs: dict[str, list[float]] = {label: [] for label, _, _ in settings}
    choose = np.random.default_rng([seed, 7])
    for index, client in enumerate(federation.clients):
        raw = client.local_update(federation.trainer, global_weights, seed=index).delta
        outsiders = choose.choice(len(dataset.test_labels), size=client.num_samples, replace=False)
        features = np.concatenate([client.features, dataset.test_features[outsiders]])
        labels = np.concatenate([client.labels, dataset.test_labels[outsiders]])
        membership = np.r_[np.ones(client.num_samples), np.zeros(len(outsiders))]
        for label, _, params in settings:
            for draw in range(draws if params and params.noise_multiplier else 1):
                sent = raw
                if params is not None:
                    noise = np.random.default_rng([seed, index, draw, 11])
                    sent = privatize(raw, params, noise)
                published = published_delta(federation, sent, client.client_id, spec)
                losses = per_sample_loss(
                    federation, add(global_weights, published), features, labels
                )
                aucs[label].append(float(roc_auc_score(membership, -losses)))
    rows = []
    for label, epsilon, params in settings:
        values = np.array(aucs[label])
        spent = None if params is None else epsilon_after(1, params.noise_multiplier, DELTA)
        rows.append(
            {
                "setting": label,
                "epsilon": epsilon,
                "noise_multiplier": None if params is None else params.noise_multiplier,
                "accountant_epsilon": spent,
                "auc_mean": float(values.mean()),
                "auc_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "auc_max": float(values.max()),
                "attacks": len(values),
                "auc_bound": 1.0 if spent is None else max_auc_under_dp(spent, DELTA),
            }
        )
    return rows, float(np.mean([c.num_samples for c in federation.clients]))


def published_delta(federation, delta, sender: str, spec) -> dict[str, np.ndarray]:
    """What the attacker reads: the update encoded as the device sends it, then decoded."""
    encoder = federation.codec.new_encoder(spec, 0)
    binding = UpdateBinding(sender, "bench", 1, 0, "initial", 1)
    return decode_update(encoder.encode(delta, binding), spec).delta


def per_sample_loss(federation, weights, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each sample under ``weights``: the attack's score (lower: member)."""
    federation.evaluator.set_weights(weights)
    module = federation.evaluator.module
    module.eval()
    with torch.no_grad():
        logits = module(torch.as_tensor(features, dtype=torch.float32))
        losses = torch.nn.functional.cross_entropy(
            logits, torch.as_tensor(labels, dtype=torch.int64), reduction="none"
        )
    return losses.numpy().astype(np.float64)

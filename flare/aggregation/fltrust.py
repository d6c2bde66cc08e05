"""FLTrust (Cao et al., NDSS 2021): trust by direction relative to the server's own update.

The server trains the current global model on a small root set (here the task's public
validation split) to get ``g₀``. Each client update ``gᵢ`` earns trust
``sᵢ = ReLU(cos(gᵢ, g₀))`` and is rescaled to ``‖g₀‖``; the aggregate is
``Σ sᵢ·(‖g₀‖/‖gᵢ‖)·gᵢ / Σ sᵢ``. Claimed counts play no part: influence comes from the
direction alone, and no update can be longer than ``g₀``.

Norms are rounded to nine significant digits and cosines to 1e-9 before they decide
trust; sums follow :mod:`flare.aggregation.arithmetic`. ``g₀`` comes from the context's
``train`` function, so the aggregate is reproducible exactly as far as that training is.
"""

from collections.abc import Sequence

import numpy as np

from flare.aggregation.arithmetic import (
    dot,
    l2_norm,
    round_score,
    validate_updates,
    weighted_average,
    zeros_like_spec,
)
from flare.aggregation.base import (
    AggregationContext,
    AggregationError,
    AggregationResult,
    Aggregator,
    ClientUpdate,
)
from flare.tensors import Weights


class FLTrust(Aggregator):
    """Trust-weighted mean of updates rescaled to the server update's norm."""

    name = "fltrust"
    bitwise_portable = False  # g₀ comes from float32 training, whose bits vary by CPU

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        spec = validate_updates(updates, context.global_weights)
        server_update = _server_update(context)
        validate_updates([ClientUpdate("server", server_update, 1)], context.global_weights)
        server_norm = l2_norm(server_update, spec)
        scores: dict[str, dict[str, float]] = {}
        trusts: list[float] = []
        scales: list[float] = []
        for update in updates:
            norm = l2_norm(update.delta, spec)
            cosine = 0.0
            if norm > 0 and server_norm > 0:
                cosine = round_score(dot(update.delta, server_update, spec) / (norm * server_norm))
            trust = max(cosine, 0.0)
            trusts.append(trust)
            scales.append(server_norm / norm if norm > 0 else 0.0)
            scores[update.client_id] = {"cosine_to_server": cosine, "trust": trust, "norm": norm}
        kept = [i for i, trust in enumerate(trusts) if trust > 0]
        reasons = {
            u.client_id: (
                f"cosine to the server update {scores[u.client_id]['cosine_to_server']:.4f} "
                "is not positive: trust 0"
            )
            for u, trust in zip(updates, trusts, strict=True)
            if trust <= 0
        }
        notes = [f"server update norm {server_norm:.6g}"]
        if kept:
            delta = weighted_average(
                [updates[i].delta for i in kept],
                [trusts[i] for i in kept],
                spec,
                scales=[scales[i] for i in kept],
            )
        else:
            delta = zeros_like_spec(spec)
            notes.append("no update points along the server update: the aggregate is zero")
        return AggregationResult(
            delta=delta,
            accepted=[updates[i].client_id for i in kept],
            flagged=[u.client_id for u in updates if u.client_id in reasons],
            scores=scores,
            reasons=reasons,
            notes=notes,
        )


def _server_update(context: AggregationContext) -> Weights:
    if context.train is None:
        raise AggregationError("FLTrust needs a train function in the context for its root set")
    if context.validation_features is None or context.validation_labels is None:
        raise AggregationError("FLTrust needs the labelled validation split as its root set")
    # a copy: a trainer that updates in place must not touch the round's global model
    start = {name: np.array(tensor, copy=True) for name, tensor in context.global_weights.items()}
    return dict(context.train(start, context.validation_features, context.validation_labels))

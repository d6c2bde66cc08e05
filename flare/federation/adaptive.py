"""``adaptive-mi``: a colluding bloc that runs the MI filter itself before it submits.

Everything the filter decides from is public in Flare: the rule and its constants (the
task's manifest), the validation split (on IPFS, named by the manifest), the model the round
starts from, and, before the submission window closes, every honest update of the round.
So the bloc can recompute the committee's decision for any update it considers sending.

It searches two malicious directions, ALIE's and min-max's ``mean − γ·σ`` and IPM's
``−γ·mean``: for each, the largest γ at which the filter, given the honest updates it knows
plus one copy of the candidate per member, trusts every copy (the reference binary search
of :func:`flare.federation.collusion.largest_gamma`, to :data:`GAMMA_TOLERANCE`). Of the
candidates that pass, it sends the one whose resulting aggregate labels the validation
split worst: the most damaging update that still gets through.

With ``knowledge="partial"`` the bloc knows only its own honest updates; they stand in for
the rest of the round in its rehearsal of the filter.
"""

import hashlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from flare.aggregation.base import AggregationContext, AggregationResult, ClientUpdate
from flare.aggregation.mi_filter import MIFilter
from flare.federation.clients import LocalUpdate
from flare.federation.collusion import CollusionAttack, PublicRound, largest_gamma, spread
from flare.tensors import Weights, add, flatten, spec_of, unflatten

GAMMA_TOLERANCE = 0.01
"""The search for γ stops this close to the largest γ that passes: a finer γ buys little
damage for many more rehearsals of the filter (each labels the validation split once per
update)."""


class AdaptiveMiAttack(CollusionAttack):
    """The strongest ALIE or IPM update that the round's MI filter still trusts."""

    name = "adaptive-mi"

    def forge_delta(
        self, known: Mapping[str, LocalUpdate], bloc: Sequence[str], public: PublicRound
    ) -> Weights:
        spec = spec_of(next(iter(known.values())).delta)
        rows = np.stack([flatten(update.delta) for update in known.values()])
        mean, sigma = rows.mean(axis=0), spread(rows)
        rehearsal = FilterRehearsal(known, bloc, public)
        directions: list[Callable[[float], np.ndarray]] = [
            lambda gamma: mean - gamma * sigma,
            lambda gamma: -gamma * mean,
        ]
        best: tuple[float, np.ndarray] | None = None
        for direction in directions:
            gamma = largest_gamma(
                lambda g, d=direction: rehearsal.passes(unflatten(d(g), spec)), GAMMA_TOLERANCE
            )
            candidate = unflatten(direction(gamma), spec)
            if not rehearsal.passes(candidate):
                continue
            accuracy = rehearsal.validation_accuracy_after(candidate)
            if best is None or accuracy < best[0]:
                best = (accuracy, direction(gamma))
        # when nothing passes, the honest mean is the least conspicuous thing to send
        return unflatten(mean if best is None else best[1], spec)


class FilterRehearsal:
    """The round as the bloc expects the committee to see it, for any candidate it sends."""

    def __init__(
        self, known: Mapping[str, LocalUpdate], bloc: Sequence[str], public: PublicRound
    ) -> None:
        members = set(bloc)
        others = {cid: update for cid, update in known.items() if cid not in members} or known
        self.honest = [ClientUpdate(cid, u.delta, u.num_samples) for cid, u in others.items()]
        claims = [update.num_samples for update in known.values()]
        self.copies = [f"bloc-{i}" for i in range(len(bloc))]
        self.claim = max(1, round(float(np.mean(claims))))
        self.rule = public.aggregator if isinstance(public.aggregator, MIFilter) else MIFilter()
        self.public = public
        self.labels: dict[bytes, np.ndarray] = {}
        self._reference: Weights | None = None
        self.context = AggregationContext(
            global_weights=public.global_weights,
            predict=self.predict,
            validation_features=public.validation_features,
            validation_labels=public.validation_labels,
            reference_step=None if public.reference_step is None else self.reference_step,
        )

    def predict(self, weights: Weights, features: np.ndarray) -> np.ndarray:
        """The committee's labels, remembered per model: the honest candidates and the
        bloc's copies are labelled once however many times the search rehearses."""
        digest = hashlib.sha256()
        for array in weights.values():
            digest.update(np.ascontiguousarray(array).tobytes())
        key = digest.digest()
        if key not in self.labels:
            self.labels[key] = self.public.predict(weights, features)
        return self.labels[key]

    def reference_step(self, weights: Weights, features: np.ndarray, labels: np.ndarray) -> Weights:
        """The committee's exact reference step, computed once: every rehearsal asks for it
        from the same model on the same split."""
        if self._reference is None:
            assert self.public.reference_step is not None  # the context names this otherwise
            self._reference = self.public.reference_step(weights, features, labels)
        return self._reference

    def result(self, candidate: Weights) -> AggregationResult:
        sent = [ClientUpdate(cid, candidate, self.claim) for cid in self.copies]
        return self.rule.aggregate([*self.honest, *sent], self.context)

    def passes(self, candidate: Weights) -> bool:
        """Whether the filter would trust every copy of ``candidate``."""
        if not all(np.isfinite(array).all() for array in candidate.values()):
            return False
        return set(self.copies) <= set(self.result(candidate).accepted)

    def validation_accuracy_after(self, candidate: Weights) -> float:
        """Validation accuracy of the model the round would produce with ``candidate`` in."""
        weights = add(self.public.global_weights, self.result(candidate).delta)
        predicted = np.asarray(self.predict(weights, self.public.validation_features))
        return float(np.mean(predicted == self.public.validation_labels))

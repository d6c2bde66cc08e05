"""The aggregation strategy interface (modelled on Flower's ``Strategy``).

An aggregator turns the round's decoded client updates into one global delta.
It is configuration only; everything it needs per round comes in through
:class:`AggregationContext`. Results must be a pure function of the inputs:
the committee recomputes them and compares bytes.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from flare.errors import FlareError
from flare.tensors import Weights

Predictor = Callable[[Weights, np.ndarray], np.ndarray]
"""``predict(weights, features) -> int64 labels``: inference with the round's model."""

Trainer = Callable[[Weights, np.ndarray, np.ndarray], Weights]
"""``train(weights, features, labels) -> delta``: local training from ``weights`` on the
given samples, returning the update a client would send (FLTrust's server update)."""


class AggregationError(FlareError, ValueError):
    """The round's inputs cannot be aggregated: no updates, wrong shapes, missing context."""


@dataclass(frozen=True)
class ClientUpdate:
    """One decoded client update, in submission order."""

    client_id: str
    delta: Weights
    num_samples: int


@dataclass(frozen=True)
class AggregationContext:
    """Per-round inputs beyond the updates themselves."""

    global_weights: Weights
    predict: Predictor | None = None
    validation_features: np.ndarray | None = None
    validation_labels: np.ndarray | None = None
    train: Trainer | None = None
    """Only FLTrust trains; its aggregate is as reproducible as this function is."""
    seed: int = 0
    """The attempt's public seed, for rules that shuffle (bucketing)."""
    reference_step: Trainer | None = None
    """A step from ``global_weights`` on the validation split that every machine computes
    alike (:class:`flare.models.exact_training.ExactReferenceStep`): the MI filter's
    reference, which no submitter moves. None where the model cannot be trained exactly."""


@dataclass
class AggregationResult:
    """The aggregate and the reasons behind it.

    ``scores`` maps each client id to named scores (e.g. ``{"mi": 2.91}``), so a
    report can say who was filtered and why. ``reasons`` says, for each flagged
    client, in one line, why it was left out; ``notes`` holds round-level remarks
    (for example that nobody was trusted and the delta is zero).
    """

    delta: Weights
    accepted: list[str]
    flagged: list[str]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Aggregator(ABC):
    """A robust or plain aggregation rule."""

    name: ClassVar[str]
    bitwise_portable: ClassVar[bool] = True
    """Whether every machine computes the same bytes; a committee can only run such rules."""

    @abstractmethod
    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        """Combine ``updates`` (non-empty, in submission order) into one delta."""


class AggregationStream(ABC):
    """One round's aggregate, built from its updates one at a time in submission order."""

    @abstractmethod
    def add(self, update: ClientUpdate) -> None:
        """Take the next update; the stream need not keep it once this returns."""

    @abstractmethod
    def finish(self) -> AggregationResult:
        """The round's result, once every announced update was added."""


class StreamingAggregator(Aggregator):
    """A rule that can aggregate a round holding one update at a time, not all of them.

    It learns up front who submits, in order, and what each claims: a weight may depend on
    the whole round's claims (a count capped at their median). Its :meth:`aggregate` is
    the stream fed the whole round, so both paths give the same bytes. Rules that compare
    updates with each other (Krum, the median, the MI filter) have no such path.
    """

    @abstractmethod
    def open_stream(
        self, claims: Sequence[tuple[str, int]], context: AggregationContext
    ) -> AggregationStream:
        """A stream expecting exactly the updates of ``claims`` (client id, claimed
        sample count), in that order."""

    def aggregate(
        self, updates: Sequence[ClientUpdate], context: AggregationContext
    ) -> AggregationResult:
        stream = self.open_stream([(u.client_id, u.num_samples) for u in updates], context)
        for update in updates:
            stream.add(update)
        return stream.finish()

"""The round aggregate as a pure function of chain data and the blobs it names.

A committee member, a proposer and an auditor all call :func:`compute_aggregate`; given
the same chain and store they get the same bytes, hence the same CID. Nothing here
depends on who runs it: the task's manifest (on the store, named on chain) says which
model and which aggregation rule, the chain says which updates were submitted in which
order, and the store returns each blob only after checking it against its CID.
"""

from dataclasses import dataclass, field

import numpy as np

from flare.aggregation import make_aggregator
from flare.aggregation.base import AggregationContext, Aggregator, ClientUpdate
from flare.chain import ChainConnector, ContentRef, encode_accepted
from flare.chain.types import Submission
from flare.compression import decode_update
from flare.compression.base import MalformedUpdateError
from flare.federation.protocol.artifacts import (
    TaskBundle,
    decode_manifest,
    decode_model,
    encode_model,
)
from flare.models import TorchModelAdapter, build_model
from flare.storage import StorageProvider, compute_cid
from flare.storage.errors import StorageError
from flare.tensors import ModelSpec, Weights, add, spec_of


def binding_label(chain: ChainConnector, task_id: int) -> str:
    """The ``task`` an update binds itself to: chain, contract and task id together."""
    return f"{chain.chain_id}:{chain.contract_address}:{task_id}"


@dataclass
class TaskContext:
    """What stays fixed across a task's rounds, loaded once from chain and store."""

    task_id: int
    label: str
    bundle: TaskBundle
    spec: ModelSpec
    aggregator: Aggregator
    evaluator: TorchModelAdapter

    def predict(self, weights: Weights, features: np.ndarray) -> np.ndarray:
        self.evaluator.set_weights(weights)
        return self.evaluator.predict(features)


def load_task_context(chain: ChainConnector, store: StorageProvider, task_id: int) -> TaskContext:
    """Read the task's manifest from the store and build its model and aggregation rule."""
    task = chain.task(task_id)
    bundle = decode_manifest(store.get(task.validation_set.to_cid()))
    manifest = bundle.manifest
    evaluator = TorchModelAdapter(
        build_model(manifest.model, manifest.num_features, manifest.num_classes, seed=0)
    )
    return TaskContext(
        task_id=task_id,
        label=binding_label(chain, task_id),
        bundle=bundle,
        spec=spec_of(evaluator.get_weights()),
        aggregator=make_aggregator(manifest.aggregator, **manifest.aggregator_params),
        evaluator=evaluator,
    )


@dataclass
class RoundAggregate:
    """The aggregate of one round attempt and the reasons behind it."""

    model: ContentRef
    model_blob: bytes
    weights: Weights
    accepted_bitmap: bytes
    submissions: list[Submission]
    accepted: list[str]
    flagged: list[str]
    rejected: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def compute_aggregate(
    chain: ChainConnector,
    store: StorageProvider,
    context: TaskContext,
    round_number: int,
    attempt: int,
    aggregator: Aggregator | None = None,
) -> RoundAggregate:
    """Decode the attempt's updates in submission order, filter, average, serialise.

    ``aggregator`` overrides the task's rule; only a dishonest member has reason to.
    """
    opened = chain.round_opened(context.task_id, round_number, attempt)
    base_cid = opened.base_model.to_cid()
    base = decode_model(store.get(base_cid), context.spec)
    submissions = chain.submissions(context.task_id, round_number, attempt)
    updates: list[ClientUpdate] = []
    rejected: dict[str, str] = {}
    for submission in submissions:
        expected = (context.label, round_number, attempt, base_cid, submission.sample_count)
        reason = None
        try:
            decoded = decode_update(store.get(submission.update.to_cid()), context.spec)
        except (StorageError, MalformedUpdateError) as exc:
            reason = str(exc)
        else:
            b = decoded.binding
            if b.sender.lower() != submission.participant.lower():
                reason = f"update is signed over to {b.sender}, not its submitter"
            elif (b.task, b.round, b.attempt, b.base_model, b.num_samples) != expected:
                reason = "update is bound to another task, round, attempt, base model or count"
        if reason is None:
            updates.append(ClientUpdate(submission.participant, decoded.delta, b.num_samples))
        else:
            rejected[submission.participant] = reason

    weights, accepted, flagged, scores, reasons = base, [], [], {}, {}
    if updates:
        result = (aggregator or context.aggregator).aggregate(
            updates,
            AggregationContext(
                global_weights=base,
                predict=context.predict,
                validation_features=context.bundle.validation_features,
                validation_labels=context.bundle.validation_labels,
            ),
        )
        weights = add(base, result.delta)
        accepted, flagged, scores = result.accepted, result.flagged, result.scores
        reasons = result.reasons
    accepted_set = set(accepted)
    bitmap = encode_accepted(
        [i for i, s in enumerate(submissions) if s.participant in accepted_set], len(submissions)
    )
    blob = encode_model(weights)
    return RoundAggregate(
        model=ContentRef.from_cid(str(compute_cid(blob))),
        model_blob=blob,
        weights=weights,
        accepted_bitmap=bitmap,
        submissions=submissions,
        accepted=accepted,
        flagged=flagged,
        rejected=rejected,
        scores=scores,
        reasons=reasons,
    )

"""The round aggregate as a pure function of chain data and the blobs it names.

A committee member, a proposer and an auditor all call :func:`compute_aggregate`; given
the same chain and store they get the same bytes, hence the same CID. Nothing here
depends on who runs it: the task's manifest (on the store, named on chain) says which
model and which aggregation rule, the chain says which updates were submitted in which
order, and the store returns each blob only after checking it against its CID.

Nothing a participant uploads can stop the computation: an update blob that cannot be
fetched or decoded, for whatever reason, is a rejected update with that reason, and a
rule that fails on the round's updates (Krum with a fixed ``f`` and too few valid
updates) leaves the base model in place with every update flagged. Either outcome
depends only on chain and store, so every member reaches it alike.
"""

import logging
import threading
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

import numpy as np

from flare.aggregation import make_aggregator
from flare.aggregation.base import (
    AggregationContext,
    AggregationError,
    Aggregator,
    ClientUpdate,
)
from flare.chain import ChainConnector, ContentRef, encode_accepted
from flare.chain.api.types import Submission
from flare.compression import decode_update
from flare.compression.base import DecodedUpdate, MalformedUpdateError
from flare.errors import FlareError
from flare.federation.protocol.artifacts import (
    TaskBundle,
    build_task_model,
    decode_manifest,
    decode_model,
    encode_model,
)
from flare.federation.protocol.update_fetches import UpdateFetches, one_line
from flare.models import ExactPredictor, TorchModelAdapter
from flare.models.exact_training import ExactReferenceStep, exact_reference_step
from flare.storage import StorageProvider, compute_cid
from flare.tensors import ModelSpec, Weights, add, spec_of

log = logging.getLogger(__name__)


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
    predictor: ExactPredictor
    reference_step: ExactReferenceStep | None

    def predict(self, weights: Weights, features: np.ndarray) -> np.ndarray:
        """The MI filter's labels: exact inference, so every member's labels are the same."""
        return self.predictor.predict(weights, features)


_contexts_by_store: WeakKeyDictionary[StorageProvider, dict[tuple[str, str], TaskContext]]
_contexts_by_store = WeakKeyDictionary()
_contexts_lock = threading.Lock()


def load_task_context(chain: ChainConnector, store: StorageProvider, task_id: int) -> TaskContext:
    """Read the task's manifest from the store and build its model and aggregation rule.

    Callers of one ``store`` object share the context: it is a pure function of the task's
    binding label and the manifest its CID names, and building it (decoding the validation
    split, building the model) costs milliseconds that the thousand participants of a
    protocol simulation, who read one store, would each pay. A caller that must read the
    manifest again (an auditor) passes a store object of its own.
    """
    key = (binding_label(chain, task_id), chain.task(task_id).manifest.to_cid())
    with _contexts_lock:
        known = _contexts_by_store.setdefault(store, {})
        if key in known:
            return known[key]
    bundle = decode_manifest(store.get(key[1]))
    manifest = bundle.manifest
    module = build_task_model(manifest)
    context = TaskContext(
        task_id=task_id,
        label=key[0],
        bundle=bundle,
        spec=spec_of(TorchModelAdapter(module).get_weights()),
        aggregator=make_aggregator(manifest.aggregator, **manifest.aggregator_params),
        predictor=ExactPredictor(module),
        reference_step=exact_reference_step(module),
    )
    with _contexts_lock:
        known[key] = context
    return context


@dataclass
class RoundAggregate:
    """The aggregate of one round attempt and the reasons behind it.

    ``store_errors`` names, by CID, each update blob the store could not serve as named
    (missing, unreachable, too large, corrupt), so a damaged store is told apart from a
    chain that records something else.
    """

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
    store_errors: dict[str, str] = field(default_factory=dict)
    unavailable: frozenset[int] = frozenset()
    """Submission indices left out because their blobs could not be fetched."""


@dataclass(frozen=True)
class AttemptInputs:
    """What recomputing one attempt's aggregate reads from chain and store, read once: the
    arithmetic on it (:func:`aggregate_attempt`) can then run on any machine."""

    round: int
    attempt: int
    base_cid: str
    base: Weights
    submissions: list[Submission]
    outcomes: dict[str, bytes | str]
    """Each counted submission's update blob by CID, or why there is none."""
    unavailable: frozenset[int]
    store_errors: dict[str, str]
    seed: int
    """The attempt's aggregation seed; 0 before anyone submitted (nothing to aggregate)."""


def compute_aggregate(
    chain: ChainConnector,
    store: StorageProvider,
    context: TaskContext,
    round_number: int,
    attempt: int,
    aggregator: Aggregator | None = None,
    *,
    fetches: UpdateFetches | None = None,
    unavailable: frozenset[int] | None = None,
) -> RoundAggregate:
    """Decode the attempt's updates in submission order, filter, average, serialise.

    ``aggregator`` overrides the task's rule; only a dishonest member has reason to.
    ``fetches`` holds update blobs already fetched (a committee member fetches while it
    waits for late blobs); without it every update blob is fetched here, in parallel.
    ``unavailable`` names the submissions to leave out as not fetched, as a proposal being
    judged or a finalized model being audited records them; without it, those whose blobs
    ``fetches`` could not obtain. A blob outside that set that is missing all the same is
    a rejected update (the proposal's author had it; the caller waits for it first).
    Besides the chain, only the base model's blob (which the chain names) can make this
    raise: nothing a participant uploads can.
    """
    inputs = read_attempt_inputs(
        chain, store, context, round_number, attempt, fetches=fetches, unavailable=unavailable
    )
    return aggregate_attempt(inputs, context, aggregator)


def read_attempt_inputs(
    chain: ChainConnector,
    store: StorageProvider,
    context: TaskContext,
    round_number: int,
    attempt: int,
    *,
    fetches: UpdateFetches | None = None,
    unavailable: frozenset[int] | None = None,
) -> AttemptInputs:
    """The chain's and store's part of :func:`compute_aggregate` (which see)."""
    opened = chain.round_opened(context.task_id, round_number, attempt)
    base_cid = opened.base_model.to_cid()
    base = decode_model(store.get(base_cid), context.spec)
    submissions = chain.submissions(context.task_id, round_number, attempt)
    if fetches is None:
        fetches = UpdateFetches(store, context.spec)
        counted = [s for s in submissions if unavailable is None or s.index not in unavailable]
        fetches.collect([s.update.to_cid() for s in counted], timeout=None)
    if unavailable is None:
        unavailable = frozenset(
            s.index for s in submissions if not fetches.obtained(s.update.to_cid())
        )
    return AttemptInputs(
        round=round_number,
        attempt=attempt,
        base_cid=base_cid,
        base=base,
        submissions=submissions,
        outcomes={
            s.update.to_cid(): fetches.outcome(s.update.to_cid())
            for s in submissions
            if s.index not in unavailable
        },
        unavailable=unavailable,
        store_errors=fetches.store_errors(),
        # A submission sealed the seed, so an attempt with submissions always has one.
        seed=(
            int.from_bytes(chain.attempt_seed(context.task_id, round_number, attempt)[:8], "big")
            if submissions
            else 0
        ),
    )


def aggregate_attempt(
    inputs: AttemptInputs, context: TaskContext, aggregator: Aggregator | None = None
) -> RoundAggregate:
    """The arithmetic of :func:`compute_aggregate`, on what it read; no blob makes it raise."""
    base, unavailable, submissions = inputs.base, inputs.unavailable, inputs.submissions
    bound_to = (context.label, inputs.round, inputs.attempt, inputs.base_cid)
    updates: list[ClientUpdate] = []
    rejected: dict[str, str] = {}
    for submission in submissions:
        if submission.index in unavailable:
            rejected[submission.participant] = (
                f"update blob {submission.update.to_cid()} was unavailable: left out"
            )
            continue
        expected = (*bound_to, submission.sample_count)
        fetched = inputs.outcomes[submission.update.to_cid()]
        if isinstance(fetched, str):
            rejected[submission.participant] = fetched
            continue
        decoded = _decode(fetched, context.spec)
        if isinstance(decoded, str):
            rejected[submission.participant] = decoded
            continue
        b = decoded.binding
        if b.sender.lower() != submission.participant.lower():
            rejected[submission.participant] = (
                f"update is signed over to {b.sender}, not its submitter"
            )
        elif (b.task, b.round, b.attempt, b.base_model, b.num_samples) != expected:
            rejected[submission.participant] = (
                "update is bound to another task, round, attempt, base model or count"
            )
        else:
            updates.append(ClientUpdate(submission.participant, decoded.delta, b.num_samples))

    weights, accepted, flagged, scores, reasons = base, [], [], {}, {}
    if updates:
        rule = aggregator or context.aggregator
        aggregation = AggregationContext(
            global_weights=base,
            predict=context.predict,
            validation_features=context.bundle.validation_features,
            validation_labels=context.bundle.validation_labels,
            seed=inputs.seed,
            reference_step=context.reference_step,
        )
        # Whatever goes wrong in the rule goes wrong alike for every member: it settles the
        # round as "base model kept" rather than stopping every member's step.
        try:
            result = rule.aggregate(updates, aggregation)
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                weights = add(base, result.delta)
            if not all(np.isfinite(tensor).all() for tensor in weights.values()):
                # the next round could not start from it: decode_model refuses non-finite
                raise AggregationError("the aggregate overflows float32")
        except Exception as exc:
            weights = base
            reason = f"aggregation rule {rule.name!r} failed, base model kept: {one_line(exc)}"
            if not isinstance(exc, FlareError):
                log.warning("%s", reason)
            flagged = [update.client_id for update in updates]
            reasons = dict.fromkeys(flagged, reason)
        else:
            accepted, flagged, scores = result.accepted, result.flagged, result.scores
            reasons = result.reasons
    accepted_set = set(accepted)
    bitmap = encode_accepted(
        [i for i, s in enumerate(submissions) if s.participant in accepted_set], len(submissions)
    )
    blob = encode_model(weights, sorted(unavailable))
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
        store_errors=inputs.store_errors,
        unavailable=unavailable,
    )


def _decode(blob: bytes, spec: ModelSpec) -> DecodedUpdate | str:
    """The decoded update, or why it was refused; no blob can make this raise."""
    try:
        return decode_update(blob, spec)
    except MalformedUpdateError as exc:
        return str(exc)
    except Exception as exc:  # the decoder's own defect: one update lost, not the task
        reason = f"decoder failed on the update: {one_line(exc)}"
        log.warning("%s", reason)
        return reason

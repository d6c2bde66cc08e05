"""What the simulated participants of a protocol simulation share: the committee's
recomputations (one per attempt, rule and blobs held, run where the backend says) and
their reads of the store (each blob checked against its CID once, each global model
decoded once)."""

from collections.abc import Callable
from typing import Any

from flare.aggregation.base import Aggregator
from flare.chain import ChainConnector, RoundOpened
from flare.federation.backends import Recomputer
from flare.federation.protocol.aggregate import (
    AttemptInputs,
    RoundAggregate,
    TaskContext,
    read_attempt_inputs,
)
from flare.federation.protocol.artifacts import decode_model
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.protocol.update_fetches import UpdateFetches
from flare.storage import ForwardingStore, StorageProvider
from flare.tensors import ModelSpec, Weights


class SharedReads(ForwardingStore):
    """``inner`` as the simulated participants read it: a blob is checked against its CID
    the first time anyone reads it, and later reads get the checked bytes.

    Deployed, every member fetches and checks each update blob on its own machine, side by
    side; played in one process, a committee of 40 checking 1,000 blobs would take turns.
    The bytes a CID names never change, so bytes checked once are the blob for every
    reader, and so are the bytes a participant put, which were hashed to name them.
    Likewise every participant trains from the attempt's global model, which :meth:`model`
    decodes once. :meth:`forget` drops both when an attempt ends, but for the blob the next
    attempt starts from (the model a member just put, or the one the failed attempt started
    from), which every participant reads again at once; writes go to ``inner``.
    """

    def __init__(self, inner: StorageProvider) -> None:
        super().__init__(inner)
        self._checked: dict[str, bytes] = {}
        self._models: dict[str, tuple[ModelSpec, Weights]] = {}

    def put(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` in ``inner``; a read of its CID this attempt gets these very bytes,
        which were just hashed to name them, without loading or hashing them again."""
        blob = bytes(data)
        cid = super().put(blob)
        self._checked[cid] = blob
        return cid

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        blob = self._checked.get(cid)
        if blob is None:
            blob = self._checked[cid] = super().get(cid, max_bytes=max_bytes)
        else:  # checked under an earlier reader's limit, which may have been looser
            self._check_size(len(blob), f"get {cid}", self._read_limit(max_bytes))
        return blob

    def model(self, cid: str, spec: ModelSpec) -> Weights:
        """The global model ``cid`` names, checked against ``spec`` and decoded once per
        attempt; each reader gets its own copy of the arrays, cheap next to decoding."""
        decoded = self._models.get(cid)
        if decoded is None or decoded[0] != spec:
            decoded = self._models[cid] = (dict(spec), decode_model(self.get(cid), spec))
        return {name: array.copy() for name, array in decoded[1].items()}

    def forget(self, keep: str | None = None) -> None:
        """Drop the checked blobs and decoded models but ``keep``'s: the next read of each
        checks it again. The bytes kept were checked against their CID, which names them
        for good, so serving them on is as safe as in the attempt that checked them."""
        checked: dict[str, bytes] = {}
        models: dict[str, tuple[ModelSpec, Weights]] = {}
        if keep is not None and keep in self._checked:
            checked[keep] = self._checked[keep]
            if keep in self._models:
                models[keep] = self._models[keep]
        self._checked, self._models = checked, models


RecomputationKey = tuple[int, int, int, bool, frozenset[str] | None, frozenset | None]
"""Task, round, attempt, whether the member is honest, the update blobs it holds and why
it lacks the others (both None when the recomputation fetches every blob itself)."""


class SharedRecomputations:
    """The recomputations of one attempt, shared by the simulated members.

    Deployed, every member recomputes the attempt's aggregate on its own machine, side by
    side; played in one process they would take turns, and the protocol path would cost
    the committee's size times what it costs deployed. The recomputation is bitwise
    reproducible (the agreement tests run it across thread counts and processes), so
    members that hold the same update blobs and follow the same rule compute the same
    aggregate: the first one has it computed, by the backend's ``recomputer``, the others
    read it.
    """

    def __init__(self, recomputer: Recomputer) -> None:
        self.recomputer = recomputer
        self.count = 0
        """Recomputations run so far in the run."""
        self._aggregates: dict[RecomputationKey, RoundAggregate] = {}

    def new_attempt(self) -> None:
        """Forget the last attempt's aggregates: a long run keeps one attempt's, not every
        round's."""
        self._aggregates.clear()

    def aggregate(
        self,
        key: RecomputationKey,
        read: Callable[[], AttemptInputs],
        context: TaskContext,
        rule: Aggregator | None,
    ) -> RoundAggregate:
        """The aggregate ``key`` names, recomputed from ``read()`` unless already computed."""
        if key not in self._aggregates:
            self._aggregates[key] = self.recomputer.recompute(read(), context, rule)
            self.count += 1
        return self._aggregates[key]


class SimulatedParticipant(ProtocolParticipant):
    """A participant whose committee recomputation is shared with its simulated peers."""

    def __init__(self, *args: Any, shared: SharedRecomputations, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.shared = shared

    def aggregate(
        self,
        chain: ChainConnector,
        store: StorageProvider,
        context: TaskContext,
        opened: RoundOpened,
        fetches: UpdateFetches | None = None,
    ) -> RoundAggregate:
        held, lacking = None, None
        if fetches is not None:  # it only ever fetches the attempt's update blobs
            held = fetches.obtained_cids()
            lacking = frozenset(fetches.store_errors().items())
        key = (context.task_id, opened.round, opened.attempt, self.honest_member, held, lacking)

        def read() -> AttemptInputs:
            return read_attempt_inputs(
                chain, store, context, opened.round, opened.attempt, fetches=fetches
            )

        return self.shared.aggregate(key, read, context, self.rule())

"""Nothing a participant uploads stops an aggregate, and nobody downloads more than it must.

First the aggregate alone, on an in-memory chain: hostile but correctly framed blobs for
every codec, a decoder or rule that fails, an aggregate that overflows, and the fetcher's
bounds. Then whole fleets of agents (``agent_fleet.py``) with hostile participants in them.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from agent_fleet import (
    ATTACKERS,
    CLIENTS,
    HOSTILE_METADATA,
    MeteredStore,
    UnpublishedStore,
    client_data,
    hostile,
    make_fleet,
    rewrite_metadata,
)

from flare.aggregation.base import AggregationContext, AggregationResult, Aggregator
from flare.chain import (
    ContentRef,
    InMemoryChain,
    RoundFinalized,
    RoundOpened,
    TaskCreated,
    TaskParams,
    TaskStatus,
    decode_accepted,
)
from flare.compression import blob_limit, make_codec
from flare.errors import FlareError
from flare.federation.agents import StepOutcome, TaskSpec
from flare.federation.protocol import aggregate as aggregate_module
from flare.federation.protocol.aggregate import compute_aggregate, load_task_context
from flare.federation.protocol.artifacts import TaskManifest, encode_manifest, encode_model
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.protocol.simulated_device import participant_keys
from flare.federation.protocol.update_fetches import InlineUpdateFetches, UpdateFetches
from flare.federation.task_parameters import TaskParameters
from flare.models import TorchModelAdapter, build_model
from flare.storage import MemoryStore, StorageError, StorageUnavailableError, compute_cid
from flare.tensors import spec_of

CODECS = ["none", "gzip", "powersgd"]


class Round:
    """One open attempt of a fresh task on an in-memory chain, and three participants."""

    def __init__(
        self, aggregator: str = "fedavg", params: dict | None = None, base: float | None = None
    ) -> None:
        self.chain, self.store = InMemoryChain(), MemoryStore()
        weights = TorchModelAdapter(build_model("logreg", 4, 3, seed=0)).get_weights()
        if base is not None:
            weights = {name: np.full_like(array, base) for name, array in weights.items()}
        self.weights = weights
        self.spec = spec_of(self.weights)
        manifest = TaskManifest("logreg", 4, 3, aggregator, params or {})
        features = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
        creator = self.chain.as_sender(participant_keys(0, -1)[0])
        base_cid = self.store.put(encode_model(self.weights))
        manifest_cid = self.store.put(encode_manifest(manifest, features, np.arange(12) % 3))
        model, validation = ContentRef.from_cid(base_cid), ContentRef.from_cid(manifest_cid)
        params_onchain = TaskParams(1, 3, 1, 5001, 20, 20, 2, 20)
        receipt = creator.create_task(model, validation, params_onchain)
        self.task_id = receipt.one(TaskCreated).task_id
        self.people = [ProtocolParticipant(f"p{i}", *participant_keys(0, i)) for i in range(3)]
        for person in self.people:
            person.register(self.chain, self.task_id)
        creator.start_task(self.task_id)
        self.context = load_task_context(self.chain, self.store, self.task_id)
        self.opened = self.chain.round_opened(self.task_id, 1, 0)

    def update(self, index: int, codec: str = "none", value: float = 0.01) -> bytes:
        delta = {name: np.full_like(array, value) for name, array in self.weights.items()}
        encoder = make_codec(codec).new_encoder(self.spec, index)
        return encoder.encode(delta, self.people[index].binding(self.context, self.opened, 10))

    def submit(self, index: int, blob: bytes, *, publish: bool = True) -> str:
        cid = self.store.put(blob) if publish else str(compute_cid(blob))
        self.people[index].submit(self.chain, self.task_id, cid, 10)
        return cid

    def aggregate(self, **options):
        return compute_aggregate(self.chain, self.store, self.context, 1, 0, **options)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("variant", sorted(HOSTILE_METADATA))
def test_a_hostile_blob_is_a_rejected_update_for_every_codec(codec, variant):
    setup = Round()
    setup.submit(0, setup.update(0, codec))
    setup.submit(1, rewrite_metadata(setup.update(1, codec), *HOSTILE_METADATA[variant]))
    first, again = setup.aggregate(), setup.aggregate()
    honest, hostile_one = setup.people[0].address, setup.people[1].address
    assert first.accepted == [honest]
    assert first.rejected[hostile_one] and "\n" not in first.rejected[hostile_one]
    assert (first.model, first.accepted_bitmap, first.rejected) == (
        again.model,
        again.accepted_bitmap,
        again.rejected,
    )
    assert first.store_errors == {}


def test_a_decoder_defect_rejects_one_update_and_says_so(monkeypatch, caplog):
    setup = Round()
    setup.submit(0, setup.update(0))
    setup.submit(1, setup.update(1, value=0.02))
    real_decode = aggregate_module.decode_update

    def broken_on_the_second(blob, spec):
        decoded = real_decode(blob, spec)
        if decoded.binding.sender == setup.people[1].address:
            raise TypeError("unhashable type: 'list'")
        return decoded

    monkeypatch.setattr(aggregate_module, "decode_update", broken_on_the_second)
    with caplog.at_level(logging.WARNING, logger="flare.federation.protocol.aggregate"):
        result = setup.aggregate()
    assert result.accepted == [setup.people[0].address]
    reason = result.rejected[setup.people[1].address]
    assert reason == "decoder failed on the update: TypeError: unhashable type: 'list'"
    assert reason in caplog.text


def test_krum_with_a_fixed_f_and_too_few_updates_keeps_the_base_model():
    setup = Round("krum", {"num_byzantine": 1})  # needs more than 2f + 2 = 4 updates
    for index in range(3):
        setup.submit(index, setup.update(index, value=0.01 * (index + 1)))
    result = setup.aggregate()
    assert result.model.to_cid() == setup.opened.base_model.to_cid()
    assert result.accepted == [] and result.accepted_bitmap == b"\x00"
    assert result.flagged == [person.address for person in setup.people]
    assert all(
        reason.startswith("aggregation rule 'krum' failed, base model kept: AggregationError")
        for reason in result.reasons.values()
    )
    assert setup.aggregate().model == result.model


class Exploding(Aggregator):
    """A rule with a defect of its own (not a deliberate error)."""

    name = "exploding"

    def aggregate(self, updates, context: AggregationContext) -> AggregationResult:
        raise ZeroDivisionError("division by zero")


def test_a_rule_defect_keeps_the_base_model(caplog):
    setup = Round()
    setup.submit(0, setup.update(0))
    with caplog.at_level(logging.WARNING, logger="flare.federation.protocol.aggregate"):
        result = setup.aggregate(aggregator=Exploding())
    assert result.model.to_cid() == setup.opened.base_model.to_cid()
    reason = result.reasons[setup.people[0].address]
    assert reason == (
        "aggregation rule 'exploding' failed, base model kept: ZeroDivisionError: division by zero"
    )
    assert reason in caplog.text


def test_an_aggregate_that_overflows_float32_keeps_the_base_model():
    setup = Round(base=3e38)  # near float32's largest, as a task poisoned for rounds may be
    setup.submit(0, setup.update(0, value=3e38))
    setup.submit(1, setup.update(1, value=3e38))
    result = setup.aggregate()
    assert result.model.to_cid() == setup.opened.base_model.to_cid()
    assert "overflows float32" in next(iter(result.reasons.values()))


def test_store_errors_name_a_missing_blob_but_not_an_oversized_one():
    setup = Round()
    setup.submit(0, setup.update(0))
    missing = setup.submit(1, setup.update(1), publish=False)
    oversized = setup.submit(2, bytes(blob_limit(setup.spec) + 1))
    result = setup.aggregate()
    assert set(result.store_errors) == {missing}
    assert missing in result.store_errors[missing]
    assert "exceeds the limit" in result.rejected[setup.people[2].address]
    assert oversized not in result.store_errors


class Gate(MemoryStore):
    """A store that fails, blocks or serves each load as told, and counts loads."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.failing: dict[str, Exception] = {}
        self.open = threading.Event()
        self.open.set()

    def _load(self, cid: str, limit: int) -> bytes:
        self.loads.append(cid)
        if cid in self.failing:
            raise self.failing[cid]
        self.open.wait(10)
        return super()._load(cid, limit)


def four_kinds_of_blob() -> tuple[Gate, dict, list[str]]:
    """A store holding a served blob, an oversized one, an absent CID and one whose node is
    down (a transient failure), in that order."""
    store = Gate()
    spec = {"w": (4,)}
    served = store.put(b"a")
    oversized = store.put(bytes(blob_limit(spec) + 1))
    absent = str(compute_cid(b"absent"))
    down = store.put(b"c")
    store.failing[down] = StorageUnavailableError("node down")
    return store, spec, [served, oversized, absent, down]


def test_fetches_happen_once_and_only_transient_failures_are_asked_again():
    store, spec, cids = four_kinds_of_blob()
    served, oversized, absent, down = cids
    with ThreadPoolExecutor(4) as executor:
        fetches = UpdateFetches(store, spec, executor)
        assert fetches.collect(cids, timeout=None) == [absent, down]
        assert fetches.collect(cids, timeout=None) == [absent, down]
        del store.failing[down]
        assert fetches.collect(cids, timeout=None) == [absent]
    assert sorted(store.loads.count(cid) for cid in cids) == [1, 1, 3, 3]
    assert fetches.outcome(served) == b"a"
    assert "exceeds the limit" in fetches.outcome(oversized)
    assert fetches.outcome(absent) == f"no blob stored under {absent}"


def test_inline_fetches_settle_every_blob_as_fetch_threads_do():
    """The simulation's fetches, read in the calling thread, end as threaded ones that all
    finished: served and oversized settled for good, absent and down asked again."""
    store, spec, cids = four_kinds_of_blob()
    served, oversized, absent, down = cids
    inline = InlineUpdateFetches(store, spec)
    with ThreadPoolExecutor(4) as executor:
        threaded = UpdateFetches(store, spec, executor)
        for fetches in (inline, threaded):
            assert fetches.collect(cids, timeout=None) == [absent, down]
            assert fetches.collect(cids, timeout=None) == [absent, down]
    assert sorted(store.loads.count(cid) for cid in cids) == [2, 2, 4, 4]
    for cid in cids:
        assert inline.outcome(cid) == threaded.outcome(cid)
    assert inline.obtained_cids() == threaded.obtained_cids() == {served, oversized}
    assert inline.store_errors() == threaded.store_errors()


def test_a_blob_nobody_serves_holds_a_step_up_only_for_the_wait():
    store = Gate()
    stuck = store.put(b"slow")
    store.open.clear()
    with ThreadPoolExecutor(2) as executor:
        fetches = UpdateFetches(store, {"w": (4,)}, executor)
        started = time.monotonic()
        assert fetches.collect([stuck], timeout=0.05) == [stuck]
        assert fetches.collect([stuck], timeout=0.05) == [stuck]
        assert time.monotonic() - started < 5
        assert "still being fetched" in fetches.outcome(stuck)
        store.open.set()
        assert fetches.collect([stuck], timeout=None) == []
    assert store.loads == [stuck]  # the running fetch was waited for, not started again


def test_fetch_threads_never_hold_up_the_exit_of_a_stopped_participant():
    store = Gate()
    stuck = store.put(b"never served")
    store.open.clear()
    try:
        assert UpdateFetches(store, {"w": (4,)}).collect([stuck], timeout=0.01) == [stuck]
        fetching = [t for t in threading.enumerate() if t.name.startswith("flare-fetch")]
        assert fetching and all(thread.daemon for thread in fetching)
    finally:
        store.open.set()


# --- fleets of agents ----------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return client_data(tmp_path_factory.mktemp("data"))


def finalized_rounds(fleet) -> list[RoundFinalized]:
    return fleet.chain.inner.events([RoundFinalized], task_id=fleet.task_id)


def attempts(fleet) -> list[tuple[int, int]]:
    """``(round, attempt)`` of every attempt the task opened."""
    opened = fleet.chain.inner.events([RoundOpened], task_id=fleet.task_id)
    return [(event.round, event.attempt) for event in opened]


def test_hostile_participants_are_rejected_and_the_task_finishes(tmp_path, data, caplog):
    fleet = make_fleet(
        tmp_path,
        data,
        TaskSpec(model="logreg", parameters=TaskParameters(max_rounds=1, min_clients=3)),
    )
    agents = [fleet.agent(i) for i in range(CLIENTS)]
    for index, variant in zip(ATTACKERS, sorted(HOSTILE_METADATA), strict=True):
        hostile(agents[index], lambda blob, v=variant: rewrite_metadata(blob, *HOSTILE_METADATA[v]))
    fleet.start(agents)
    with caplog.at_level(logging.INFO, logger="flare.agent"):
        fleet.drive(agents)
    chain = fleet.chain.inner
    assert chain.task(fleet.task_id).status is TaskStatus.COMPLETED
    assert [event.round for event in finalized_rounds(fleet)] == [1]
    context = load_task_context(chain, fleet.store, fleet.task_id)
    hostile_addresses = {fleet.keys(i).account.address for i in ATTACKERS}
    for event in finalized_rounds(fleet):
        recomputed = compute_aggregate(chain, fleet.store, context, event.round, event.attempt)
        assert recomputed.accepted_bitmap == chain.accepted_bitmap(fleet.task_id, event.proposal_id)
        assert set(recomputed.rejected) == hostile_addresses
        assert recomputed.accepted and not set(recomputed.accepted) & hostile_addresses
    assert f"update of {sorted(hostile_addresses)[0]} rejected: " in caplog.text
    assert fleet.refusals() == []


def test_krum_with_a_fixed_f_and_junk_keeps_every_agent_going(tmp_path, data):
    spec = TaskSpec(
        model="logreg",
        aggregator="krum",
        aggregator_params={"num_byzantine": 1},
        parameters=TaskParameters(max_rounds=2),
    )
    fleet = make_fleet(tmp_path, data, spec)
    fleet.codec = "none"
    agents = [fleet.agent(i) for i in range(CLIENTS)]
    for index in ATTACKERS:  # 4 valid updates left: Krum with f = 1 needs 5
        hostile(agents[index], lambda blob: b"junk" + blob)
    fleet.start(agents)
    fleet.drive(agents)
    chain = fleet.chain.inner
    assert [event.round for event in finalized_rounds(fleet)] == [1, 2]
    assert chain.task(fleet.task_id).model == chain.round_opened(fleet.task_id, 1, 0).base_model
    for event in finalized_rounds(fleet):
        assert decode_accepted(chain.accepted_bitmap(fleet.task_id, event.proposal_id)) == []


def test_junk_and_unpublished_blobs_cost_a_member_no_more_than_the_valid_ones(tmp_path, data):
    fleet = make_fleet(
        tmp_path,
        data,
        TaskSpec(model="logreg", parameters=TaskParameters(max_rounds=1, min_clients=3)),
    )
    fleet.codec = "none"
    junk, unpublished = ATTACKERS
    metered = {i: MeteredStore(fleet.store) for i in range(CLIENTS) if i != unpublished}
    stores = {**metered, unpublished: UnpublishedStore(fleet.store)}
    agents = [fleet.agent(i, stores[i]) for i in range(CLIENTS)]

    def sixty_mib_of_junk(blob: bytes) -> bytes:
        return blob + bytes(60 * 1024 * 1024)  # a new CID in every attempt

    hostile(agents[junk], sixty_mib_of_junk)
    fleet.start(agents)
    fleet.drive(agents)
    chain = fleet.chain.inner
    assert chain.task(fleet.task_id).status is TaskStatus.COMPLETED
    limit = blob_limit(load_task_context(chain, fleet.store, fleet.task_id).spec)

    def valid_size(cid: str) -> int:
        try:
            return len(fleet.store.get(cid, max_bytes=limit))
        except StorageError:
            return 0

    members, junk_downloads = 0, []
    for round_number, attempt in attempts(fleet):
        submissions = chain.submissions(fleet.task_id, round_number, attempt)
        cids = {submission.update.to_cid() for submission in submissions}
        valid = sum(valid_size(cid) for cid in cids)
        for index, store in metered.items():
            fetched = [(cid, size) for cid, size in store.downloads if cid in cids]
            if not fetched:
                continue  # not seated in this attempt
            members += 1
            assert sum(size for _, size in fetched) <= valid + limit + 1, (attempt, index)
            served = [cid for cid, size in fetched if size]
            assert len(served) == len(set(served)), "a blob was downloaded twice"
            junk_downloads += [size for _, size in fetched if size > limit]
    assert members >= 2
    assert junk_downloads and set(junk_downloads) == {limit + 1}


def test_run_logs_a_failing_step_and_keeps_polling(tmp_path, data, caplog):
    fleet = make_fleet(tmp_path, data)
    agent = fleet.agent(0)
    outcomes = iter([FlareError("the manifest blob went missing"), StepOutcome.DONE])

    def step() -> StepOutcome:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    agent.step = step
    with caplog.at_level(logging.WARNING, logger="flare.agent"):
        agent.run(threading.Event(), 0.01)
    assert "the manifest blob went missing; retrying in 0.01s" in caplog.text

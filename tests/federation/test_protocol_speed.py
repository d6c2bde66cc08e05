"""What keeps the protocol path cheap without changing what it computes: the simulated
participants' shared, once-checked store reads, decoded global models and task context, a
blob store without an fsync per blob, and the MI filter's single BLAS thread."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from flare.aggregation import AggregationContext, ClientUpdate, make_aggregator
from flare.chain import (
    ContentRef,
    InMemoryChain,
    Round,
    RoundOpened,
    RoundTimedOut,
    TaskCreated,
    TaskParams,
)
from flare.errors import ConfigError
from flare.federation.config import SimulationConfig
from flare.federation.protocol.aggregate import load_task_context
from flare.federation.protocol.artifacts import (
    MalformedArtifactError,
    TaskManifest,
    decode_model,
    encode_manifest,
    encode_model,
)
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.follow import TaskFollower
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.protocol.shared_recomputation import SharedReads
from flare.federation.protocol.simulated_device import participant_keys
from flare.federation.protocol.verify import verify_task
from flare.models import TorchModelAdapter, build_model
from flare.storage import DirectoryStore, MemoryStore
from flare.storage.errors import BlobTooLargeError, ContentMismatchError


class CountingStore(MemoryStore):
    """A memory store that counts the blobs it loads and can be made to serve wrong bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.corrupt = False

    def _load(self, cid: str, limit: int) -> bytes:
        self.loads += 1
        blob = super()._load(cid, limit)
        return blob + b"!" if self.corrupt else blob


def test_a_blob_is_checked_once_and_served_to_every_reader():
    store = CountingStore()
    cid = store.put(b"an update")
    reads = SharedReads(store)
    assert [reads.get(cid) for _ in range(5)] == [b"an update"] * 5
    assert store.loads == 1
    reads.forget()
    assert reads.get(cid) == b"an update"
    assert store.loads == 2


def test_bytes_put_through_the_reads_are_served_without_a_load_until_forgotten():
    store = CountingStore()
    reads = SharedReads(store)
    cid = reads.put(bytearray(b"an update"))
    assert store.has(cid) and reads.has(cid)
    # The bytes this process hashed to name the blob: a store serving others cannot alter them.
    store.corrupt = True
    assert [reads.get(cid) for _ in range(3)] == [b"an update"] * 3
    assert store.loads == 0
    reads.forget()
    with pytest.raises(ContentMismatchError):
        reads.get(cid)


def test_a_checked_blob_still_honours_the_callers_size_limit():
    store = CountingStore()
    put_through = SharedReads(store)
    for reads, cid in (
        (SharedReads(store), store.put(b"x" * 100)),  # checked on its first read
        (put_through, put_through.put(b"x" * 100)),
    ):
        assert reads.get(cid) == b"x" * 100
        with pytest.raises(BlobTooLargeError):
            reads.get(cid, max_bytes=99)
        with pytest.raises(ConfigError, match="max_bytes"):
            reads.get(cid, max_bytes=-1)
        assert reads.get(cid, max_bytes=100) == b"x" * 100


def test_bytes_that_fail_their_check_are_never_remembered():
    store = CountingStore()
    cid = store.put(b"an update")
    reads = SharedReads(store)
    store.corrupt = True
    for _ in range(2):
        with pytest.raises(ContentMismatchError):
            reads.get(cid)
    assert store.loads == 2
    store.corrupt = False
    assert reads.get(cid) == b"an update"


def test_a_tampered_blob_on_disk_is_refused_to_every_reader(tmp_path):
    """Bytes a directory serves are hashed before any reader gets them, whoever wrote them."""
    disk = DirectoryStore(tmp_path)
    cid = disk.put(b"an update")
    disk.blob_path(cid).write_bytes(b"another update")
    reads = SharedReads(disk)
    with pytest.raises(ContentMismatchError):
        reads.get(cid)


def test_writes_and_pins_reach_the_underlying_store():
    store = CountingStore()
    reads = SharedReads(store)
    cid = reads.put(b"a model")
    reads.pin(cid)
    assert store.get(cid) == b"a model" and store.is_pinned(cid) and reads.is_pinned(cid)


def blas_threads() -> int:
    return max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


def test_the_mi_filter_infers_on_one_blas_thread_and_restores_the_setting():
    rng = np.random.default_rng(0)
    weights = {"w": rng.normal(size=(10, 8)).astype(np.float32)}
    features = rng.normal(size=(40, 8)).astype(np.float32)
    labels = np.argmax(features @ weights["w"].T, axis=1).astype(np.int64)
    seen = []

    def predict(candidate, rows):
        seen.append(blas_threads())
        return np.argmax(np.asarray(rows) @ candidate["w"].T, axis=1).astype(np.int64)

    updates = [
        ClientUpdate(f"c{i}", {"w": rng.normal(0, 0.01, (10, 8)).astype(np.float32)}, 10)
        for i in range(6)
    ]
    context = AggregationContext(weights, predict, features, labels)
    with threadpool_limits(limits=2, user_api="blas"):
        make_aggregator("mi").aggregate(updates, context)
        assert blas_threads() == 2
    assert seen and set(seen) == {1}


BLAS_LOADED_LATE = """
import sys
from threadpoolctl import threadpool_info
import flare.aggregation.mi_filter as mi_filter
assert "scipy" not in sys.modules
mi_filter._blas()  # the libraries found before scipy's BLAS is loaded
import scipy.linalg
with mi_filter._blas().limit(limits=1, user_api="blas"):
    print(sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}))
"""


def test_a_blas_library_loaded_after_the_first_round_is_limited_too():
    ran = subprocess.run(
        [sys.executable, "-c", BLAS_LOADED_LATE],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="2"),
    )
    assert ran.stdout.strip() == "[1]"


def test_readers_of_one_store_share_the_task_context_and_another_store_reads_it_again():
    chain, store = InMemoryChain(), CountingStore()
    weights = TorchModelAdapter(build_model("logreg", 4, 3, seed=0)).get_weights()
    features = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    manifest = store.put(
        encode_manifest(TaskManifest("logreg", 4, 3, "mi", {}), features, np.arange(12) % 3)
    )
    model = ContentRef.from_cid(store.put(encode_model(weights)))
    creator = chain.as_sender(participant_keys(0, -1)[0])
    receipt = creator.create_task(
        model, ContentRef.from_cid(manifest), TaskParams(1, 3, 1, 5001, 20, 20, 2, 20)
    )
    task_id = receipt.one(TaskCreated).task_id
    first = load_task_context(chain, store, task_id)
    assert load_task_context(chain, store, task_id) is first
    assert store.loads == 1
    other = load_task_context(chain, SharedReads(store), task_id)
    assert other is not first and other.spec == first.spec
    assert store.loads == 2
    store.corrupt = True  # an auditor's fresh read notices what a shared context would not
    with pytest.raises(ContentMismatchError):
        load_task_context(chain, SharedReads(store), task_id)


def logreg_weights_and_spec() -> tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]]]:
    weights = TorchModelAdapter(build_model("logreg", 4, 3, seed=0)).get_weights()
    return weights, {name: array.shape for name, array in weights.items()}


@pytest.fixture
def decoded(monkeypatch) -> list:
    """The specs of the global models the shared reads decoded, one entry per decode."""
    specs = []

    def counting_decode(blob, spec):
        specs.append(spec)
        return decode_model(blob, spec)

    monkeypatch.setattr(
        "flare.federation.protocol.shared_recomputation.decode_model", counting_decode
    )
    return specs


def test_a_global_model_is_decoded_once_per_attempt_and_each_reader_gets_its_own_copy(
    decoded,
):
    store = CountingStore()
    reads = SharedReads(store)
    weights, spec = logreg_weights_and_spec()
    cid = store.put(encode_model(weights))
    first = reads.model(cid, spec)
    for array in first.values():
        array[...] = 0  # one reader's changes reach no other reader
    second = reads.model(cid, spec)
    assert store.loads == 1 and len(decoded) == 1
    assert all(np.array_equal(second[name], weights[name]) for name in weights)
    reads.forget()
    store.corrupt = True  # the next attempt checks the bytes again
    with pytest.raises(ContentMismatchError):
        reads.model(cid, spec)


def test_a_model_that_does_not_fit_the_spec_is_refused_not_served_from_memory():
    reads = SharedReads(CountingStore())
    weights, spec = logreg_weights_and_spec()
    cid = reads.put(encode_model(weights))
    reads.model(cid, spec)
    with pytest.raises(MalformedArtifactError):
        reads.model(cid, {**spec, "extra": (1,)})


def test_the_simulation_store_skips_fsync_and_its_run_still_passes_the_audit(tmp_path, monkeypatch):
    synced: list[int] = []
    monkeypatch.setattr("flare.storage.directory.os.fsync", synced.append)
    config = SimulationConfig(model="logreg", clients=4, malicious=1, rounds=1)
    ProtocolSimulation(
        config, ProtocolConfig(state=tmp_path / "chain.db", store=tmp_path / "blobs")
    ).run()
    assert synced == []
    with InMemoryChain(tmp_path / "chain.db") as chain:
        assert verify_task(chain, DirectoryStore(tmp_path / "blobs"), 1).ok


def test_forget_keeps_the_next_attempts_base_model_and_checks_every_other_blob_again(
    decoded,
):
    store = CountingStore()
    reads = SharedReads(store)
    weights, spec = logreg_weights_and_spec()
    base = reads.put(encode_model(weights))  # the model a member proposed
    update = store.put(b"an update")
    reads.model(base, spec)
    reads.get(update)
    reads.forget(keep=base)
    store.corrupt = True  # the store now serves other bytes for every CID
    # the kept model: the bytes hashed to name it, decoded once for both attempts
    assert all(np.array_equal(reads.model(base, spec)[n], weights[n]) for n in weights)
    assert len(decoded) == 1 and store.loads == 1
    with pytest.raises(ContentMismatchError):  # every other blob is checked again
        reads.get(update)
    reads.forget(keep=update)  # a CID this attempt never checked keeps nothing
    with pytest.raises(ContentMismatchError):
        reads.get(base)


class OpeningChain:
    """A chain whose attempts open where asked and whose logs are counted as read."""

    def __init__(self) -> None:
        self.event_reads = 0

    def round_opened(self, task_id: int, round_number: int, attempt: int) -> RoundOpened:
        return RoundOpened(
            block_number=10 * round_number, log_index=0, task_id=task_id, round=round_number,
            attempt=attempt, epoch=round_number, base_model=ContentRef(0x55, bytes(32)),
            registered_snapshot=3, expected_committee=3, submission_deadline=0, vote_deadline=0,
        )  # fmt: skip

    def events(self, *args: object, **kwargs: object) -> list[RoundTimedOut]:
        self.event_reads += 1
        return [
            RoundTimedOut(
                block_number=15, log_index=0, task_id=1, round=1, attempt=0,
                submission_count=2, committee_size=1, submissions_hash=bytes(32),
            )
        ]  # fmt: skip


def opened_round(number: int) -> Round:
    return Round(
        round=number, attempt=0, epoch=number, seed=b"\x01" * 32, opened_at=10 * number,
        submission_deadline=0, vote_deadline=0, registered_snapshot=3, expected_committee=3,
        submission_count=0, submissions_hash=bytes(32), committee_size=0, quorum_threshold=2,
        rejections=0,
    )  # fmt: skip


@pytest.mark.parametrize("level", [logging.WARNING, logging.INFO])
def test_a_follower_reads_how_an_attempt_closed_only_to_log_it(caplog, level):
    chain = OpeningChain()
    follower = TaskFollower(chain, 1, logging.getLogger("flare.test.follower"))
    caplog.set_level(level, logger="flare.test.follower")
    follower.attempt(opened_round(1))
    follower.attempt(opened_round(2))  # the first attempt closed: reported if anyone listens
    logged = "round 1 attempt 0 timed out" in caplog.text
    assert (chain.event_reads, logged) == ((1, True) if level == logging.INFO else (0, False))

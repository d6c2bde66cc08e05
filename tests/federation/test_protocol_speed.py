"""What keeps the protocol path cheap without changing what it computes: the simulated
participants' shared, once-checked store reads, and the MI filter's single BLAS thread."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from flare.aggregation import AggregationContext, ClientUpdate, make_aggregator
from flare.federation.protocol.shared_recomputation import SharedReads
from flare.storage import MemoryStore
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
    reads = SharedReads(store)
    cid = reads.put(b"an update")
    assert store.has(cid) and reads.has(cid)
    assert [reads.get(cid) for _ in range(5)] == [b"an update"] * 5
    assert store.loads == 1
    reads.forget()
    assert reads.get(cid) == b"an update"
    assert store.loads == 2


def test_a_checked_blob_still_honours_the_callers_size_limit():
    reads = SharedReads(CountingStore())
    cid = reads.put(b"x" * 100)
    assert reads.get(cid) == b"x" * 100
    with pytest.raises(BlobTooLargeError):
        reads.get(cid, max_bytes=99)
    assert reads.get(cid, max_bytes=100) == b"x" * 100


def test_bytes_that_fail_their_check_are_never_remembered():
    store = CountingStore()
    reads = SharedReads(store)
    cid = reads.put(b"an update")
    store.corrupt = True
    for _ in range(2):
        with pytest.raises(ContentMismatchError):
            reads.get(cid)
    assert store.loads == 2
    store.corrupt = False
    assert reads.get(cid) == b"an update"


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

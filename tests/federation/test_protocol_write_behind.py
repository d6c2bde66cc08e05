"""The protocol simulation's writes behind the step: off the stepping thread, in order, read
back from the bytes hashed while pending, and never lost when one fails."""

import threading

import pytest

from flare.chain import InMemoryChain
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.protocol.shared_recomputation import SharedReads
from flare.federation.protocol.verify import verify_task
from flare.federation.report import RunInterrupted
from flare.federation.simulation import RunObserver
from flare.storage import DirectoryStore
from flare.storage.errors import BlobNotFoundError


class WatchedDisk(DirectoryStore):
    """A directory store that records which thread wrote each blob, waits on a gate before
    writing, and refuses every write once told to."""

    def __init__(self, root) -> None:
        super().__init__(root, durable=False)
        self.writers: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.refusing = False

    def _store(self, cid: str, data: bytes) -> None:
        self.writers.append(threading.current_thread().name)
        self.gate.wait(timeout=10)
        if self.refusing:
            raise OSError(28, "No space left on device")
        super()._store(cid, data)


def test_a_put_returns_before_its_write_and_is_read_from_the_bytes_hashed(tmp_path):
    disk = WatchedDisk(tmp_path)
    reads = SharedReads(disk, write_behind=True)
    disk.gate.clear()  # the write cannot finish until the gate opens
    cid = reads.put(b"an update")
    reads.pin(cid)  # queued behind the write: a pin of an absent blob would fail
    assert reads.get(cid) == b"an update"
    assert not disk.blob_path(cid).exists()
    disk.gate.set()
    reads.drain()
    assert disk.get(cid) == b"an update" and disk.is_pinned(cid)
    assert disk.writers and all(w.startswith("flare-write-behind") for w in disk.writers)
    reads.close()


def test_without_write_behind_a_put_is_written_before_it_returns(tmp_path):
    disk = WatchedDisk(tmp_path)
    cid = SharedReads(disk).put(b"an update")
    assert disk.get(cid) == b"an update"
    assert disk.writers == [threading.current_thread().name]


def test_a_failed_write_is_raised_by_the_next_drain_and_its_pin_fails_too(tmp_path):
    disk = WatchedDisk(tmp_path)
    reads = SharedReads(disk, write_behind=True)
    disk.refusing = True
    cid = reads.put(b"an update")
    reads.pin(cid)
    with pytest.raises(OSError, match="No space left"):
        reads.drain()
    assert not disk.has(cid)
    reads.drain()  # reported once
    reads.pin(cid)
    with pytest.raises(BlobNotFoundError):
        reads.drain()
    reads.close()


@pytest.mark.parametrize("ask", ["forget", "has", "is_pinned"])
def test_whatever_asks_the_store_itself_waits_for_the_writes_first(tmp_path, ask):
    disk = WatchedDisk(tmp_path)
    reads = SharedReads(disk, write_behind=True)
    disk.refusing = True
    cid = reads.put(b"an update")
    with pytest.raises(OSError, match="No space left"):
        getattr(reads, ask)(*([] if ask == "forget" else [cid]))
    reads.close()


def small_config(rounds: int) -> SimulationConfig:
    return SimulationConfig(model="logreg", clients=3, malicious=0, local_epochs=1, rounds=rounds)


def test_a_run_on_disk_writes_behind_and_its_store_passes_the_audit(tmp_path):
    disk = WatchedDisk(tmp_path / "blobs")
    simulation = ProtocolSimulation(small_config(rounds=2), ProtocolConfig(state=tmp_path / "c"))
    simulation._open_store = lambda: disk
    simulation.run()
    assert any(w.startswith("flare-write-behind") for w in disk.writers)
    assert not any(t.name.startswith("flare-write-behind") for t in threading.enumerate())
    with InMemoryChain(tmp_path / "c") as chain:
        assert verify_task(chain, DirectoryStore(tmp_path / "blobs"), 1).ok


def test_a_write_failing_in_a_round_stops_the_run_before_that_round_is_recorded(tmp_path):
    disk = WatchedDisk(tmp_path / "blobs")

    class DiskFullAfterRoundOne(RunObserver):
        def round_finished(self, record):
            disk.refusing = True

    simulation = ProtocolSimulation(small_config(rounds=3), ProtocolConfig(state=tmp_path / "c"))
    simulation._open_store = lambda: disk
    with pytest.raises(RunInterrupted) as interrupted:
        simulation.run(DiskFullAfterRoundOne())
    report = interrupted.value.report
    assert [r.round for r in report.rounds] == [1]
    assert report.interrupted == "OSError: [Errno 28] No space left on device"

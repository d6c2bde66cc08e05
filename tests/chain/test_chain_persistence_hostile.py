"""The chain database under damage and misuse: one typed error naming the file, or the
same chain as before; a read-only open changes nothing on disk."""

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conformance.scenario import World, identities
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flare.chain import InMemoryChain, JournalError
from flare.errors import ConfigError


def small_run(chain: InMemoryChain) -> None:
    """Every kind of row a replay reads, in few pages: a task, a registration (dynamic ABI
    bytes), the start and a submission, then empty blocks."""
    world = World(chain, chain.mine)
    task_id = world.started_task(registered=1, min_clients=1)
    world.submit(task_id, 0)
    chain.mine(2)


def chain_view(chain: InMemoryChain) -> tuple[object, ...]:
    tasks = [chain.task(task_id) for task_id in range(1, chain.task_count() + 1)]
    return chain.block_number(), chain.events(), tasks


@dataclass(frozen=True)
class StoredChain:
    """A journal's bytes and the chain they hold (repr kept short for failure reports)."""

    data: bytes = field(repr=False)
    view: tuple[object, ...] = field(repr=False)


def files_beside(path: Path) -> dict[str, str]:
    """Every file in ``path``'s directory and a digest of its bytes."""
    return {
        child.name: hashlib.sha256(child.read_bytes()).hexdigest()
        for child in sorted(path.parent.iterdir())
    }


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> StoredChain:
    """A cleanly closed small journal."""
    identities()  # key derivation, once, outside any timed example
    path = tmp_path_factory.mktemp("journal") / "chain.db"
    with InMemoryChain(path) as chain:
        small_run(chain)
    with InMemoryChain(path, read_only=True) as chain:
        view = chain_view(chain)
    return StoredChain(path.read_bytes(), view)


def opens_to_the_same_chain_or_one_journal_error(
    path: Path, original: tuple[object, ...], *, read_only: bool
) -> None:
    try:
        with InMemoryChain(path, read_only=read_only) as chain:
            assert chain_view(chain) == original
    except JournalError as exc:
        message = str(exc)
        assert str(path) in message
        assert message.isprintable()


def flipped(data: bytes, position: int, mask: int = 0xFF) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= mask
    return bytes(damaged)


def test_one_flipped_byte_in_the_header_or_any_page_reads_alike_or_fails_in_one_line(
    tmp_path: Path, journal: StoredChain
) -> None:
    data, original = journal.data, journal.view
    # the whole 100-byte SQLite header, then a stride that visits every page several times
    positions = [*range(100), *range(100, len(data), (len(data) - 100) // 40)]
    for position in positions:
        path = tmp_path / f"flipped-{position}.db"
        path.write_bytes(flipped(data, position))
        opens_to_the_same_chain_or_one_journal_error(path, original, read_only=True)
        assert path.read_bytes() == flipped(data, position)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_a_writer_reopening_a_damaged_journal_gets_the_chain_or_one_journal_error(
    tmp_path: Path, journal: StoredChain, data: st.DataObject
) -> None:
    original_bytes, original = journal.data, journal.view
    position = data.draw(st.integers(0, len(original_bytes) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    path = tmp_path / "damaged.db"
    path.write_bytes(flipped(original_bytes, position, mask))
    for leftover in (f"{path}-wal", f"{path}-shm"):
        Path(leftover).unlink(missing_ok=True)
    opens_to_the_same_chain_or_one_journal_error(path, original, read_only=False)


@pytest.mark.slow
def test_every_eleventh_byte_flipped_reads_alike_or_fails_in_one_line(
    tmp_path: Path, journal: StoredChain
) -> None:
    data, original = journal.data, journal.view
    path = tmp_path / "flipped.db"
    for position in range(0, len(data), 11):
        for read_only in (True, False):
            path.write_bytes(flipped(data, position))
            for leftover in (f"{path}-wal", f"{path}-shm"):
                Path(leftover).unlink(missing_ok=True)
            opens_to_the_same_chain_or_one_journal_error(path, original, read_only=read_only)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty"),
        (b"name,round\nalice,1\n" * 50, "is not an SQLite database"),
        (b"SQLite format 3\x00" + bytes(20), "is not an SQLite database"),
    ],
)
def test_what_is_not_a_database_is_refused_read_only(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=reason):
        InMemoryChain(path, read_only=True)
    assert files_beside(path) == {"state.db": hashlib.sha256(content).hexdigest()}


def foreign_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE people (name TEXT, age INTEGER)")
    db.execute("INSERT INTO people VALUES ('ada', 36)")
    db.commit()
    db.close()


@pytest.mark.parametrize("read_only", [True, False])
def test_a_foreign_sqlite_database_is_refused_and_left_as_it_was(
    tmp_path: Path, read_only: bool
) -> None:
    path = tmp_path / "app.db"
    foreign_database(path)
    before = files_beside(path)
    with pytest.raises(JournalError, match="not a Flare chain state: it holds other tables"):
        InMemoryChain(path, read_only=read_only)
    assert files_beside(path) == before


def test_an_empty_sqlite_database_and_an_empty_meta_table_are_no_chain(tmp_path: Path) -> None:
    path = tmp_path / "blank.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE scratch (x)")
    db.execute("DROP TABLE scratch")
    db.close()
    with pytest.raises(JournalError, match=r"no Flare tables$"):
        InMemoryChain(path, read_only=True)
    InMemoryChain(path).close()  # a writer may start a chain in an empty database
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="its meta table is empty"):
        InMemoryChain(path, read_only=True)


def test_a_copy_made_without_the_wal_of_a_running_writer_is_refused_with_a_hint(
    tmp_path: Path,
) -> None:
    live = tmp_path / "run" / "chain.db"
    live.parent.mkdir()
    copied = tmp_path / "copy" / "chain.db"
    copied.parent.mkdir()
    with InMemoryChain(live) as chain:
        small_run(chain)
        assert Path(f"{live}-wal").stat().st_size > 0  # nothing checkpointed yet
        copied.write_bytes(live.read_bytes())
    before = files_beside(copied)
    with pytest.raises(JournalError, match=r"copied without its -wal file\?"):
        InMemoryChain(copied, read_only=True)
    assert files_beside(copied) == before


def test_a_live_writers_files_are_read_through_its_wal_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "chain.db"
    with InMemoryChain(path) as writer:
        small_run(writer)
        before = files_beside(path)
        assert set(before) == {"chain.db", "chain.db-wal", "chain.db-shm"}
        with InMemoryChain(path, read_only=True) as reader:
            assert chain_view(reader) == chain_view(writer)
        assert files_beside(path) == before
        writer.mine(1)  # the writer carries on undisturbed
    with InMemoryChain(path, read_only=True) as reader:
        assert reader.block_number() == writer.block_number()


@pytest.mark.parametrize("keep_shm", [True, False])
def test_a_crashed_writers_state_is_read_whole_without_touching_it(
    tmp_path: Path, keep_shm: bool
) -> None:
    live = tmp_path / "run" / "chain.db"
    live.parent.mkdir()
    crashed = tmp_path / "crashed" / "chain.db"
    crashed.parent.mkdir()
    with InMemoryChain(live) as writer:
        small_run(writer)
        view = chain_view(writer)
        # what a killed writer leaves behind: the database, its WAL and the WAL's index
        for suffix in ("", "-wal", "-shm") if keep_shm else ("", "-wal"):
            Path(f"{crashed}{suffix}").write_bytes(Path(f"{live}{suffix}").read_bytes())
    assert Path(f"{crashed}-wal").stat().st_size > 0  # the run lives in the WAL alone
    before = files_beside(crashed)
    with InMemoryChain(crashed, read_only=True) as chain:
        assert chain_view(chain) == view
    assert files_beside(crashed) == before


def test_a_read_only_chain_refuses_to_transact_or_mine(tmp_path: Path) -> None:
    path = tmp_path / "chain.db"
    with InMemoryChain(path) as chain:
        small_run(chain)
    before = files_beside(path)
    with InMemoryChain(path, read_only=True) as chain:
        head = chain.block_number()
        with pytest.raises(ConfigError, match="opened read-only"):
            World(chain, chain.mine).create_task()
        with pytest.raises(ConfigError, match="opened read-only"):
            chain.mine(1)
        assert chain.block_number() == head
    assert files_beside(path) == before
    with pytest.raises(ConfigError, match="needs a database"):
        InMemoryChain(read_only=True)

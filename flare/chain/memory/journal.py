"""SQLite storage of an in-memory chain: a journal of applied transactions plus their logs.

Why a journal and not state tables: the transactions *are* the chain. Replaying them
through the same :class:`flare.chain.memory.ledger.Ledger` rebuilds exactly the state the rules
produce, with no second representation of that state to keep in sync as the protocol
evolves. The journal stores each transaction as the calldata a real contract would
receive, and each log as Ethereum ``(topics, data)``, so an auditor can read the file with
SQL or any ABI tool without Flare. On reopen the replayed logs are compared with the
stored ones, which catches a corrupted file or a rule change that would rewrite history.

Only successful transactions are journaled (a revert changes nothing and mines nothing).
Each transaction is one SQLite transaction in WAL mode. A durable journal (the default)
runs with ``synchronous=NORMAL``: it survives a process crash and, but for its last
transactions, a machine crash. ``durable=False`` is ``synchronous=OFF``: SQLite never
waits for the disk, so a journal survives a process crash only (the operating system still
holds every write), for a run that a machine crash ends anyway (the protocol simulation,
whose blob store skips its fsyncs likewise); opening and closing it then cost no disk
syncs, which are most of what a short run's journal costs.

An auditor opens the file read-only (``Journal(path, read_only=True)``): nothing is written
to it or created beside it. A file that is not a Flare journal, or is damaged anywhere, is
refused with one :class:`JournalError` naming it, in either mode.
"""

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eth_utils import is_checksum_address

from flare.chain.api.errors import ChainError

FORMAT_VERSION = "2"
"""Version 2 added each transaction's value (a stake bonded by ``registerStaked``)."""
_SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_MODE_BYTE = 18
"""Header offset of the file format write version: 2 for a database in WAL mode."""
_TABLES = frozenset({"meta", "transactions", "logs"})
_READ_ERRORS = (sqlite3.Error, UnicodeDecodeError)
"""What a damaged file raises from SQLite: a damaged schema makes even the error message
(which quotes it) undecodable, hence ``UnicodeDecodeError``."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
    block INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    calldata BLOB NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    block INTEGER NOT NULL REFERENCES transactions(block),
    log_index INTEGER NOT NULL,
    event TEXT NOT NULL,
    topic0 BLOB NOT NULL,
    topic1 BLOB,
    topic2 BLOB,
    topic3 BLOB,
    data BLOB NOT NULL,
    PRIMARY KEY (block, log_index)
);
"""


class JournalError(ChainError):
    """The chain database is unreadable, from another chain, or disagrees with a replay."""


def printable(text: object) -> str:
    """``text`` on one line: a damaged file must not break or restyle the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


@dataclass(frozen=True)
class ChainIdentity:
    """What fixes every seed and VRF input of a chain: stored once, checked on reopen."""

    chain_id: int
    contract_address: str
    randao_seed: bytes


@dataclass(frozen=True)
class StoredLog:
    """One log as Ethereum stores it, plus the event name for human readers of the file."""

    event: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class StoredTransaction:
    """One applied transaction and the logs it emitted, in order."""

    block: int
    sender: str
    calldata: bytes
    value: int
    """The wei the transaction carried; stored as decimal text, since it may exceed 2^63."""
    logs: tuple[StoredLog, ...]


class Journal:
    """The SQLite file behind a persistent :class:`flare.chain.InMemoryChain`.

    ``Journal(path)`` opens or creates a journal for writing (``durable=False``: see the
    module docstring). ``read_only=True`` opens an existing one for reading without writing
    to the file or creating any beside it, and raises :class:`JournalError` unless it holds
    a Flare chain.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False, durable: bool = True) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._private_copy: tempfile.TemporaryDirectory[str] | None = None
        try:
            self._db = self._connect_read_only() if read_only else sqlite3.connect(str(path))
        except _READ_ERRORS as exc:
            self._remove_private_copy()
            raise JournalError(f"cannot open chain database {path}: {printable(exc)}") from exc
        except BaseException:
            self._remove_private_copy()
            raise
        self._db.isolation_level = None
        try:
            if read_only:
                self._check_read_only()
            else:
                # Before the first write: a foreign database must not get Flare's tables.
                self._has_flare_tables()
                # Before the switch to WAL, which syncs the file under the default level.
                self._db.execute(f"PRAGMA synchronous={'NORMAL' if durable else 'OFF'}")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
        except _READ_ERRORS as exc:
            self.close()
            raise JournalError(f"cannot open chain database {path}: {printable(exc)}") from exc
        except BaseException:
            self.close()
            raise

    def _connect_read_only(self) -> sqlite3.Connection:
        _sqlite_header(self.path)
        wal = Path(f"{self.path}-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            return self._open_private_copy(wal)
        # immutable: no locks, hence no -shm file; there is no WAL to read.
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        return sqlite3.connect(uri, uri=True)

    def _open_private_copy(self, wal: Path) -> sqlite3.Connection:
        """Reading through a WAL needs its shared-memory index beside it, which SQLite would
        create or rewrite: read a private copy instead. The WAL is copied first, so that a
        checkpoint by a live writer in between leaves the copy newer, never torn."""
        self._private_copy = tempfile.TemporaryDirectory(prefix="flare-journal-")
        copy = Path(self._private_copy.name) / "chain.db"
        try:
            shutil.copyfile(wal, f"{copy}-wal")
            shutil.copyfile(self.path, copy)
        except OSError as exc:
            raise JournalError(f"cannot read chain database {self.path}: {exc}") from exc
        return sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True)

    def _check_read_only(self) -> None:
        if not self._has_flare_tables():
            # A run's first pages live in its WAL until a checkpoint: a copy of the main file
            # alone is a WAL-mode database without tables.
            wal_mode = _sqlite_header(self.path)[_WAL_MODE_BYTE] == 2
            lost_wal = wal_mode and self._private_copy is None
            hint = " (was it copied without its -wal file?)" if lost_wal else ""
            raise JournalError(f"{self.path} is not a Flare chain state: no Flare tables{hint}")
        if self.identity() is None:
            raise JournalError(f"{self.path} is not a Flare chain state: its meta table is empty")

    def _has_flare_tables(self) -> bool:
        """Whether Flare's tables exist; :class:`JournalError` if any other table does."""
        names = {
            str(name)
            for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if names - _TABLES:
            foreign = printable(", ".join(sorted(names - _TABLES)))
            raise JournalError(
                f"{self.path} is not a Flare chain state: it holds other tables ({foreign})"
            )
        return names == _TABLES

    def identity(self) -> ChainIdentity | None:
        """The stored chain identity, or ``None`` for a new, empty database."""
        with self._reading("its meta table"):
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
        if not meta:
            return None
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise JournalError(
                f"{self.path}: unsupported chain database format {printable(repr(version))}"
            )
        try:
            identity = ChainIdentity(
                int(meta["chain_id"]),
                meta["contract_address"],
                bytes.fromhex(meta["randao_seed"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise JournalError(f"{self.path}: damaged chain identity: {printable(exc)}") from exc
        if not is_checksum_address(identity.contract_address):
            raise JournalError(f"{self.path}: damaged contract address in its meta table")
        return identity

    def initialize(self, identity: ChainIdentity) -> None:
        """Record the identity of a new chain whose head is block 0."""
        rows = {
            "format_version": FORMAT_VERSION,
            "chain_id": str(identity.chain_id),
            "contract_address": identity.contract_address,
            "randao_seed": identity.randao_seed.hex(),
            "head": "0",
        }
        with self._transaction():
            self._db.executemany("INSERT INTO meta VALUES (?, ?)", rows.items())

    def head(self) -> int:
        """The latest block number, empty blocks included: the last transaction's block, or
        the head last mined to (the meta table's), whichever is later."""
        with self._reading("its head"):
            row = self._db.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
            (last_block,) = self._db.execute("SELECT MAX(block) FROM transactions").fetchone()
        if row is None or not isinstance(row[0], str) or not row[0].isdecimal():
            raise JournalError(f"{self.path}: damaged head block in its meta table")
        return max(int(row[0]), last_block or 0)

    def transactions(self) -> Iterator[StoredTransaction]:
        """Every journaled transaction in block order, with its logs."""
        with self._reading("its journal"):
            yield from self._transactions()

    def _transactions(self) -> Iterator[StoredTransaction]:
        logs: dict[int, list[StoredLog]] = {}
        for block, event, *topics, data in self._db.execute(
            "SELECT block, event, topic0, topic1, topic2, topic3, data FROM logs "
            "ORDER BY block, log_index"
        ):
            present = tuple(t for t in topics if t is not None)
            if not (
                isinstance(block, int)
                and isinstance(event, str)
                and isinstance(data, bytes)
                and all(isinstance(t, bytes) and len(t) == 32 for t in present)
            ):
                raise JournalError(f"{self.path}: damaged log of block {printable(block)}")
            logs.setdefault(block, []).append(StoredLog(event, present, data))
        for block, sender, calldata, value in self._db.execute(
            "SELECT block, sender, calldata, value FROM transactions ORDER BY block"
        ):
            if not (
                isinstance(block, int)
                and isinstance(sender, str)
                and is_checksum_address(sender)
                and isinstance(calldata, bytes)
                and isinstance(value, str)
                and value.isdecimal()
            ):
                raise JournalError(f"{self.path}: damaged transaction of block {printable(block)}")
            yield StoredTransaction(block, sender, calldata, int(value), tuple(logs.pop(block, ())))
        if logs:
            raise JournalError(
                f"{self.path}: logs of blocks {sorted(logs)} have no journaled transaction"
            )

    def append(self, transaction: StoredTransaction) -> None:
        """Journal one applied transaction, which moves the head to its block (the meta
        table's head only records empty blocks: one row less to write per transaction).

        On failure (disk full, file removed) nothing of the transaction is written, and a
        :class:`JournalError` says so: the in-memory chain is then one block ahead of its
        file, and reopening the file resumes from the last transaction written.
        """
        try:
            self._write(transaction)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot journal block {transaction.block}: {exc}") from exc

    def _write(self, transaction: StoredTransaction) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO transactions VALUES (?, ?, ?, ?)",
                (
                    transaction.block,
                    transaction.sender,
                    transaction.calldata,
                    str(transaction.value),
                ),
            )
            self._db.executemany(
                "INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (transaction.block, index, log.event, *_padded_topics(log.topics), log.data)
                    for index, log in enumerate(transaction.logs)
                ],
            )

    def advance_head(self, head: int) -> None:
        """Record empty blocks mined up to ``head``."""
        with self._transaction():
            self._set_head(head)

    def close(self) -> None:
        """Close the file; the journal is complete after every call, so nothing is flushed."""
        self._db.close()
        self._remove_private_copy()

    def _remove_private_copy(self) -> None:
        if self._private_copy is not None:
            self._private_copy.cleanup()
            self._private_copy = None

    def _set_head(self, head: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'head'", (str(head),))

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Turn SQLite's errors on a damaged file into one :class:`JournalError`."""
        try:
            yield
        except _READ_ERRORS as exc:
            raise JournalError(f"cannot read {what} in {self.path}: {printable(exc)}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN`` … ``COMMIT``, or ``ROLLBACK`` if the body raised."""
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _sqlite_header(path: Path) -> bytes:
    """The 100-byte database header, or :class:`JournalError` if ``path`` is no database."""
    try:
        with open(path, "rb") as file:
            header = file.read(100)
    except OSError as exc:
        raise JournalError(f"cannot read chain database {path}: {exc.strerror}") from exc
    if not header:
        raise JournalError(f"{path} is empty, not a Flare chain state")
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise JournalError(f"{path} is not an SQLite database, so not a Flare chain state")
    return header


def _padded_topics(topics: tuple[bytes, ...]) -> tuple[bytes | None, ...]:
    return (*topics, *([None] * (4 - len(topics))))

"""SQLite storage of an in-memory chain: a journal of applied transactions plus their logs.

Why a journal and not state tables: the transactions *are* the chain. Replaying them
through the same :class:`flare.chain.ledger.Ledger` rebuilds exactly the state the rules
produce, with no second representation of that state to keep in sync as the protocol
evolves. The journal stores each transaction as the calldata a real contract would
receive, and each log as Ethereum ``(topics, data)``, so an auditor can read the file with
SQL or any ABI tool without Flare. On reopen the replayed logs are compared with the
stored ones, which catches a corrupted file or a rule change that would rewrite history.

Only successful transactions are journaled (a revert changes nothing and mines nothing).
Each transaction is one SQLite transaction in WAL mode with ``synchronous=NORMAL``:
durable across a process crash, and fast enough for thousands of simulated clients.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flare.errors import FlareError

FORMAT_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
    block INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    calldata BLOB NOT NULL
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


class JournalError(FlareError):
    """The chain database is unreadable, from another chain, or disagrees with a replay."""


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
    logs: tuple[StoredLog, ...]


class Journal:
    """The SQLite file behind a persistent :class:`flare.chain.InMemoryChain`."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open chain database {path}: {exc}") from exc

    def identity(self) -> ChainIdentity | None:
        """The stored chain identity, or ``None`` for a new, empty database."""
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        if not meta:
            return None
        if meta.get("format_version") != FORMAT_VERSION:
            raise JournalError(f"unsupported chain database format {meta.get('format_version')}")
        return ChainIdentity(
            int(meta["chain_id"]),
            meta["contract_address"],
            bytes.fromhex(meta["randao_seed"]),
        )

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
        """The latest block number, empty blocks included."""
        (value,) = self._db.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
        return int(value)

    def transactions(self) -> Iterator[StoredTransaction]:
        """Every journaled transaction in block order, with its logs."""
        logs: dict[int, list[StoredLog]] = {}
        for block, event, *topics, data in self._db.execute(
            "SELECT block, event, topic0, topic1, topic2, topic3, data FROM logs "
            "ORDER BY block, log_index"
        ):
            stored = StoredLog(event, tuple(t for t in topics if t is not None), data)
            logs.setdefault(block, []).append(stored)
        for block, sender, calldata in self._db.execute(
            "SELECT block, sender, calldata FROM transactions ORDER BY block"
        ):
            yield StoredTransaction(block, sender, calldata, tuple(logs.pop(block, ())))
        if logs:
            raise JournalError(f"logs of blocks {sorted(logs)} have no journaled transaction")

    def append(self, transaction: StoredTransaction) -> None:
        """Journal one applied transaction and move the head to its block.

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
                "INSERT INTO transactions VALUES (?, ?, ?)",
                (transaction.block, transaction.sender, transaction.calldata),
            )
            self._db.executemany(
                "INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (transaction.block, index, log.event, *_padded_topics(log.topics), log.data)
                    for index, log in enumerate(transaction.logs)
                ],
            )
            self._set_head(transaction.block)

    def advance_head(self, head: int) -> None:
        """Record empty blocks mined up to ``head``."""
        with self._transaction():
            self._set_head(head)

    def close(self) -> None:
        """Close the file; the journal is complete after every call, so nothing is flushed."""
        self._db.close()

    def _set_head(self, head: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'head'", (str(head),))

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


def _padded_topics(topics: tuple[bytes, ...]) -> tuple[bytes | None, ...]:
    return (*topics, *([None] * (4 - len(topics))))

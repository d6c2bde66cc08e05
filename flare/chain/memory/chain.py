"""``InMemoryChain``: the embedded chain with the contract's exact semantics.

A simulated EVM chain with one contract on it: a block clock where every successful
transaction mines one block, ``prevrandao`` derived from a seed, an event log, and the
contract rules of :mod:`flare.chain.memory.ledger`. Given a database path it journals every
transaction to SQLite (:mod:`flare.chain.memory.journal`) and replays the journal on reopen,
so a simulation survives a restart and can be audited afterwards. The chain-level rules
are docs/protocol.md §8.
"""

import bisect
import copy
import heapq
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from os import PathLike
from types import TracebackType

from eth_abi.exceptions import DecodingError
from eth_utils import keccak, to_checksum_address

from flare.chain.api.abi import word
from flare.chain.api.calls import Call, checked_calldata, decode_call
from flare.chain.api.connector import ChainConnector, SenderAccount
from flare.chain.api.errors import ChainError
from flare.chain.api.events import Event, Receipt, encode_log
from flare.chain.api.types import Participant, Proposal, Round, Task
from flare.chain.memory import stake
from flare.chain.memory.journal import (
    ChainIdentity,
    Journal,
    JournalError,
    StoredLog,
    StoredTransaction,
    printable,
)
from flare.chain.memory.ledger import Ledger
from flare.chain.memory.task_state import BlockContext, ContractInstance
from flare.errors import ConfigError

ANVIL_CHAIN_ID = 31337
ANVIL_FIRST_CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
"""Where Anvil's first dev account deploys its first contract: seeds match a fresh Anvil."""
DEFAULT_RANDAO_SEED = keccak(b"flare-in-memory-randao")


class _Node:
    """The simulated chain that every sender-bound :class:`InMemoryChain` shares."""

    def __init__(self, identity: ChainIdentity, journal: Journal | None) -> None:
        self.identity = identity
        self.journal = journal
        self.ledger = Ledger(ContractInstance(identity.chain_id, identity.contract_address))
        self.head = 0
        # Every log under (task or None, kind or None): a reader asking for one kind of one
        # task bisects a list of just those, where a round has thousands of other logs.
        self.logs_by_key: dict[tuple[int | None, type[Event] | None], list[Event]] = {}

    def prevrandao(self, block_number: int) -> int:
        return int.from_bytes(keccak(self.identity.randao_seed + word(block_number)), "big")

    def execute(self, sender: str, call: Call, block_number: int) -> list[Event]:
        """Apply ``call`` in ``block_number``; on a revert nothing (head included) changes."""
        block = BlockContext(block_number, self.prevrandao, sender)
        applied = self.ledger.apply(call, block)
        events = [replace(event, log_index=index) for index, event in enumerate(applied)]
        self.head = block_number
        for event in events:
            task_id: int = event.task_id  # type: ignore[attr-defined]
            for key in ((None, None), (task_id, None), (None, type(event)), (task_id, type(event))):
                self.logs_by_key.setdefault(key, []).append(event)
        return events

    def window(
        self,
        task_id: int | None,
        kind: type[Event] | None,
        from_block: int,
        to_block: int | None,
    ) -> list[Event]:
        """The logs of ``kind`` (any if None) and ``task_id`` (any if None) in the blocks."""
        source = self.logs_by_key.get((task_id, kind), [])
        start = bisect.bisect_left(source, from_block, key=_block_of)
        stop = (
            len(source)
            if to_block is None
            else bisect.bisect_right(source, to_block, key=_block_of)
        )
        return source[start:stop]

    def replay(self, journal: Journal) -> None:
        """Re-execute every journaled transaction and check it logs what it logged before."""
        for stored in journal.transactions():
            if stored.block <= self.head:
                raise JournalError(f"{journal.path}: journal block {stored.block} is out of order")
            try:
                call = decode_call(stored.calldata, stored.value)
                events = self.execute(stored.sender, call, stored.block)
            # A damaged file can hold any calldata: eth_abi raises DecodingError, or
            # OverflowError for a length beyond memory; the rules raise ChainError.
            except (ChainError, DecodingError, KeyError, OverflowError, ValueError) as exc:
                raise JournalError(
                    f"{journal.path}: journal block {stored.block} no longer applies: "
                    f"{printable(exc)}"
                ) from exc
            if _stored_logs(events) != stored.logs:
                raise JournalError(
                    f"{journal.path}: journal block {stored.block} replays to different logs"
                )
        self.head = journal.head()


class InMemoryChain(ChainConnector):
    """The coordination contract on a simulated chain, optionally persisted to SQLite.

    ``InMemoryChain()`` is a fresh chain at block 0; ``InMemoryChain(path)`` opens or
    creates the chain stored at ``path``; with ``read_only=True`` it opens an existing one
    for auditing, writes nothing to it and refuses transactions; ``durable=False`` journals
    for a run that a machine crash ends anyway (:mod:`flare.chain.memory.journal`). Identity
    arguments left ``None`` take the stored values (or the defaults for a new chain); a
    value that contradicts the stored one is a :class:`ConfigError`, since it would change
    every seed.
    The instance returned by the constructor has no sender; ``as_sender`` gives connectors
    that share its chain.
    """

    def __init__(
        self,
        database: str | PathLike[str] | None = None,
        *,
        read_only: bool = False,
        durable: bool = True,
        chain_id: int | None = None,
        contract_address: str | None = None,
        randao_seed: bytes | None = None,
    ) -> None:
        if read_only and database is None:
            raise ConfigError("a read-only chain needs a database to read")
        journal = (
            Journal(database, read_only=read_only, durable=durable)
            if database is not None
            else None
        )
        self._sender: str | None = None
        try:
            stored = journal.identity() if journal is not None else None
            identity = _resolve_identity(stored, chain_id, contract_address, randao_seed)
            self._node = _Node(identity, journal)
            if journal is not None and stored is None:
                journal.initialize(identity)
            elif journal is not None:
                self._node.replay(journal)
        except BaseException:
            if journal is not None:
                journal.close()
            raise

    # -- identity and clock ------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return self._node.identity.chain_id

    @property
    def contract_address(self) -> str:
        return self._node.identity.contract_address

    @property
    def sender(self) -> str | None:
        return self._sender

    def as_sender(self, account: SenderAccount) -> "InMemoryChain":
        bound = copy.copy(self)
        bound._sender = _checksummed(account.address)
        return bound

    def block_number(self) -> int:
        return self._node.head

    def mine(self, blocks: int = 1) -> int:
        """Mine ``blocks`` empty blocks (Anvil's ``anvil_mine``); return the new head."""
        if blocks < 0:
            raise ConfigError("cannot mine a negative number of blocks")
        self._require_writable()
        self._node.head += blocks
        if self._node.journal is not None:
            self._node.journal.advance_head(self._node.head)
        return self._node.head

    def prevrandao(self, block_number: int) -> int:
        """``block.prevrandao`` of ``block_number``: ``keccak256(randaoSeed ‖ uint256(n))``."""
        return self._node.prevrandao(block_number)

    def _require_writable(self) -> None:
        journal = self._node.journal
        if journal is not None and journal.read_only:
            raise ConfigError(f"{journal.path} was opened read-only")

    # -- transport ---------------------------------------------------------------------

    def transact(self, call: Call) -> Receipt:
        if self._sender is None:
            raise ConfigError("this connector has no sender; use chain.as_sender(account)")
        self._require_writable()
        calldata = checked_calldata(call)
        node = self._node
        block_number = node.head + 1
        events = node.execute(self._sender, call, block_number)
        if node.journal is not None:
            stored = StoredTransaction(
                block_number, self._sender, calldata, call.value, _stored_logs(events)
            )
            node.journal.append(stored)
        return Receipt(block_number, tuple(events))

    def events(
        self,
        kinds: Sequence[type[Event]] | None = None,
        *,
        task_id: int | None = None,
        from_block: int = 0,
        to_block: int | None = None,
    ) -> list[Event]:
        wanted: list[type[Event] | None] = [None] if kinds is None else list(dict.fromkeys(kinds))
        windows = [self._node.window(task_id, kind, from_block, to_block) for kind in wanted]
        if len(windows) == 1:
            return windows[0]
        return list(heapq.merge(*windows, key=_chain_position))

    # -- views -------------------------------------------------------------------------

    def task_count(self) -> int:
        return self._node.ledger.task_count()

    def task(self, task_id: int) -> Task:
        return self._node.ledger.task(task_id)

    def current_round(self, task_id: int) -> Round:
        return self._node.ledger.current_round(task_id)

    def participant(self, task_id: int, account: str) -> Participant:
        return self._node.ledger.participant(task_id, _checksummed(account))

    def proposal(self, task_id: int, proposal_id: int) -> Proposal:
        return self._node.ledger.proposal(task_id, proposal_id)

    def admission_root(self, task_id: int) -> bytes:
        return self._node.ledger.admission_root(task_id)

    def min_stake(self, task_id: int) -> int:
        return stake.min_stake(self._node.ledger.task_state(task_id))

    def stake_of(self, task_id: int, account: str) -> int:
        state = self._node.ledger.task_state(task_id)
        return stake.stake_of(state, _checksummed(account))

    def stake_snapshot(self, task_id: int) -> int:
        return stake.stake_snapshot(self._node.ledger.task_state(task_id))

    def contract_balance(self) -> int:
        """The wei the contract holds: the stakes bonded and not withdrawn, over all tasks."""
        return self._node.ledger.balance

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database, if any; every transaction is already on disk."""
        if self._node.journal is not None:
            self._node.journal.close()

    def __enter__(self) -> "InMemoryChain":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _resolve_identity(
    stored: ChainIdentity | None,
    chain_id: int | None,
    contract_address: str | None,
    randao_seed: bytes | None,
) -> ChainIdentity:
    """Stored values win over defaults; an explicit value must agree with the stored one."""
    requested = {
        "chain_id": chain_id,
        "contract_address": contract_address and to_checksum_address(contract_address),
        "randao_seed": randao_seed,
    }
    for name, value in requested.items():
        if stored is not None and value is not None and value != getattr(stored, name):
            stored_value = getattr(stored, name)
            raise ConfigError(f"{name} {value!r} differs from the stored {stored_value!r}")
    return replace(
        stored or ChainIdentity(ANVIL_CHAIN_ID, ANVIL_FIRST_CONTRACT, DEFAULT_RANDAO_SEED),
        **{name: value for name, value in requested.items() if value is not None},
    )


@lru_cache(maxsize=1 << 16)
def _checksummed(address: str) -> str:
    # Each participant's every step names its account, and checksumming runs keccak.
    return to_checksum_address(address)


def _block_of(event: Event) -> int:
    return event.block_number


def _chain_position(event: Event) -> tuple[int, int]:
    return event.block_number, event.log_index


def _stored_logs(events: list[Event]) -> tuple[StoredLog, ...]:
    return tuple(
        StoredLog(type(event).__name__, tuple(topics), data)
        for event in events
        for topics, data in [encode_log(event)]
    )

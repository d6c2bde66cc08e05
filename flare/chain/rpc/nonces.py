"""Nonces for many threads sending from one account through one node.

``eth_getTransactionCount(pending)`` alone is not enough: two threads that ask before
either transaction reaches the node get the same nonce, and one of them is refused or,
worse, replaces the other. A local counter alone is not enough either: another process
may use the account, the node may drop a transaction, a dev chain may be reset. So each
account has a lock held from nonce choice to broadcast, a local next nonce, and the set
of nonces still in flight; the node's pending count is read under the lock and wins
whenever nothing of ours is in flight (our counter may be stale) and whenever it is ahead
(another sender used the account).
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flare.chain.rpc.transport import RpcClient


class NonceManager:
    """Next nonce per account, shared by every connector built from the same one."""

    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc
        self._guard = threading.Lock()
        self._account_locks: dict[str, threading.Lock] = {}
        self._next: dict[str, int] = {}
        self._in_flight: dict[str, set[int]] = {}

    @contextmanager
    def sending(self, address: str) -> Iterator["NonceSlot"]:
        """Hold ``address``'s lock while one transaction is signed and broadcast.

        Broadcasting under the lock means the node receives an account's transactions in
        nonce order, so none waits in the queue behind a gap we created ourselves.
        """
        with self._guard:
            lock = self._account_locks.setdefault(address, threading.Lock())
        with lock:
            yield NonceSlot(self, address)

    def _reserve(self, address: str) -> int:
        pending = int(self._rpc.request("eth_getTransactionCount", address, "pending"), 16)
        with self._guard:
            in_flight = self._in_flight.setdefault(address, set())
            local = self._next.get(address, 0) if in_flight else 0
            nonce = max(pending, local)
            self._next[address] = nonce + 1
            in_flight.add(nonce)
        return nonce

    def _unused(self, address: str, nonce: int) -> None:
        with self._guard:
            self._in_flight.get(address, set()).discard(nonce)
            if self._next.get(address) == nonce + 1:
                self._next[address] = nonce

    def finished(self, address: str, nonce: int) -> None:
        """The transaction with ``nonce`` is mined, or abandoned by its sender."""
        with self._guard:
            self._in_flight.get(address, set()).discard(nonce)


class NonceSlot:
    """The account lock, held: reserve a nonce, and give it back if it was never sent."""

    def __init__(self, manager: NonceManager, address: str) -> None:
        self._manager = manager
        self._address = address

    def reserve(self) -> int:
        """The nonce for the next transaction of this account (one RPC to the node)."""
        return self._manager._reserve(self._address)

    def unused(self, nonce: int) -> None:
        """``nonce`` never reached the node; the next transaction may take it."""
        self._manager._unused(self._address, nonce)

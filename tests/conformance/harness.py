"""Chain implementations under test, each with the dev-node powers the tests need."""

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from flare.chain import ChainConnector, InMemoryChain


class ChainHarness(ABC):
    """A fresh chain with the coordination contract deployed, plus block mining.

    Mining is not part of :class:`ChainConnector` because a public testnet cannot be told
    to mine; every dev node can (Anvil's ``anvil_mine``).
    """

    @abstractmethod
    def connector(self) -> ChainConnector:
        """A connector without a sender; tests bind senders with ``as_sender``."""

    @abstractmethod
    def mine(self, blocks: int) -> None:
        """Mine ``blocks`` empty blocks."""

    @abstractmethod
    def prevrandao(self, block_number: int) -> int:
        """``block.prevrandao`` of a mined block (what an adversary sees one block early)."""

    @abstractmethod
    def contract_balance(self) -> int:
        """The wei the coordination contract holds (the stakes bonded and not withdrawn)."""

    @abstractmethod
    def close(self) -> None:
        """Release whatever the harness started (files, node processes)."""


class InMemoryHarness(ChainHarness):
    """The embedded chain, persisted to a temporary SQLite file so every test journals."""

    def __init__(self, workdir: Path) -> None:
        self.chain = InMemoryChain(workdir / "chain.sqlite")

    def connector(self) -> ChainConnector:
        return self.chain

    def mine(self, blocks: int) -> None:
        self.chain.mine(blocks)

    def prevrandao(self, block_number: int) -> int:
        return self.chain.prevrandao(block_number)

    def contract_balance(self) -> int:
        return self.chain.contract_balance()

    def close(self) -> None:
        self.chain.close()


def _anvil_harness(workdir: Path) -> ChainHarness:
    """Imported on use, so the in-memory runs never need an RPC client or a node."""
    from conformance.anvil_harness import AnvilHarness

    return AnvilHarness(workdir)


HARNESSES: dict[str, Callable[[Path], ChainHarness]] = {
    "memory": InMemoryHarness,
    "anvil": _anvil_harness,
}
"""Harness factories by name: the embedded chain, and the shipped contract on Anvil."""

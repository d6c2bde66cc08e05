"""A fleet of participant agents sharing one chain, and the clock that drives them.

Shared by the agent tests on the in-memory chain and on Anvil. Each agent sees only the
chain and the store, like a process on its own device. The driver plays the clock: it
steps every agent once per sweep and mines a block when none of them had anything to do,
which is what time does to a real chain.
"""

import json
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flare.chain import ChainConnector, ContractError, InMemoryChain
from flare.chain.api.calls import Call
from flare.compression.wire import GZIP_MAGIC, gzip_compress, gzip_decompress
from flare.crypto.identity import ParticipantKeys
from flare.federation.agents import (
    AgentOptions,
    ParticipantAgent,
    StepOutcome,
    TaskSpec,
    publish_task,
    split_data,
)
from flare.federation.protocol.simulated_device import participant_keys
from flare.federation.rounds import EncodedUpdate
from flare.federation.task_parameters import TaskParameters
from flare.storage import ForwardingStore, MemoryStore, StorageProvider

CLIENTS = 6
ATTACKERS = (1, 4)
SPEC = TaskSpec(
    model="logreg",
    parameters=TaskParameters(
        max_rounds=3,
        min_clients=3,
        expected_committee=4,
        min_committee=2,
        submission_window=24,
        vote_window=24,
    ),
)


class RecordingChain(ChainConnector):
    """A chain that records every transaction an agent sends and how it ended.

    ``inner`` is any connector that can ``mine``; ``before`` runs just before a
    transaction goes through, to stage a race.
    """

    def __init__(self, inner, journal: list, before: Callable | None = None):
        self.inner, self.journal, self.before = inner, journal, before

    chain_id = property(lambda self: self.inner.chain_id)
    contract_address = property(lambda self: self.inner.contract_address)
    sender = property(lambda self: self.inner.sender)

    def as_sender(self, account) -> "RecordingChain":
        return RecordingChain(self.inner.as_sender(account), self.journal, self.before)

    def block_number(self) -> int:
        return self.inner.block_number()

    def mine(self, blocks: int = 1) -> int:
        return self.inner.mine(blocks)

    def transact(self, call: Call):
        if self.before is not None:
            self.before(self, call)
        try:
            receipt = self.inner.transact(call)
        except ContractError as exc:
            self.journal.append((self.sender, type(call).__name__, exc))
            raise
        self.journal.append((self.sender, type(call).__name__, None))
        return receipt

    def events(self, kinds=None, **window):
        return self.inner.events(kinds, **window)

    def task_count(self):
        return self.inner.task_count()

    def task(self, task_id):
        return self.inner.task(task_id)

    def current_round(self, task_id):
        return self.inner.current_round(task_id)

    def participant(self, task_id, account):
        return self.inner.participant(task_id, account)

    def proposal(self, task_id, proposal_id):
        return self.inner.proposal(task_id, proposal_id)

    def admission_root(self, task_id):
        return self.inner.admission_root(task_id)

    def min_stake(self, task_id):
        return self.inner.min_stake(task_id)

    def stake_of(self, task_id, account):
        return self.inner.stake_of(task_id, account)

    def stake_snapshot(self, task_id):
        return self.inner.stake_snapshot(task_id)


@dataclass
class Fleet:
    """Six participants of one task, and the clock."""

    root: Path
    data: Path
    chain: RecordingChain
    store: MemoryStore
    task_id: int
    codec: str = "powersgd"
    journal: list = field(default_factory=list)

    def keys(self, index: int) -> ParticipantKeys:
        return ParticipantKeys(*participant_keys(0, index))

    def agent(self, index: int, store: StorageProvider | None = None) -> ParticipantAgent:
        """Participant ``index``; attackers flip signs; ``store`` is its view of the store."""
        options = AgentOptions(codec=self.codec, attack="sign-flip" if index in ATTACKERS else None)
        return ParticipantAgent(
            self.chain,
            store or self.store,
            self.keys(index),
            self.task_id,
            self.data / f"client-{index}.npz",
            self.root / f"state-{index}",
            options,
            name=f"client-{index}",
        )

    def drive(
        self,
        agents: list[ParticipantAgent],
        *,
        fresh: Callable[[int], ParticipantAgent] | None = None,
        until: Callable[[], bool] | None = None,
        sweeps: int = 400,
    ) -> None:
        """Step every agent once per sweep; ``fresh`` replaces an agent before its step."""
        for _ in range(sweeps):
            outcomes = []
            for index in range(len(agents)):
                if fresh is not None:
                    agents[index] = fresh(index)
                outcomes.append(agents[index].step())
            if all(o is StepOutcome.DONE for o in outcomes) or (until and until()):
                return
            if StepOutcome.ACTED not in outcomes:
                self.chain.mine(1)
        raise AssertionError(f"the task did not finish in {sweeps} sweeps")

    def start(self, agents: Sequence[ParticipantAgent]) -> None:
        for agent in agents:
            assert agent.step() is StepOutcome.ACTED  # registers
        creator, _ = participant_keys(0, -1)
        self.chain.as_sender(creator).start_task(self.task_id)

    def refusals(self) -> list:
        return [entry for entry in self.journal if entry[2] is not None]


def rewrite_metadata(blob: bytes, pattern: str, replacement: str) -> bytes:
    """``blob`` with its update metadata edited by one regex substitution, framing kept valid.

    The container header is rewritten and re-padded, the tensors are left as they are,
    and a gzip-framed blob is framed again: the result passes every check of the framing,
    so only the decoder's reading of the metadata itself can refuse it.
    """
    gzipped = blob.startswith(GZIP_MAGIC)
    container = gzip_decompress(blob, 1 << 30) if gzipped else blob
    (length,) = struct.unpack("<Q", container[:8])
    header = json.loads(container[8 : 8 + length])
    metadata, count = re.subn(pattern, replacement, header["__metadata__"]["flare"], count=1)
    assert count == 1, f"{pattern!r} is not in the metadata"
    header["__metadata__"]["flare"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    container = struct.pack("<Q", len(text)) + text + container[8 + length :]
    return gzip_compress(container) if gzipped else container


HOSTILE_METADATA = {
    "out-of-range float": (r'"params":\{[^}]*\}', '"params":{"rank":1e400}'),
    "layout name that is a list": (r'"name":("[^"]*")', r'"name":[\1]'),
}
"""Correctly framed updates that once made the decoder raise ValueError and TypeError."""


def hostile(agent: ParticipantAgent, rewrite: Callable[[bytes], bytes]) -> ParticipantAgent:
    """``agent``, sending ``rewrite`` of each update it would honestly have sent."""
    encoded_update = agent.device.encoded_update

    def rewritten(*args: Any) -> EncodedUpdate:
        honest = encoded_update(*args)
        return replace(honest, blob=None if honest.blob is None else rewrite(honest.blob))

    agent.device.encoded_update = rewritten  # type: ignore[method-assign]
    return agent


class UnpublishedStore(ForwardingStore):
    """A device whose uploads never reach anyone: it submits CIDs nobody can fetch."""

    def _store(self, cid: str, data: bytes) -> None:
        pass

    def _pin(self, cid: str) -> None:
        pass


class MeteredStore(ForwardingStore):
    """Counts the bytes of each download, as a node that streams until told to stop.

    Such a node sends at most one byte past the caller's limit before the caller hangs
    up, so that is what an oversized blob costs here; ``downloads`` lists ``(cid, bytes)``.
    """

    def __init__(self, inner: StorageProvider) -> None:
        super().__init__(inner)
        self.downloads: list[tuple[str, int]] = []

    def _load(self, cid: str, limit: int) -> bytes:
        try:
            blob = super()._load(cid, self.max_blob_size)[: limit + 1]
        except Exception:
            self.downloads.append((cid, 0))
            raise
        self.downloads.append((cid, len(blob)))
        return blob


def make_fleet(root: Path, data: Path, spec: TaskSpec = SPEC, inner=None, **chain_options) -> Fleet:
    """A task published on ``inner`` (a fresh in-memory chain by default), no agents yet."""
    journal: list = []
    chain = RecordingChain(inner or InMemoryChain(), journal, **chain_options)
    store = MemoryStore()
    creator, _ = participant_keys(0, -1)
    task_id = publish_task(chain.inner.as_sender(creator), store, spec)
    return Fleet(root, data, chain, store, task_id, journal=journal)


def client_data(out: Path) -> Path:
    """``CLIENTS`` data shards of digits in ``out``, as ``flare task split-data`` writes them."""
    split_data("digits", CLIENTS, out)
    return out

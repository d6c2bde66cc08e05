"""A fleet of participant agents sharing one chain, and the clock that drives them.

Shared by the agent tests on the in-memory chain and on Anvil. Each agent sees only the
chain and the store, like a process on its own device. The driver plays the clock: it
steps every agent once per sweep and mines a block when none of them had anything to do,
which is what time does to a real chain.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flare.chain import ChainConnector, ContractError, InMemoryChain
from flare.chain.calls import Call
from flare.crypto.identity import ParticipantKeys
from flare.federation.agents import (
    AgentOptions,
    ParticipantAgent,
    StepOutcome,
    TaskSpec,
    publish_task,
    split_data,
)
from flare.federation.protocol.driver import participant_keys
from flare.storage import MemoryStore

CLIENTS = 6
ATTACKERS = (1, 4)
SPEC = TaskSpec(
    model="logreg",
    rounds=3,
    min_clients=3,
    expected_committee=4,
    min_committee=2,
    submission_window=24,
    vote_window=24,
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

    def agent(self, index: int) -> ParticipantAgent:
        options = AgentOptions(codec=self.codec, attack="sign-flip" if index in ATTACKERS else None)
        return ParticipantAgent(
            self.chain,
            self.store,
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

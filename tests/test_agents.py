"""Participant agents as separate processes run them, stepped against one in-memory chain.

Each agent sees only the chain and the store, like a process on its own device. The test
driver plays the clock: it steps every agent once per sweep and mines a block when none
of them had anything to do, which is what time does to a real chain.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from flare.chain import (
    ChainConnector,
    ContractError,
    InMemoryChain,
    RoundFinalized,
    RoundTimedOut,
    TaskStatus,
    UpdateSubmitted,
    Voted,
    decode_accepted,
)
from flare.chain.calls import Call, Timeout
from flare.chain.errors import VoteWindowOpen
from flare.compression import make_codec
from flare.compression.base import UpdateBinding
from flare.crypto.identity import ParticipantKeys
from flare.errors import ConfigError, DataError
from flare.federation.agents import (
    AgentOptions,
    EncoderStateStore,
    ParticipantAgent,
    StepOutcome,
    TaskSpec,
    publish_task,
    split_data,
)
from flare.federation.protocol.driver import participant_keys
from flare.federation.protocol.verify import verify_task
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


class Crash(Exception):
    """A process dying mid-action; ``sent`` says whether its transaction had gone out."""

    def __init__(self, sent: bool) -> None:
        super().__init__()
        self.sent = sent


class RecordingChain(ChainConnector):
    """The in-memory chain, recording every transaction an agent sends and how it ended.

    ``before`` runs just before a transaction goes through, to stage a race.
    """

    def __init__(self, inner: InMemoryChain, journal: list, before: Callable | None = None):
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


def make_fleet(root: Path, data: Path, spec: TaskSpec = SPEC, **chain_options) -> Fleet:
    journal: list = []
    chain = RecordingChain(InMemoryChain(), journal, **chain_options)
    store = MemoryStore()
    creator, _ = participant_keys(0, -1)
    task_id = publish_task(chain.inner.as_sender(creator), store, spec)
    return Fleet(root, data, chain, store, task_id, journal=journal)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    split_data("digits", CLIENTS, out)
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> tuple[Fleet, list[str]]:
    """One uninterrupted run that the restart tests must reproduce bit for bit."""
    fleet = make_fleet(tmp_path_factory.mktemp("reference"), data)
    handler = Lines()
    logger = logging.getLogger("flare.agent")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        agents = [fleet.agent(i) for i in range(CLIENTS)]
        fleet.start(agents)
        fleet.drive(agents)
    finally:
        logger.removeHandler(handler)
    return fleet, handler.lines


def test_six_agents_with_two_attackers_finalize_three_rounds(reference):
    fleet, lines = reference
    chain, task_id = fleet.chain.inner, fleet.task_id
    assert chain.task(task_id).status is TaskStatus.COMPLETED
    finalized = chain.events([RoundFinalized], task_id=task_id)
    assert [e.round for e in finalized] == [1, 2, 3]
    verdict = verify_task(chain, fleet.store, task_id)
    assert verdict.ok and len(verdict.rounds) == 3
    attackers = {fleet.keys(i).account.address for i in ATTACKERS}
    for event in finalized:
        submissions = chain.submissions(task_id, event.round, event.attempt)
        assert len({s.participant for s in submissions}) == len(submissions) == CLIENTS
        bitmap = chain.accepted_bitmap(task_id, event.proposal_id)
        accepted = {submissions[i].participant for i in decode_accepted(bitmap)}
        assert accepted and not accepted & attackers
    assert fleet.refusals() == []  # nobody ever sent a call the contract refused
    text = "\n".join(lines)
    for expected in (
        "submitted bafk",
        "seat won (output 0x",
        "proposed bafk",
        "voted approve on #",
        "(quorum reached)",
        "round 3 finalized → bafk",
        f"task {task_id} completed after 3 rounds → bafk",
    ):
        assert expected in text


def test_agents_restarted_before_every_step_reach_the_same_model(tmp_path, data, reference):
    done, _ = reference
    fleet = make_fleet(tmp_path, data)
    agents = [fleet.agent(i) for i in range(CLIENTS)]
    fleet.start(agents)
    fleet.drive(agents, fresh=fleet.agent)  # a new process, same keys and state, every step
    chain = fleet.chain.inner
    assert chain.task(fleet.task_id).model == done.chain.task(done.task_id).model
    assert chain.task(fleet.task_id).history_hash == done.chain.task(done.task_id).history_hash
    assert fleet.refusals() == []
    votes = [(e.voter, e.round, e.attempt) for e in chain.events([Voted])]
    assert len(votes) == len(set(votes)) == len(done.chain.inner.events([Voted]))


def test_crashes_around_the_submission_lose_no_encoder_state(tmp_path, data, reference):
    """Killed after staging the encoder state but before submitting, and after submitting
    but before committing: the restarted process re-sends the same bytes, or keeps the
    state of what it sent, so the task ends on exactly the reference model."""
    done, _ = reference
    fleet = make_fleet(tmp_path, data)
    would_send: dict[int, str] = {}
    fired: set[str] = set()

    def crashing(index: int) -> ParticipantAgent:
        agent = fleet.agent(index)
        submit, commit = agent.participant.submit, agent.encoder_state.commit

        def submit_then_die(chain, task_id, cid, num_samples):
            if index == 0 and chain.current_round(task_id).round == 2 and "submit" not in fired:
                fired.add("submit")
                would_send[index] = cid
                raise Crash(sent=False)
            submit(chain, task_id, cid, num_samples)

        def commit_then_die(epoch):
            if index == 3 and epoch == 2 and "commit" not in fired:
                fired.add("commit")
                raise Crash(sent=True)
            commit(epoch)

        agent.participant.submit = submit_then_die
        agent.encoder_state.commit = commit_then_die
        return agent

    class Restarting:
        """Wraps an agent; on a crash, a fresh process takes over at once."""

        def __init__(self, index: int) -> None:
            self.index, self.inner = index, crashing(index)

        def step(self) -> StepOutcome:
            try:
                return self.inner.step()
            except Crash as crash:
                self.inner = crashing(self.index)
                # The new process carries on where the old one died; stepping it in the
                # same sweep keeps the chain's transaction order that of the reference.
                return StepOutcome.ACTED if crash.sent else self.inner.step()

    agents = [Restarting(i) for i in range(CLIENTS)]
    fleet.start(agents)
    fleet.drive(agents)
    assert fired == {"submit", "commit"}
    chain = fleet.chain.inner
    address = fleet.keys(0).account.address
    sent = [e for e in chain.events([UpdateSubmitted]) if e.participant == address]
    assert sent[1].update.to_cid() == would_send[0]
    assert chain.task(fleet.task_id).model == done.chain.task(done.task_id).model
    assert not (tmp_path / "state-3" / "encoder-staged.safetensors").exists()
    assert fleet.refusals() == []


def test_too_few_seats_time_out_and_a_lost_timeout_race_is_harmless(tmp_path, data, caplog):
    rival, _ = participant_keys(0, 99)
    raced: set[int] = set()

    def rival_first(chain, call) -> None:
        # From the second attempt on, someone else's timeout always lands first.
        if not isinstance(call, Timeout):
            return
        epoch = chain.inner.current_round(call.task_id).epoch
        if epoch >= 2 and epoch not in raced:
            raced.add(epoch)
            chain.inner.as_sender(rival).timeout(call.task_id)

    spec = TaskSpec(model="logreg", rounds=1, expected_committee=1, min_committee=4, vote_window=4)
    fleet = make_fleet(tmp_path, data, spec, before=rival_first)
    fleet.codec = "none"
    agents = [fleet.agent(i) for i in range(CLIENTS)]
    fleet.start(agents)
    chain = fleet.chain.inner
    with caplog.at_level(logging.INFO, logger="flare.agent"):
        fleet.drive(agents, until=lambda: len(chain.events([RoundTimedOut])) >= 3)
    closed = [(e.round, e.attempt) for e in chain.events([RoundTimedOut])]
    assert closed == [(1, 0), (1, 1), (1, 2)]
    timeouts = [(sender, exc) for sender, call, exc in fleet.journal if call == "Timeout"]
    assert [exc for _, exc in timeouts if exc is None] == [None]  # the first, by an agent
    assert {type(exc) for _, exc in timeouts if exc is not None} == {VoteWindowOpen}
    assert "only a timeout can close it" in caplog.text


def test_run_returns_once_the_stop_event_is_set(tmp_path, data):
    fleet = make_fleet(tmp_path, data)
    agent = fleet.agent(0)
    stop = threading.Event()
    worker = threading.Thread(target=agent.run, args=(stop, 0.01))
    worker.start()
    deadline = time.monotonic() + 30
    while not fleet.chain.inner.participant(fleet.task_id, agent.address).registered:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive()


def test_run_refuses_a_data_file_that_does_not_fit_the_task(tmp_path, data):
    fleet = make_fleet(tmp_path, data)
    np.savez(tmp_path / "wrong.npz", X=np.zeros((5, 3)), y=np.zeros(5, dtype=np.int64))
    agent = fleet.agent(0)
    agent.data = tmp_path / "wrong.npz"
    with pytest.raises(DataError, match="3 features; the task's model takes 64"):
        agent.run(threading.Event(), 0.01)


SIGTERM_SCRIPT = """
import logging, sys
from pathlib import Path
from flare.chain import InMemoryChain
from flare.crypto.identity import ParticipantKeys
from flare.federation.agents import ParticipantAgent, TaskSpec, publish_task, stop_event_on_signals
from flare.federation.protocol.driver import participant_keys
from flare.storage import MemoryStore

logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
chain, store = InMemoryChain(), MemoryStore()
task = publish_task(chain.as_sender(participant_keys(0, -1)[0]), store, TaskSpec(model="logreg"))
keys = ParticipantKeys(*participant_keys(0, 0))
agent = ParticipantAgent(chain, store, keys, task, Path(sys.argv[1]), Path(sys.argv[2]))
agent.run(stop_event_on_signals(), 0.05)
"""


def test_sigterm_stops_a_participant_process_cleanly(tmp_path, data):
    process = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_SCRIPT, str(data / "client-0.npz"), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        seen = []
        for line in process.stdout:
            seen.append(line)
            if "waiting for the start" in line:
                break
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, "".join(seen) + output
    assert output.strip().endswith("stopped")


def test_encoder_state_survives_a_restart_and_drops_what_was_never_submitted(tmp_path):
    codec = make_codec("powersgd", rank=2)
    spec = {"w": (6, 5), "b": (5,)}
    rng = np.random.default_rng(0)
    deltas = [{n: rng.normal(size=s).astype(np.float32) for n, s in spec.items()} for _ in "abc"]
    binding = UpdateBinding("0xabc", "task", 1, 0, "base", 10)
    states = EncoderStateStore(tmp_path)
    first = codec.new_encoder(spec, 7)
    first.encode(deltas[0], binding)
    states.stage(first, epoch=1)
    states.commit(epoch=1)
    restarted = codec.new_encoder(spec, 7)
    states.restore(restarted, submitted_epoch=1)
    second = restarted.encode(deltas[1], binding)
    assert second == first.encode(deltas[1], binding)
    # staged for epoch 2, but the chain never saw that submission: dropped on restore
    states.stage(first, epoch=2)
    again = codec.new_encoder(spec, 7)
    states.restore(again, submitted_epoch=1)
    assert not states.staged.exists()
    assert again.encode(deltas[1], binding) == second
    with pytest.raises(ConfigError, match="keep the codec"):
        states.restore(make_codec("powersgd", rank=3).new_encoder(spec, 7), submitted_epoch=1)

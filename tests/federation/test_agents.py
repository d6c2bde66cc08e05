"""Participant agents as separate processes run them, stepped against one in-memory chain.

The fleet and its clock are in ``agent_fleet.py``; here: a clean run, restarts at every
step, crashes mid-submission, timeouts and their races, stopping, and encoder state.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from agent_fleet import ATTACKERS, CLIENTS, Fleet, client_data, make_fleet

from flare.chain import (
    RoundFinalized,
    RoundTimedOut,
    TaskStatus,
    UpdateSubmitted,
    Voted,
    decode_accepted,
)
from flare.chain.api.calls import Call, Submit, Timeout
from flare.chain.api.errors import SubmissionWindowClosed, VoteWindowOpen
from flare.compression import make_codec
from flare.compression.base import UpdateBinding
from flare.errors import ConfigError, DataError
from flare.federation.agents import (
    AgentOptions,
    EncoderStateStore,
    ParticipantAgent,
    StepOutcome,
    TaskSpec,
)
from flare.federation.protocol.simulated_device import participant_keys
from flare.federation.protocol.verify import verify_task
from flare.federation.task_parameters import TaskParameters


class Crash(Exception):
    """A process dying mid-action; ``sent`` says whether its transaction had gone out."""

    def __init__(self, sent: bool) -> None:
        super().__init__()
        self.sent = sent


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return client_data(tmp_path_factory.mktemp("data"))


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

    # k above the six participants: every one of them wins a seat, still short of the minimum.
    spec = TaskSpec(
        model="logreg",
        parameters=TaskParameters(
            max_rounds=1, expected_committee=7, min_committee=7, vote_window=4
        ),
    )
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


def test_a_refused_call_waits_for_the_next_block(tmp_path, data):
    refused: list[Call] = []

    def refuse_first_submit(chain, call) -> None:
        if isinstance(call, Submit) and not refused:
            refused.append(call)  # as a node does whose pending block already moved on
            raise SubmissionWindowClosed(call.task_id, 0)

    fleet = make_fleet(tmp_path, data, TaskSpec(model="logreg"), before=refuse_first_submit)
    fleet.codec = "none"
    agent = fleet.agent(0)
    fleet.start([agent])
    assert agent.step() is StepOutcome.ACTED  # seals the attempt's seed
    assert agent.step() is StepOutcome.ACTED  # the only participant always draws a seat
    assert [agent.step(), agent.step()] == [StepOutcome.IDLE, StepOutcome.IDLE]
    assert len(refused) == 1  # the second step did not even try
    fleet.chain.mine(1)
    assert agent.step() is StepOutcome.ACTED
    assert [call for _, call, exc in fleet.journal if exc is None][-1] == "Submit"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy says so when the attack overflows
def test_an_update_that_cannot_be_encoded_is_not_sent(tmp_path, data, caplog):
    fleet = make_fleet(tmp_path, data, TaskSpec(model="logreg"))
    overflowing = AgentOptions(attack="scaling", attack_strength=1e39)  # float32 → inf
    agent = ParticipantAgent(
        fleet.chain,
        fleet.store,
        fleet.keys(0),
        fleet.task_id,
        data / "client-0.npz",
        tmp_path / "state",
        overflowing,
    )
    fleet.start([agent])
    with caplog.at_level(logging.INFO, logger="flare.agent"):
        assert [agent.step() for _ in range(4)] == [
            StepOutcome.ACTED,  # sealed the attempt's seed
            StepOutcome.ACTED,  # the seat
            StepOutcome.ACTED,  # trained, could not encode, sent nothing
            StepOutcome.IDLE,
        ]
    assert "sends nothing this attempt" in caplog.text
    assert "Submit" not in [call for _, call, _ in fleet.journal]


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
    agent.device.data = tmp_path / "wrong.npz"
    with pytest.raises(DataError, match="3 features; the task's model takes 64"):
        agent.run(threading.Event(), 0.01)


SIGTERM_SCRIPT = """
import logging, sys
from pathlib import Path
from flare.chain import InMemoryChain
from flare.crypto.identity import ParticipantKeys
from flare.federation.agents import ParticipantAgent, TaskSpec, publish_task, stop_event_on_signals
from flare.federation.protocol.simulated_device import participant_keys
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

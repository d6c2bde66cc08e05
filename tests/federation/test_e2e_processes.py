"""End to end as separate OS processes: Anvil, Kubo, and one ``flare participant run`` each.

Nothing here shares memory with the participants: they reach the chain and the blobs only
through Anvil's RPC URL and Kubo's API, like devices on a network. The run has six
participants, two of them sign-flip attackers, three rounds; mid-run one participant and
one committee member are killed with SIGKILL and restarted with the same keys and state.
Afterwards the run is audited from chain and Kubo alone: every round re-derives, the
attackers' updates are outside every accepted set, nobody submitted or voted twice in one
attempt, and ``flare verify --ipfs`` agrees. Skipped only without the anvil or ipfs binary.
"""

import time
from pathlib import Path

import pytest
from process_harness import (
    Fleet,
    assert_once_per_attempt,
    assert_verify_cli_agrees,
    create_task,
    finish_task,
    running_daemons,
    start_task,
    task_options,
)

from flare.chain import SeatClaimed
from flare.chain.api.derive import decode_accepted
from flare.federation.protocol.aggregate import compute_aggregate, load_task_context
from flare.federation.protocol.verify import verify_task
from flare.storage import KuboStore

pytestmark = [pytest.mark.anvil, pytest.mark.kubo, pytest.mark.slow]

CLIENTS = 6
ATTACKERS = (1, 4)
ROUNDS = 3
TASK_ID = 1
DEADLINE_SECONDS = 300
TASK_OPTIONS = task_options("logreg", ROUNDS, min_clients=5, committee=4)
"""Windows of 20 one-second blocks: a participant restarted mid-round (torch import and two
keystore decryptions on a busy two-core machine) still makes the next attempt. Five of six
must submit, so every finalized attempt has an honest majority of at least three to two: with
two honest participants down, four submissions (two of them attackers) cannot finalize, and
the attempt times out until both are back. ``--force``:
a committee of four cannot meet the default capture bound; the attackers here are known."""


def attacker_options(index: int) -> list[str]:
    return ["--attack", "sign-flip"] if index in ATTACKERS else []


def test_six_participant_processes_filter_attackers_and_survive_kills(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = Fleet(tmp_path, tmp_path / "flare.json", TASK_ID, attacker_options)
    with running_daemons(tmp_path) as (anvil, kubo), fleet:
        task = create_task(tmp_path, anvil.rpc_url, kubo.api_url, CLIENTS, TASK_OPTIONS, capsys)
        chain, addresses = task.chain, task.addresses
        started = time.monotonic()
        start_task(task, fleet, capsys)

        # Round 2: once an honest participant holds a seat, SIGKILL it and another honest
        # one that holds none, and restart both with the same keys and state.
        honest = {addresses[f"client-{i}"].lower(): i for i in range(CLIENTS) if i not in ATTACKERS}
        seated: list[int] = []

        def honest_seat_in_round_2() -> bool:
            seated[:] = [
                honest[event.member.lower()]
                for event in chain.events([SeatClaimed], task_id=TASK_ID)
                if isinstance(event, SeatClaimed)
                and event.round == 2
                and event.member.lower() in honest
            ]
            return bool(seated)

        fleet.wait_until(honest_seat_in_round_2, DEADLINE_SECONDS, "an honest seat in round 2")
        member = seated[0]
        others = [i for i in honest.values() if i != member]
        plain = next((i for i in others if i not in seated), others[0])
        for index in (member, plain):
            fleet.processes[index].kill()
            fleet.processes[index].wait()
            fleet.launch(index)

        finish_task(task, fleet, DEADLINE_SECONDS - (time.monotonic() - started))

        assert_once_per_attempt(chain, TASK_ID)
        store = KuboStore(kubo.api_url)
        verdict = verify_task(chain, store, TASK_ID)
        assert verdict.ok and len(verdict.rounds) == ROUNDS, verdict
        attackers = {addresses[f"client-{i}"].lower() for i in ATTACKERS}
        context = load_task_context(chain, store, TASK_ID)
        for finalized in verdict.rounds:
            aggregate = compute_aggregate(chain, store, context, finalized.round, finalized.attempt)
            accepted = {
                aggregate.submissions[i].participant.lower()
                for i in decode_accepted(aggregate.accepted_bitmap)
            }
            assert accepted and not accepted & attackers, (finalized.round, accepted)

        assert_verify_cli_agrees(task, ROUNDS, capsys)

"""End to end as separate OS processes: Anvil, Kubo, and one ``flare participant run`` each.

Nothing here shares memory with the participants: they reach the chain and the blobs only
through Anvil's RPC URL and Kubo's API, like devices on a network. The run has six
participants, two of them sign-flip attackers, three rounds; mid-run one participant and
one committee member are killed with SIGKILL and restarted with the same keys and state.
Afterwards the run is audited from chain and Kubo alone: every round re-derives, the
attackers' updates are outside every accepted set, nobody submitted or voted twice in one
attempt, and ``flare verify --ipfs`` agrees. Skipped only without the anvil or ipfs binary.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conformance.anvil_harness import FUNDING, anvil_binary, free_port

from flare.chain import SeatClaimed, TaskStatus, UpdateSubmitted, Voted
from flare.chain.api.derive import decode_accepted
from flare.chain.rpc.chain import RpcChain
from flare.cli import main
from flare.federation.protocol.aggregate import compute_aggregate, load_task_context
from flare.federation.protocol.verify import verify_task
from flare.node import AnvilConfig, AnvilNode, KuboConfig, KuboNode, NodeError, find_ipfs
from flare.storage import KuboStore

pytestmark = [pytest.mark.anvil, pytest.mark.kubo, pytest.mark.slow]

CLIENTS = 6
ATTACKERS = (1, 4)
ROUNDS = 3
TASK_ID = 1
DEADLINE_SECONDS = 300
TASK_OPTIONS = [
    "--model", "logreg",
    "--rounds", str(ROUNDS),
    "--min-clients", "4",
    "--committee", "4",
    "--min-committee", "2",
    "--submission-window", "20",
    "--vote-window", "20",
]  # fmt: skip
"""Windows of 20 one-second blocks: a participant restarted mid-round (torch import and two
keystore decryptions on a busy two-core machine) still makes the next attempt."""


class Fleet:
    """The participant processes, by index, with the command that restarts each."""

    def __init__(self, root: Path, config: Path) -> None:
        self.root = root
        self.config = config
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def command(self, index: int) -> list[str]:
        command = [
            sys.executable, "-m", "flare", "participant", "run",
            "--config", str(self.config),
            "--keystore", str(self.root / "keys" / f"client-{index}"),
            "--task", str(TASK_ID),
            "--data", str(self.root / "data" / f"client-{index}.npz"),
            "--name", f"client-{index}",
        ]  # fmt: skip
        return command + (["--attack", "sign-flip"] if index in ATTACKERS else [])

    def launch(self, index: int) -> None:
        log = (self.root / f"client-{index}.log").open("ab")
        self.processes[index] = subprocess.Popen(
            self.command(index),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        log.close()

    def log(self, index: int) -> str:
        return (self.root / f"client-{index}.log").read_text(errors="replace")

    def finish(self, grace: float) -> dict[int, int | None]:
        """Each one's exit code once the task is over (None: had to be killed).

        A participant exits 0 by itself once it sees the task completed; whoever has not
        within ``grace`` seconds gets SIGTERM, which must also end it with 0.
        """
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(
            process.poll() is None for process in self.processes.values()
        ):
            time.sleep(0.2)
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        for index, process in self.processes.items():
            try:
                codes[index] = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes[index] = None
        return codes


def ipfs_binary() -> Path:
    try:
        return find_ipfs()
    except NodeError as exc:
        pytest.skip(f"the process test needs an ipfs binary: {exc}")


def cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> str:
    """One ``flare`` command in this process (saves a torch import); what it printed."""
    code = main(list(arguments))
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def wait_until(condition, seconds: float, what: str, fleet: Fleet) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    logs = "\n".join(fleet.log(i)[-1500:] for i in range(CLIENTS))
    raise AssertionError(f"timed out waiting for {what}; participant logs:\n{logs}")


def test_six_participant_processes_filter_attackers_and_survive_kills(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anvil_binary()
    ipfs = ipfs_binary()
    anvil = AnvilNode(AnvilConfig(tmp_path / "anvil", port=free_port(), block_time=1))
    kubo = KuboNode(KuboConfig(tmp_path / "kubo", api_port=free_port()), ipfs)
    fleet = Fleet(tmp_path, tmp_path / "flare.json")
    anvil.start()
    try:
        kubo.start()
        run_and_audit(tmp_path, anvil, kubo, fleet, capsys)
    finally:
        for process in fleet.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        kubo.stop(grace=5)
        anvil.stop(grace=5)


def run_and_audit(
    root: Path,
    anvil: AnvilNode,
    kubo: KuboNode,
    fleet: Fleet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = root / "deployment.json"
    cli(capsys, "deploy", "--dev-account", "--rpc", anvil.rpc_url, "--out", str(deployment))
    (root / "password.txt").write_text("process test passphrase\n")
    fleet.config.write_text(
        json.dumps(
            {
                "chain_id": 31337,
                "rpc_url": anvil.rpc_url,
                "deployment": str(deployment),
                "ipfs_api_url": kubo.api_url,
                "poll_interval": 0.5,
                "password_file": str(root / "password.txt"),
            }
        )
    )
    network = ["--config", str(fleet.config)]
    cli(capsys, "task", "split-data", "--clients", str(CLIENTS), "--out", str(root / "data"))
    addresses = {}
    for who in ["creator", *(f"client-{i}" for i in range(CLIENTS))]:
        out = cli(capsys, "participant", "keys", "new", "--keystore", str(root / "keys" / who),
                  "--password-file", str(root / "password.txt"))  # fmt: skip
        addresses[who] = out.split()[0]
        httpx.post(
            anvil.rpc_url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "anvil_setBalance",
                "params": [addresses[who], hex(FUNDING)],
            },
            timeout=10,
        ).raise_for_status()
    creator = ["--keystore", str(root / "keys" / "creator")]
    cli(capsys, "task", "create", *network, *creator, *TASK_OPTIONS)

    contract = json.loads(deployment.read_text())["address"]
    chain = RpcChain(anvil.rpc_url, contract, chain_id=31337)
    store = KuboStore(kubo.api_url)
    started = time.monotonic()
    for index in range(CLIENTS):
        fleet.launch(index)
    wait_until(lambda: chain.task(TASK_ID).registered_count == CLIENTS, 120, "registrations", fleet)
    cli(capsys, "task", "start", *network, *creator, "--task", str(TASK_ID))

    # Round 2: once an honest participant holds a seat, SIGKILL it and another honest one
    # that holds none, and restart both with the same keys and state.
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

    wait_until(honest_seat_in_round_2, DEADLINE_SECONDS, "an honest seat in round 2", fleet)
    member = seated[0]
    others = [i for i in honest.values() if i != member]
    plain = next((i for i in others if i not in seated), others[0])
    for index in (member, plain):
        fleet.processes[index].kill()
        fleet.processes[index].wait()
        fleet.launch(index)

    wait_until(
        lambda: chain.task(TASK_ID).status == TaskStatus.COMPLETED,
        DEADLINE_SECONDS - (time.monotonic() - started),
        "the task to complete",
        fleet,
    )
    codes = fleet.finish(grace=30)
    assert codes == dict.fromkeys(range(CLIENTS), 0), codes

    submissions = Counter(
        (event.round, event.attempt, event.participant.lower())
        for event in chain.events([UpdateSubmitted], task_id=TASK_ID)
        if isinstance(event, UpdateSubmitted)
    )
    assert max(submissions.values()) == 1, "a participant submitted twice in one attempt"
    votes = Counter(
        (event.round, event.attempt, event.voter.lower())
        for event in chain.events([Voted], task_id=TASK_ID)
        if isinstance(event, Voted)
    )
    assert max(votes.values()) == 1, "a member voted twice in one attempt"

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

    capsys.readouterr()
    code = main(["verify", "--rpc", anvil.rpc_url, "--deployment", str(deployment),
                 "--ipfs", kubo.api_url])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and f"{ROUNDS}/{ROUNDS} rounds re-derived" in out, out

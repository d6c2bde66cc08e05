"""Participants as OS processes on Anvil and Kubo: the daemons, the task set-up and the fleet
the process tests share (tests/federation/test_e2e_processes.py, test_e2e_user_model.py,
test_remote_store_processes.py, test_public_chain_rehearsal.py).

Each participant is one ``python -m flare participant run``, reaching the chain and the
blobs only through Anvil's RPC URL and Kubo's API, like a device on a network.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conformance.anvil_harness import FUNDING, anvil_binary, free_port

from flare.chain import TaskStatus, UpdateSubmitted, Voted
from flare.chain.rpc.chain import RpcChain
from flare.cli import main
from flare.node import AnvilConfig, AnvilNode, KuboConfig, KuboNode, NodeError, find_ipfs

CHAIN_ID = 31337


@contextmanager
def running_daemons(
    root: Path, anvil_config: AnvilConfig | None = None
) -> Iterator[tuple[AnvilNode, KuboNode]]:
    """Anvil (by default one block a second) and an offline Kubo under ``root``, stopped on
    the way out; skips the test without either binary."""
    anvil_binary()
    try:
        ipfs = find_ipfs()
    except NodeError as exc:
        pytest.skip(f"the process test needs an ipfs binary: {exc}")
    anvil = AnvilNode(anvil_config or AnvilConfig(root / "anvil", port=free_port(), block_time=1))
    kubo = KuboNode(KuboConfig(root / "kubo", api_port=free_port()), ipfs)
    anvil.start()
    try:
        kubo.start()
        yield anvil, kubo
    finally:
        kubo.stop(grace=5)
        anvil.stop(grace=5)


def cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> str:
    """One ``flare`` command in this process (saves a torch import); what it printed."""
    code = main(list(arguments))
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    return printed.out


@dataclass(frozen=True)
class CreatedTask:
    """A task on a fresh deployment, its keys funded, nobody registered yet.

    ``config`` is the network file every command and process reads; ``addresses`` holds
    each keystore's address by name (``creator``, ``client-0``, …).
    """

    root: Path
    rpc_url: str
    ipfs_api_url: str
    config: Path
    deployment: Path
    chain: RpcChain
    clients: int
    addresses: dict[str, str]

    @property
    def network(self) -> list[str]:
        return ["--config", str(self.config)]

    @property
    def creator(self) -> list[str]:
        return ["--keystore", str(self.root / "keys" / "creator")]


def task_options(
    model: str, rounds: int, min_clients: int, committee: int, submission_window: int = 20
) -> list[str]:
    """``flare task create`` options for a small process test: a committee of at least two,
    a 20-block vote window, and ``--force``, since a handful of participants cannot meet the
    default committee-capture bound (nobody in these tests is hostile)."""
    return [
        "--model", model,
        "--rounds", str(rounds),
        "--min-clients", str(min_clients),
        "--committee", str(committee),
        "--min-committee", "2",
        "--submission-window", str(submission_window),
        "--vote-window", "20",
        "--force",
    ]  # fmt: skip


def create_task(
    root: Path,
    rpc_url: str,
    ipfs_api_url: str,
    clients: int,
    task_options: list[str],
    capsys: pytest.CaptureFixture[str],
    **settings: object,
) -> CreatedTask:
    """Deploy the contract, write ``root/flare.json`` (``settings`` added to it), split the
    data into ``root/data``, make and fund a keystore for the creator and each client, and
    create the task with ``task_options``."""
    deployment = root / "deployment.json"
    cli(capsys, "deploy", "--dev-account", "--rpc", rpc_url, "--out", str(deployment))
    password = root / "password.txt"
    password.write_text("process test passphrase\n")
    config = root / "flare.json"
    config.write_text(
        json.dumps(
            {
                "chain_id": CHAIN_ID,
                "rpc_url": rpc_url,
                "deployment": str(deployment),
                "ipfs_api_url": ipfs_api_url,
                "poll_interval": 0.5,
                "password_file": str(password),
                **settings,
            }
        )
    )
    cli(capsys, "task", "split-data", "--clients", str(clients), "--out", str(root / "data"))
    names = ["creator", *(f"client-{i}" for i in range(clients))]
    contract = json.loads(deployment.read_text())["address"]
    task = CreatedTask(
        root=root,
        rpc_url=rpc_url,
        ipfs_api_url=ipfs_api_url,
        config=config,
        deployment=deployment,
        chain=RpcChain(rpc_url, contract, chain_id=CHAIN_ID),
        clients=clients,
        addresses=_funded_keys(root, rpc_url, names, capsys),
    )
    cli(capsys, "task", "create", *task.network, *task.creator, *task_options)
    return task


def _funded_keys(
    root: Path, rpc_url: str, names: Iterable[str], capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    """A keystore under ``root/keys`` per name, each account funded; address by name."""
    addresses = {}
    for who in names:
        out = cli(capsys, "participant", "keys", "new", "--keystore", str(root / "keys" / who),
                  "--password-file", str(root / "password.txt"))  # fmt: skip
        addresses[who] = out.split()[0]
        httpx.post(
            rpc_url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "anvil_setBalance",
                "params": [addresses[who], hex(FUNDING)],
            },
            timeout=10,
        ).raise_for_status()
    return addresses


def start_task(task: CreatedTask, fleet: "Fleet", capsys: pytest.CaptureFixture[str]) -> None:
    """Launch every client's process, wait until all have registered, start the task."""
    for index in range(task.clients):
        fleet.launch(index)
    fleet.wait_until(
        lambda: task.chain.task(fleet.task_id).registered_count == task.clients,
        120,
        "registrations",
    )
    cli(capsys, "task", "start", *task.network, *task.creator, "--task", str(fleet.task_id))


def finish_task(task: CreatedTask, fleet: "Fleet", seconds: float) -> None:
    """Wait up to ``seconds`` for the task to complete; every participant then exits 0."""
    fleet.wait_until(
        lambda: task.chain.task(fleet.task_id).status == TaskStatus.COMPLETED,
        seconds,
        "the task to complete",
    )
    codes = fleet.finish(grace=30)
    assert codes == dict.fromkeys(range(task.clients), 0), codes


def assert_once_per_attempt(chain: RpcChain, task_id: int) -> Counter[tuple[int, int, str]]:
    """Nobody submitted or voted twice in one attempt; the submissions, by (round,
    attempt, lower-case participant)."""
    submissions = Counter(
        (event.round, event.attempt, event.participant.lower())
        for event in chain.events([UpdateSubmitted], task_id=task_id)
        if isinstance(event, UpdateSubmitted)
    )
    assert max(submissions.values()) == 1, "a participant submitted twice in one attempt"
    votes = Counter(
        (event.round, event.attempt, event.voter.lower())
        for event in chain.events([Voted], task_id=task_id)
        if isinstance(event, Voted)
    )
    assert max(votes.values()) == 1, "a member voted twice in one attempt"
    return submissions


def assert_verify_cli_agrees(
    task: CreatedTask, rounds: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """``flare verify`` from the RPC URL, the deployment file and Kubo re-derives every
    round."""
    capsys.readouterr()
    code = main(["verify", "--rpc", task.rpc_url, "--deployment", str(task.deployment),
                 "--ipfs", task.ipfs_api_url])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and f"{rounds}/{rounds} rounds re-derived" in out, out


class Fleet:
    """The participant processes, by index, with the command that restarts each.

    Participant ``i`` is ``client-i``: its keys under ``root/keys``, its data file under
    ``root/data``, its log in ``root``; ``options`` adds per-participant arguments, ``cwd``
    is where the processes run. Leaving its ``with`` block kills whoever still runs.
    """

    def __init__(
        self,
        root: Path,
        config: Path,
        task_id: int,
        options: Callable[[int], list[str]] = lambda index: [],
        cwd: Path | None = None,
    ) -> None:
        self.root, self.config, self.task_id = root, config, task_id
        self.options, self.cwd = options, cwd
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def command(self, index: int) -> list[str]:
        return [
            sys.executable, "-m", "flare", "participant", "run",
            "--config", str(self.config),
            "--keystore", str(self.root / "keys" / f"client-{index}"),
            "--task", str(self.task_id),
            "--data", str(self.root / "data" / f"client-{index}.npz"),
            "--name", f"client-{index}",
            *self.options(index),
        ]  # fmt: skip

    def launch(self, index: int) -> None:
        log = (self.root / f"client-{index}.log").open("ab")
        self.processes[index] = subprocess.Popen(
            self.command(index),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            cwd=self.cwd,
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

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *_exc: object) -> None:
        """SIGKILL whoever still runs: the clean-up of a test that failed."""
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    def wait_until(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        """Poll ``condition`` each second; on time-out fail with every participant's log."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(1)
        logs = "\n".join(self.log(i)[-1500:] for i in sorted(self.processes))
        raise AssertionError(f"timed out waiting for {what}; participant logs:\n{logs}")

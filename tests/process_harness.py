"""Participants as OS processes on Anvil and Kubo: the set-up and the fleet the process
tests share (tests/federation/test_e2e_processes.py, test_e2e_user_model.py).

Each participant is one ``python -m flare participant run``, reaching the chain and the
blobs only through Anvil's RPC URL and Kubo's API, like a device on a network.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import pytest
from conformance.anvil_harness import FUNDING

from flare.cli import main
from flare.node import AnvilNode, KuboNode, NodeError, find_ipfs


def ipfs_binary() -> Path:
    try:
        return find_ipfs()
    except NodeError as exc:
        pytest.skip(f"the process test needs an ipfs binary: {exc}")


def cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> str:
    """One ``flare`` command in this process (saves a torch import); what it printed."""
    code = main(list(arguments))
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    return printed.out


def deploy_and_configure(
    root: Path, anvil: AnvilNode, kubo: KuboNode, capsys: pytest.CaptureFixture[str]
) -> Path:
    """Deploy the contract and write the network file every command and process reads."""
    deployment = root / "deployment.json"
    cli(capsys, "deploy", "--dev-account", "--rpc", anvil.rpc_url, "--out", str(deployment))
    (root / "password.txt").write_text("process test passphrase\n")
    config = root / "flare.json"
    config.write_text(
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
    return config


def funded_keys(
    root: Path, anvil: AnvilNode, names: Iterable[str], capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    """A keystore under ``root/keys`` per name, each account funded; address by name."""
    addresses = {}
    for who in names:
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
    return addresses


class Fleet:
    """The participant processes, by index, with the command that restarts each.

    Participant ``i`` is ``client-i``: its keys under ``root/keys``, its data file under
    ``root/data``, its log in ``root``; ``options`` adds per-participant arguments, ``cwd``
    is where the processes run.
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

    def kill_all(self) -> None:
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

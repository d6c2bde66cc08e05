"""Devices with no Kubo of their own: three ``flare participant run`` processes on Anvil that
publish and fetch every blob through a remote Kubo RPC endpoint, a second Kubo on loopback
behind an authenticating reverse proxy (``storage/remote_doubles.py``, standing in for a
hosted gateway's auth), and ask a Pinning Service API server written to the spec in this
suite to keep what they pin.

The gateway goes down for a while right after the first round finalizes: the participants
wait it out and lose nothing (every round finalizes with every submission, none twice). A
participant with a wrong token stops at start-up with one clear line. Afterwards the task is
audited from chain and the Kubo behind the gateway. Skipped only without the anvil or ipfs
binary.
"""

import json
import signal
import time
from pathlib import Path

import pytest
from process_harness import (
    CreatedTask,
    Fleet,
    assert_once_per_attempt,
    create_task,
    finish_task,
    running_daemons,
    start_task,
    task_options,
)
from storage.remote_doubles import AuthenticatingGateway, SpecPinningService

from flare.chain import RoundFinalized, UpdateSubmitted
from flare.cli import main
from flare.federation.protocol.verify import verify_task
from flare.storage import KuboStore

pytestmark = [pytest.mark.anvil, pytest.mark.kubo, pytest.mark.slow]

CLIENTS = 3
ROUNDS = 2
TASK_ID = 1
DEADLINE_SECONDS = 300
OUTAGE_SECONDS = 8
GATEWAY_TOKEN = "gateway-token-for-the-test"
PINNING_TOKEN = "pinning-token-for-the-test"
TASK_OPTIONS = task_options("logreg", ROUNDS, min_clients=CLIENTS, committee=CLIENTS)
"""Windows of 20 one-second blocks outlast the outage."""


def test_participants_complete_rounds_through_an_authenticating_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = Fleet(tmp_path, tmp_path / "device.json", TASK_ID)
    with (
        running_daemons(tmp_path) as (anvil, kubo),
        AuthenticatingGateway(kubo.api_url, GATEWAY_TOKEN) as gateway,
        SpecPinningService(PINNING_TOKEN) as pinning,
        fleet,
    ):
        task = create_task(tmp_path, anvil.rpc_url, kubo.api_url, CLIENTS, TASK_OPTIONS, capsys)
        run_through_gateway(task, gateway, pinning, fleet, capsys)


def run_through_gateway(
    task: CreatedTask,
    gateway: AuthenticatingGateway,
    pinning: SpecPinningService,
    fleet: Fleet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The task's creator publishes through the Kubo itself; every device only through the
    # gateway, whose URL is all its network file says about IPFS.
    device_config = json.loads(task.config.read_text())
    fleet.config.write_text(json.dumps({**device_config, "ipfs_api_url": gateway.url}))
    secrets = task.root / "secrets"
    secrets.mkdir()
    (secrets / "gateway.header").write_text(f"Authorization: Bearer {GATEWAY_TOKEN}\n")
    (secrets / "wrong.header").write_text("Authorization: Bearer not-the-token\n")
    (secrets / "pinning.token").write_text(f"{PINNING_TOKEN}\n")
    remote = [
        "--ipfs-auth-header-file", str(secrets / "gateway.header"),
        "--pinning-service", pinning.url,
        "--pinning-token-file", str(secrets / "pinning.token"),
    ]  # fmt: skip
    fleet.options = lambda index: remote

    chain = task.chain
    wrong_token_stops_at_start_up(fleet, secrets / "wrong.header", capsys)
    refused_at = sum(gateway.refused.values())
    assert refused_at > 0 and sum(gateway.admitted.values()) == 0
    assert chain.task(TASK_ID).registered_count == 0
    start_task(task, fleet, capsys)

    def finalized() -> list[RoundFinalized]:
        events = chain.events([RoundFinalized], task_id=TASK_ID)
        return [event for event in events if isinstance(event, RoundFinalized)]

    fleet.wait_until(lambda: len(finalized()) >= 1, DEADLINE_SECONDS, "the first round")
    gateway.stop()  # the next round has just opened: everyone is about to fetch its base
    time.sleep(OUTAGE_SECONDS)
    gateway.start()
    finish_task(task, fleet, DEADLINE_SECONDS)
    assert any("unreachable" in fleet.log(index) for index in range(CLIENTS))

    # Nothing lost, nothing doubled: every round took every device's update once.
    assert [event.submission_count for event in finalized()] == [CLIENTS] * ROUNDS
    assert_once_per_attempt(chain, TASK_ID)
    submitted = [e for e in chain.events([UpdateSubmitted], task_id=TASK_ID)]
    # Every blob went through the gateway with the token, and was handed to the pinning
    # service; the refusals are the wrong-token start-up's alone.
    assert gateway.admitted["add"] >= len(submitted)
    assert sum(gateway.refused.values()) == refused_at
    assert {e.update.to_cid() for e in submitted} <= pinning.requested_cids()
    verdict = verify_task(chain, KuboStore(task.ipfs_api_url), TASK_ID)
    assert verdict.ok and len(verdict.rounds) == ROUNDS, verdict


def wrong_token_stops_at_start_up(
    fleet: Fleet, wrong_header: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A device with a wrong token exits 2 with one line, before it registers."""
    command = fleet.command(0)[3:]  # the arguments after ``python -m flare``
    at = command.index("--ipfs-auth-header-file")
    command[at + 1] = str(wrong_header)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(command)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    printed = capsys.readouterr()
    assert code == 2, printed.out + printed.err
    error = printed.err.strip().splitlines()[-1]
    assert error.startswith("flare participant: error: Kubo at http://127.0.0.1:"), error
    assert "refused the request" in error and "HTTP 401" in error, error

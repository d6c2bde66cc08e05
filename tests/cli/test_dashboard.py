"""`flare dashboard` without a browser: what a snapshot says about a task, gas attribution
from receipts, and the server's page and JSON endpoint."""

import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flare.chain import RoundFinalized, RoundOpened, SeatClaimed, Voted
from flare.config import NetworkConfig, open_chain
from flare.dashboard.gas import GasMeter
from flare.dashboard.server import build_app
from flare.dashboard.watch import TaskWatcher
from flare.errors import ConfigError
from flare.federation.agents import split_data
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig
from flare.storage import DirectoryStore

CONTRACT = "0x" + "c0" * 20
OTHER_CONTRACT = "0x" + "0d" * 20


@pytest.fixture(scope="module")
def finished_task(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A three-round protocol run with one attacker, kept in a state file and a store."""
    where = tmp_path_factory.mktemp("task")
    config = SimulationConfig(model="logreg", clients=6, malicious=1, rounds=3, seed=0)
    protocol = ProtocolConfig(state=where / "chain.db", store=where / "blobs")
    report = ProtocolSimulation(config, protocol).run()
    test_file = split_data("digits", 2, where / "data", seed=config.seed)[-1]
    network = NetworkConfig(rpc_url=None, state=where / "chain.db", store=where / "blobs")
    return SimpleNamespace(report=report, network=network, test=test_file, where=where)


def _watcher(task: SimpleNamespace, **options: Any) -> TaskWatcher:
    return TaskWatcher(
        lambda: open_chain(task.network, read_only=True),
        DirectoryStore(task.network.store),
        **options,
    )


@pytest.mark.slow
def test_a_snapshot_shows_every_round_as_the_run_reported_it(finished_task) -> None:
    report = finished_task.report
    snapshot = _watcher(finished_task, test=finished_task.test).snapshot()
    assert snapshot["task"] == 1 and snapshot["status"] == "completed"
    assert snapshot["current"] is None and snapshot["history_matches"] is True
    assert snapshot["gas_total"] is None  # the embedded chain charges no gas
    assert [r["round"] for r in snapshot["rounds"]] == [1, 2, 3]
    names = {seat["address"]: seat["member"] for seat in report.rounds[0].protocol["committee"]}
    for shown, recorded in zip(snapshot["rounds"], report.rounds, strict=True):
        assert shown["verification"] == "re-derived"
        assert shown["model"] == recorded.protocol["global_model"]
        assert shown["accuracy"] == pytest.approx(recorded.accuracy)
        assert shown["loss"] == pytest.approx(recorded.loss)
        assert shown["bytes_up"] == recorded.bytes_up
        assert [names[seat["member"]] for seat in shown["committee"]] == [
            seat["member"] for seat in recorded.protocol["committee"]
        ]
        assert [seat["vrf_output"] for seat in shown["committee"]] == [
            seat["vrf_output"] for seat in recorded.protocol["committee"]
        ]
        assert {names[f["participant"]] for f in shown["flagged"]} == set(recorded.flagged)
        for flag in shown["flagged"]:
            assert flag["reason"] == recorded.reasons[names[flag["participant"]]]
        assert len(shown["votes"]) == len(recorded.protocol["votes"])


@pytest.mark.slow
def test_a_snapshot_without_a_test_set_has_no_accuracy_and_one_of_a_later_task_waits(
    finished_task,
) -> None:
    snapshot = _watcher(finished_task).snapshot()
    assert all(r["accuracy"] is None and r["loss"] is None for r in snapshot["rounds"])
    waiting = _watcher(finished_task, task_id=2).snapshot()
    assert waiting["task"] is None and waiting["waiting_for"] == 2


@pytest.mark.slow
def test_a_damaged_model_blob_shows_in_the_verification_column(finished_task, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(finished_task.where, copy, ignore=shutil.ignore_patterns("data"))
    round_two = finished_task.report.rounds[1].protocol["global_model"]
    (copy / "blobs" / "blobs" / round_two).write_bytes(b"not the model")
    store = DirectoryStore(copy / "blobs")
    network = NetworkConfig(rpc_url=None, state=copy / "chain.db", store=copy / "blobs")
    watcher = TaskWatcher(lambda: open_chain(network, read_only=True), store)
    rounds = watcher.snapshot()["rounds"]
    assert rounds[0]["verification"] == "re-derived"
    assert rounds[1]["verification"] != "re-derived"


def _log(kind: Any, *topics: str) -> dict[str, Any]:
    return {"address": CONTRACT, "topics": ["0x" + kind.topic().hex(), *topics]}


def _word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


class _Receipts:
    """An RPC client that serves block receipts and counts the requests."""

    def __init__(self, blocks: dict[int, list[dict[str, Any]]]) -> None:
        self.blocks = blocks
        self.requests: list[int] = []

    def request(self, method: str, block: str) -> list[dict[str, Any]]:
        assert method == "eth_getBlockReceipts"
        self.requests.append(int(block, 16))
        return self.blocks[int(block, 16)]


def _receipt(gas: int, price: int, *logs: dict[str, Any]) -> dict[str, Any]:
    return {"gasUsed": hex(gas), "effectiveGasPrice": hex(price), "logs": list(logs)}


def test_gas_is_counted_per_round_for_this_task_only_and_each_block_read_once() -> None:
    task, other = _word(1), _word(2)
    rpc = _Receipts(
        {
            5: [
                _receipt(100, 2, _log(SeatClaimed, task, _word(1))),
                _receipt(7000, 2, _log(SeatClaimed, other, _word(1))),  # another task
                _receipt(9000, 2, {"address": OTHER_CONTRACT, "topics": ["0x00", task]}),
            ],
            9: [
                # the vote that finalizes round 1 opens round 2: it is round 1's
                _receipt(
                    300,
                    3,
                    _log(Voted, task, _word(1)),
                    _log(RoundFinalized, task, _word(1)),
                    _log(RoundOpened, task, _word(2)),
                ),
            ],
        }
    )
    chain = SimpleNamespace(rpc=rpc, contract_address=CONTRACT)
    logs = [SimpleNamespace(block_number=5), SimpleNamespace(block_number=9)]
    meter = GasMeter()
    spent = meter.spent(chain, 1, logs)
    assert spent == {"rounds": {1: 400}, "total": {"gas": 400, "wei": 100 * 2 + 300 * 3}}
    assert meter.spent(chain, 1, logs) == spent
    assert rpc.requests == [5, 9]


def test_a_chain_without_receipts_has_no_gas() -> None:
    chain = SimpleNamespace(contract_address=CONTRACT)
    assert GasMeter().spent(chain, 1, []) is None


class _Watcher:
    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.snapshots = 0

    def snapshot(self) -> dict[str, Any]:
        self.snapshots += 1
        if self.failure is not None:
            raise self.failure
        return {"task": 1, "rounds": [{"round": 1}]}


@contextlib.contextmanager
def _loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def _get(watcher: _Watcher, paths: list[str], poll: float = 60.0) -> list[tuple[int, Any]]:
    async def fetch() -> list[tuple[int, Any]]:
        client = TestClient(TestServer(build_app(watcher, poll)))  # type: ignore[arg-type]
        await client.start_server()
        try:
            answers = []
            for path in paths:
                response = await client.get(path)
                body = await (response.json() if path.startswith("/api") else response.text())
                answers.append((response.status, body))
            return answers
        finally:
            await client.close()

    with _loop() as loop:
        return loop.run_until_complete(fetch())


class _Sources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v or "" for k, v in attrs if k in {"src", "href"}]


def test_the_page_loads_nothing_from_outside_and_the_state_is_taken_once_per_poll() -> None:
    watcher = _Watcher()
    [(page_status, page), (status, state), (_, again)] = _get(
        watcher, ["/", "/api/state", "/api/state"]
    )
    assert page_status == 200 and "api/state" in page
    sources = _Sources()
    sources.feed(page)
    assert sources.urls == []
    assert "http://" not in page and "https://" not in page
    assert status == 200 and state == again == {"task": 1, "rounds": [{"round": 1}]}
    assert watcher.snapshots == 1


def test_a_chain_that_cannot_be_read_is_a_503_with_the_reason() -> None:
    watcher = _Watcher(ConfigError("no chain state at /nowhere/chain.db"))
    [(status, body)] = _get(watcher, ["/api/state"], poll=0.01)
    assert status == 503 and body == {"error": "no chain state at /nowhere/chain.db"}


def test_dashboard_help_imports_neither_the_web_server_nor_torch() -> None:
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['flare', 'dashboard', '--help']\n"
        "try:\n"
        "    runpy.run_module('flare', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({'aiohttp', 'torch'} & {m.split('.')[0] for m in sys.modules}))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert "--poll SECONDS" in finished.stdout
    assert finished.stdout.splitlines()[-1] == "[]"

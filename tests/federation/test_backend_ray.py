"""The Ray backend gives the local backend's report, byte for byte.

The cluster tests start a real two-node Ray cluster on loopback with ``ray start`` (a head
and a worker, one CPU each), run the same simulation on it and in process, and compare what
a run decides: global-model CIDs, accepted and flagged clients, bytes sent, and the model's
figures. They stop exactly the Ray processes they started, never anyone else's.
"""

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from flare.cli import help_values
from flare.cli.display import RoundTable
from flare.errors import ConfigError
from flare.federation.config import BACKENDS, SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.report import SimulationReport
from flare.federation.simulation import Simulation

SMALL = {"dataset": "digits", "model": "logreg", "clients": 7, "rounds": 2, "malicious": 2}


def test_the_cli_offers_every_backend() -> None:
    assert help_values.BACKEND_NAMES == BACKENDS


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "spark"}, "--backend must be one of local, ray"),
        ({"ray_address": "127.0.0.1:6379"}, "--ray-address only apply to --backend ray"),
        ({"workers": 2}, "--workers only apply to --backend ray"),
        ({"backend": "ray", "workers": 0}, "--workers must be at least 1"),
    ],
)
def test_backend_options_are_checked_together(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SimulationConfig(**options)


def test_the_ray_backend_is_refused_where_ray_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "ray" else found(name)
    )
    with pytest.raises(ConfigError, match=r"pip install 'flare\[ray\]'"):
        SimulationConfig(backend="ray")


def test_simulate_help_does_not_import_ray() -> None:
    code = (
        "import runpy, sys\n"
        "sys.argv = ['flare', 'simulate', '--help']\n"
        "try:\n"
        "    runpy.run_module('flare', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    assert "--ray-address" in finished.stdout


def test_the_local_backend_never_imports_ray() -> None:
    code = (
        "import sys\n"
        "from flare.federation.config import SimulationConfig\n"
        "from flare.federation.simulation import Simulation\n"
        "Simulation(SimulationConfig(model='logreg', clients=3, rounds=1, malicious=0)).run()\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_round_table_names_the_cluster() -> None:
    table = RoundTable()
    with table.console.capture() as captured:
        table.cluster_ready("Ray: 2 nodes, 2 CPUs, 2 workers")
    assert "clients train on Ray: 2 nodes, 2 CPUs, 2 workers" in captured.get()
    table.round_started(1, participants=4)
    (task,) = table.progress.tasks
    assert task.fields["where"] == " on Ray: 2 nodes, 2 CPUs, 2 workers"


def decided(report: SimulationReport) -> list[dict[str, Any]]:
    """What a run decides each round, everything but its timings."""
    return [
        {
            "global_model": (record.protocol or {}).get("global_model"),
            "accuracy": record.accuracy,
            "loss": record.loss,
            "bytes_up": record.bytes_up,
            "accepted": record.accepted,
            "flagged": record.flagged,
            "rejected": record.rejected,
            "scores": record.scores,
        }
        for record in report.rounds
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ray_node(arguments: list[str], log: Path) -> subprocess.Popen[bytes]:
    """One ``ray start --block`` in a session of its own, its ports its own."""
    ports = [
        "--node-manager-port", str(_free_port()),
        "--object-manager-port", str(_free_port()),
        "--metrics-export-port", str(_free_port()),
        "--dashboard-agent-listen-port", str(_free_port()),
        "--dashboard-agent-grpc-port", str(_free_port()),
        "--runtime-env-agent-port", str(_free_port()),
    ]  # fmt: skip
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    return subprocess.Popen(
        [
            ray,
            "start",
            "--block",
            "--num-cpus",
            "1",
            "--node-ip-address",
            "127.0.0.1",
            *ports,
            *arguments,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},  # the token: see two_node_cluster
    )


def _stop(node: subprocess.Popen[bytes]) -> None:
    """Stop one node and everything it started: its own process group only."""
    if node.poll() is None:
        node.send_signal(signal.SIGTERM)  # ray start --block stops its node's processes
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait(timeout=10)


def _wait_for_nodes(address: str, count: int, deadline: float) -> None:
    import ray

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        while sum(node["Alive"] for node in ray.nodes()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray cluster at {address} never had {count} nodes")
            time.sleep(0.5)
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head and a worker on loopback, one CPU each; the head's address.

    The cluster checks a token of its own, which the nodes and this process (the driver)
    read from the environment: no token file of the user's is read or written.
    """
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {name: os.environ.get(name) for name in token}
    os.environ.update(token)  # before Ray is imported: it reads its mode once
    pytest.importorskip("ray")
    logs = tmp_path_factory.mktemp("ray-logs")
    # Ray's socket paths must stay short: a temp dir of its own under /tmp.
    temp_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"flare-ray-{os.getpid()}"
    address = f"127.0.0.1:{_free_port()}"
    head_options = [
        "--head",
        "--port", address.rsplit(":", 1)[1],
        "--include-dashboard=false",
        "--temp-dir", str(temp_dir),
    ]  # fmt: skip
    with contextlib.ExitStack() as nodes:  # every node stopped, whatever stops the others
        nodes.callback(_restore, saved)
        nodes.callback(shutil.rmtree, temp_dir, ignore_errors=True)
        head = _ray_node(head_options, logs / "head.log")
        nodes.callback(_stop, head)
        _wait_for_gcs(address, head, logs / "head.log", time.monotonic() + 60)
        nodes.callback(_stop, _ray_node(["--address", address], logs / "worker.log"))
        _wait_for_nodes(address, 2, time.monotonic() + 60)
        yield address


def _restore(environment: dict[str, str | None]) -> None:
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _wait_for_gcs(address: str, head: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    host, port = address.rsplit(":", 1)
    while True:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray head never listened on {address}") from None
            time.sleep(0.5)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch's thread count as the CLI and every Ray worker set it: one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_protocol_run_on_a_two_node_cluster_matches_the_local_one(
    two_node_cluster: str,
) -> None:
    # alie colludes (the driver forges from the whole round) and PowerSGD keeps state in
    # each client's encoder across rounds, on whichever worker holds the client.
    config = {**SMALL, "attack": "alie", "codec": "powersgd", "aggregator": "multi-krum"}
    local = ProtocolSimulation(SimulationConfig(**config)).run()
    on_ray = ProtocolSimulation(
        SimulationConfig(**config, backend="ray", ray_address=two_node_cluster, workers=2)
    ).run()
    assert decided(on_ray) == decided(local)
    assert all(round["global_model"].startswith("bafk") for round in decided(local))
    assert any(round["flagged"] for round in decided(local))  # the comparison sees verdicts
    # The committee's recomputations ran on the workers, as many as in process.
    recomputed = [record.protocol["recomputations"] for record in on_ray.rounds]
    assert all(r["where"] == "Ray: 2 nodes, 2 CPUs, 2 workers" for r in recomputed)
    assert all(r["count"] > 0 for r in recomputed)
    assert [r["count"] for r in recomputed] == [
        record.protocol["recomputations"]["count"] for record in local.rounds
    ]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_offline_run_with_more_workers_than_cpus_matches_the_local_one(
    two_node_cluster: str,
) -> None:
    import ray

    # Three workers share two CPUs: shards and completion order differ from any other run.
    config = {**SMALL, "attack": "sign-flip", "codec": "topk", "dropout": 0.2}
    local = Simulation(SimulationConfig(**config)).run()
    on_ray = Simulation(
        SimulationConfig(**config, backend="ray", ray_address=two_node_cluster, workers=3)
    ).run()
    assert decided(on_ray) == decided(local)
    assert any(round["bytes_up"] for round in decided(local))
    assert not ray.is_initialized()  # the run left the cluster it joined

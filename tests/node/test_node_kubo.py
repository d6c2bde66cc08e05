"""``flare.node.KuboNode`` and Kubo in ``flare node up|down|status``: a real daemon.

Each test runs its own daemon on a free port with its repository under ``tmp_path``, so
none touches another's blocks. CIDs are checked twice: against Flare's ``compute_cid``
and against Kubo's own ``ipfs add --only-hash`` on the node's repository, which shares
no code with Flare. Skipped only when no ``ipfs`` binary exists (see
``scripts/install_kubo.sh``).
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance.anvil_harness import anvil_binary, free_port

from flare.cli import main
from flare.node import KuboConfig, KuboNode, NodeError, find_ipfs
from flare.node.process import PidRecord
from flare.storage import CHUNK_SIZE, KuboStore, StorageUnavailableError, compute_cid
from flare.storage.cid import Cid

pytestmark = pytest.mark.kubo

SIZES = [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE + 17]
"""Empty, one byte, exactly one chunk, one byte over, and a five-chunk dag-pb tree."""


def ipfs_binary() -> Path:
    try:
        return find_ipfs()
    except NodeError as exc:
        pytest.skip(f"Kubo tests need an ipfs binary: {exc}")


@pytest.fixture
def kubo_node(tmp_path: Path) -> Iterator[KuboNode]:
    node = KuboNode(KuboConfig(tmp_path / "kubo", api_port=free_port()), ipfs_binary())
    node.start()
    yield node
    node.stop(grace=5)


def blob(size: int) -> bytes:
    """Distinct bytes per size that do not repeat within a chunk."""
    return bytes((index * 7 + size) % 251 for index in range(size))


def kubo_cli_cid(node: KuboNode, data: bytes) -> str:
    """The CID Kubo's own command line computes for ``data``, on the node's repository."""
    result = subprocess.run(
        [str(node.binary), "add", "--only-hash", "--cid-version=1", "--raw-leaves", "-Q"],
        input=data,
        env=node.environment(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    return result.stdout.decode().strip()


@pytest.mark.parametrize("size", SIZES)
def test_blobs_roundtrip_under_the_cid_kubo_and_flare_agree_on(
    kubo_node: KuboNode, size: int
) -> None:
    data = blob(size)
    with KuboStore(kubo_node.api_url) as store:
        cid = store.put(data)
        assert store.get(cid) == data
    assert cid == str(compute_cid(data)) == kubo_cli_cid(kubo_node, data)
    expected_codec = 0x55 if size <= CHUNK_SIZE else 0x70
    assert Cid.parse(cid).codec == expected_codec


def test_the_repository_is_confined_to_loopback(kubo_node: KuboNode) -> None:
    config = json.loads((kubo_node.config.repo_dir / "config").read_text())
    addresses = config["Addresses"]
    assert addresses["API"] == f"/ip4/127.0.0.1/tcp/{kubo_node.config.api_port}"
    assert addresses["Gateway"] == []
    assert all(address.startswith("/ip4/127.0.0.1/") for address in addresses["Swarm"])
    assert (addresses["Announce"], addresses["AppendAnnounce"]) == ([], [])
    assert config["Bootstrap"] == []
    assert config["Routing"]["Type"] == "none"
    assert config["Discovery"]["MDNS"]["Enabled"] is False
    status = kubo_node.status()
    assert status is not None and status.answer is not None and "0.43" in status.answer


def test_a_stopped_daemon_is_unavailable_and_a_restarted_one_serves_its_pins(
    kubo_node: KuboNode,
) -> None:
    data = blob(CHUNK_SIZE * 2 + 3)
    with KuboStore(kubo_node.api_url, timeout=5) as store:
        cid = store.put(data)
        store.pin(cid)
        assert kubo_node.stop()
        assert kubo_node.status() is None
        with pytest.raises(StorageUnavailableError) as raised:
            store.get(cid)
        message = str(raised.value)
        assert "\n" not in message and kubo_node.api_url in message

        kubo_node.start()
        assert store.get(cid) == data
        assert store.has(cid)


def test_a_second_daemon_on_the_same_directory_is_refused(kubo_node: KuboNode) -> None:
    with pytest.raises(NodeError, match="already runs"):
        KuboNode(kubo_node.config, kubo_node.binary).start()


@pytest.mark.anvil
def test_node_up_status_down_runs_anvil_and_kubo_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ipfs_binary()
    anvil_binary()
    state_dir = tmp_path / "state"
    ipfs_port = free_port()
    where = ["--state-dir", str(state_dir)]
    up = ["node", "up", "--port", str(free_port()), "--ipfs-port", str(ipfs_port), *where]
    try:
        assert main(up) == 0
        out = capsys.readouterr().out
        assert f"kubo up: http://127.0.0.1:{ipfs_port} (offline" in out
        record = PidRecord.read(state_dir / "kubo" / "kubo.pid")
        assert record is not None and record.alive()

        assert main(["node", "status", *where]) == 0
        out = capsys.readouterr().out
        assert f"kubo running: pid {record.pid}, http://127.0.0.1:{ipfs_port}, kubo/0.43" in out

        assert main(["node", "down", *where]) == 0
        out = capsys.readouterr().out
        assert "anvil stopped" in out and "kubo stopped" in out
        assert not record.alive()
        assert main(["node", "status", *where]) == 1
        assert "kubo not running" in capsys.readouterr().out
    finally:
        main(["node", "down", *where])


@pytest.mark.anvil
def test_node_up_without_kubo_starts_anvil_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anvil_binary()
    where = ["--state-dir", str(tmp_path / "state")]
    try:
        assert main(["node", "up", "--no-kubo", "--port", str(free_port()), *where]) == 0
        out = capsys.readouterr().out
        assert "kubo up" not in out and "kubo skipped" not in out
        assert not (tmp_path / "state" / "kubo").exists()
    finally:
        main(["node", "down", *where])


@pytest.mark.anvil
def test_node_up_notes_a_missing_ipfs_binary_and_starts_anvil(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    anvil_binary()
    monkeypatch.delenv("FLARE_IPFS_BIN", raising=False)
    monkeypatch.setenv("FLARE_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    where = ["--state-dir", str(tmp_path / "state")]
    try:
        assert main(["node", "up", "--port", str(free_port()), *where]) == 0
        assert "kubo skipped: no ipfs binary" in capsys.readouterr().out
    finally:
        main(["node", "down", *where])

"""``flare node up|down|status`` and ``flare.node``: a real Anvil, started and stopped.

Every test uses its own state directory and a free port, so none touches the session's
shared node; they skip only when no Anvil binary exists.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance.anvil_harness import anvil_binary, free_port

from flare.chain.rpc.transport import HttpProvider, RpcClient
from flare.cli import main
from flare.node import AnvilConfig, AnvilNode, KuboConfig, KuboNode, NodeError, find_anvil
from flare.node.process import PidRecord

pytestmark = pytest.mark.anvil


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state directory whose nodes, if any test left one running, are stopped at the end.

    These tests are about Anvil and pass ``--no-kubo``; Kubo is stopped too all the same,
    so a regression there leaks no daemon (``tests/node/test_node_kubo.py`` covers it).
    """
    anvil_binary()
    directory = tmp_path / "state"
    yield directory
    AnvilNode(AnvilConfig(state_dir=directory)).stop(grace=5)
    KuboNode(KuboConfig(directory / "kubo")).stop(grace=5)


def flare(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the ``flare`` command line in process; its exit code and all it printed."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def rpc(port: int) -> RpcClient:
    return RpcClient(HttpProvider(f"http://127.0.0.1:{port}", 5))


def test_up_status_down_and_the_state_survives_a_restart(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = str(free_port())
    code, out = flare(
        capsys, "node", "up", "--no-kubo", "--port", port, "--state-dir", str(state_dir)
    )
    assert code == 0, out
    assert f"http://127.0.0.1:{port} (chain 31337" in out
    record = PidRecord.read(state_dir / "anvil.pid")
    assert record is not None and record.alive()
    assert Path(record.binary).name == "anvil"
    rpc(int(port)).request("anvil_mine", hex(5))
    code, out = flare(capsys, "node", "status", "--state-dir", str(state_dir))
    assert (code, f"pid {record.pid}" in out, "chain 31337, block 5" in out) == (0, True, True)

    code, out = flare(capsys, "node", "down", "--state-dir", str(state_dir))
    assert (code, "anvil stopped" in out) == (0, True)
    assert not record.alive() and not (state_dir / "anvil.pid").exists()
    assert json.loads((state_dir / "state.json").read_text())["best_block_number"] in (5, "0x5")
    code, out = flare(capsys, "node", "status", "--state-dir", str(state_dir))
    assert (code, "not running" in out) == (1, True)
    code, out = flare(capsys, "node", "down", "--state-dir", str(state_dir))
    assert (code, out.strip()) == (0, "not running")

    assert (
        flare(capsys, "node", "up", "--no-kubo", "--port", port, "--state-dir", str(state_dir))[0]
        == 0
    )
    assert rpc(int(port)).block_number() == 5


def test_a_second_node_on_the_same_state_or_port_is_refused(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = str(free_port())
    assert (
        flare(capsys, "node", "up", "--no-kubo", "--port", port, "--state-dir", str(state_dir))[0]
        == 0
    )
    code, out = flare(
        capsys, "node", "up", "--no-kubo", "--port", str(free_port()), "--state-dir", str(state_dir)
    )
    assert (code, "already runs" in out) == (2, True)
    other = AnvilNode(AnvilConfig(state_dir=tmp_path / "other", port=int(port)))
    with pytest.raises(NodeError, match="another node already answers"):
        other.start()


def test_chain_id_and_block_time_are_passed_to_anvil(state_dir: Path) -> None:
    config = AnvilConfig(state_dir=state_dir, port=free_port(), chain_id=4242, block_time=0.2)
    node = AnvilNode(config)
    node.start()
    client = rpc(config.port)
    assert client.chain_id() == 4242
    first = client.block_number()
    deadline = time.monotonic() + 10
    while client.block_number() < first + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.block_number() >= first + 2, "Anvil does not mine on its own"
    assert node.stop()


def test_the_node_runs_prague_for_the_bls_precompiles(state_dir: Path) -> None:
    config = AnvilConfig(state_dir=state_dir, port=free_port())
    AnvilNode(config).start()
    # G1ADD (0x0b) of the point at infinity with itself: 256 zero bytes in, 128 out.
    result = rpc(config.port).request(
        "eth_call", {"to": "0x" + "00" * 19 + "0b", "data": "0x" + "00" * 256}, "latest"
    )
    assert result == "0x" + "00" * 128


def test_a_stale_pid_file_is_ignored(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_dir.mkdir(parents=True)
    dead = PidRecord("anvil", 2**22 + 12345, str(find_anvil()), "http://127.0.0.1:1", {})
    dead.write(state_dir / "anvil.pid")
    code, _ = flare(capsys, "node", "status", "--state-dir", str(state_dir))
    assert code == 1
    port = str(free_port())
    assert (
        flare(capsys, "node", "up", "--no-kubo", "--port", port, "--state-dir", str(state_dir))[0]
        == 0
    )


def test_a_crash_at_start_reports_anvils_own_words(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "state.json").write_text("not a state file")
    node = AnvilNode(AnvilConfig(state_dir=state_dir, port=free_port()))
    with pytest.raises(NodeError, match="anvil exited at start"):
        node.start(timeout=20)
    assert not (state_dir / "anvil.pid").exists()


def test_the_binary_comes_from_flare_anvil_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = anvil_binary()
    monkeypatch.setenv("FLARE_ANVIL", str(tmp_path / "missing"))
    with pytest.raises(NodeError, match="FLARE_ANVIL"):
        find_anvil()
    monkeypatch.setenv("FLARE_ANVIL", str(binary))
    assert find_anvil() == binary


def test_the_default_binary_is_the_platform_one_not_the_node_wrapper() -> None:
    binary = anvil_binary()
    if "node_modules" in binary.parts:
        assert "@foundry-rs" in binary.parts and binary.parent.name == "bin"

"""The command line against bad arguments, hostile blobs and nodes that go away (issue 8).

Every bad argument is refused before any work, in one line; `inspect` never reads more
than the largest valid blob and refuses hostile ones in one line; a run that its chain,
its store or the user stops part-way still writes the report of the rounds it finished.
"""

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from flare.chain import InMemoryChain, RoundFinalized
from flare.chain.rpc.transport import ChainUnavailableError
from flare.cli import main
from flare.cli.inspect import model_spec
from flare.compression import UpdateBinding, make_codec
from flare.compression.decode import blob_limit
from flare.compression.wire import (
    gzip_compress,
    gzip_decompress,
    load_container_tensors,
    read_container_header,
    write_container,
)
from flare.federation.config import SimulationConfig
from flare.federation.protocol.artifacts import model_blob_limit
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.report import RunInterrupted
from flare.federation.simulation import RunObserver, Simulation
from flare.storage import MemoryStore

SMALL = ["--model", "logreg", "--clients", "3", "--malicious", "0", "--local-epochs", "1"]
"""The cheapest run that still has a committee (all three clients sit on it)."""


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if a simulation starts: the refusals below must come first."""

    def started(self, observer=None):
        raise AssertionError("the run started before the options were checked")

    monkeypatch.setattr(Simulation, "run", started)
    monkeypatch.setattr(ProtocolSimulation, "run", started)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--report", "{dir}"], "--report {dir} is a directory"),
        (["--report", "{file}/report.json"], "{file} is not a directory"),
        (["--plot", "{file}"], "--plot {file} is not a directory"),
        (["--store", "{file}"], "--store {file} is not a directory"),
        (["--state", "{dir}"], "--state {dir} is a directory"),
        (["--state", "{file}"], "--state {file} exists"),
        (["--state", "{file}/chain.db"], "{file} is not a directory"),
        (["--seed", "-1"], "--seed must lie in"),
        (["--seed", str(2**64)], "--seed must lie in"),
        (["--clients", "-2"], "--clients must be at least 1"),
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--malicious", "4"], "--malicious must lie in [0, 3]"),
        (["--alpha", "inf"], "--alpha must be a positive finite number"),
        (["--alpha", "nan"], "--alpha must be a positive finite number"),
        (["--alpha", "0"], "--alpha must be a positive finite number"),
        (["--dropout", "1"], "--dropout must lie in [0, 1)"),
        (["--dropout", "-0.5"], "--dropout must lie in [0, 1)"),
        (["--rank", "0"], "--rank must be at least 1"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--local-epochs", "0"], "--local-epochs must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--learning-rate", "inf"], "--learning-rate must be a positive finite number"),
        (["--offline", "--chain", "http://127.0.0.1:8545"], "--chain would do nothing"),
        (["--offline", "--dishonest-committee"], "--dishonest-committee would do nothing"),
        (["--offline", "--committee", "5"], "--committee would do nothing"),
        (["--chain", "http://127.0.0.1:8545", "--state", "{dir}/c.db"], "--state keeps"),
        (["--deployment", "{file}"], "give --chain too"),
        (["--min-committee", "4"], "--min-committee 4 exceeds the 3 clients"),
        (["--min-clients", "4"], "--min-clients 4 exceeds the 3 clients"),
        (["--committee", str(2**32)], "--committee must be at most 4294967295"),
        (["--rounds", str(2**32)], "--rounds must be at most 4294967295"),
        (["--quorum", "0"], "--quorum must lie in [5001, 10000]"),
    ],
)
def test_simulate_refuses_bad_options_before_the_run(tmp_path, capsys, no_run, args, message):
    existing = tmp_path / "existing"
    existing.write_text("")
    paths = {"dir": str(tmp_path), "file": str(existing)}
    argv = [arg.format(**paths) for arg in args]
    assert main(["simulate", "--quiet", *SMALL, *argv]) == 2
    assert message.format(**paths) in one_line_error(capsys)
    assert existing.read_text() == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "{file}", "--classes", "-3"], "argument --classes: must be at least 1"),
        (["inspect", "{file}", "--features", "0"], "argument --features: must be at least 1"),
        (["inspect", "{file}", "--max-bytes", "0"], "argument --max-bytes: must be at least 1"),
        (["task", "split-data", "--clients", "0", "--out", "{dir}"], "must be at least 1"),
        (["task", "split-data", "--clients", "2", "--alpha", "inf", "--out", "{dir}"], "finite"),
        (["task", "status", "--task", "0"], "argument --task: must be at least 1"),
        (["node", "up", "--state-interval", "-1"], "argument --state-interval: must be at least"),
        (["node", "up", "--block-time", "nan"], "argument --block-time: must be a positive"),
        (["node", "up", "--port", "70000"], "argument --port: must be at most 65535"),
        (["deploy", "--dev-account", "--max-fee-gwei", "inf"], "--max-fee-gwei: must be a"),
        (["deploy", "--dev-account", "--confirmations", "0"], "--confirmations: must be at"),
    ],
)
def test_other_commands_refuse_bad_numbers_while_parsing(tmp_path, capsys, argv, message):
    paths = {"dir": str(tmp_path / "out"), "file": str(tmp_path / "blob")}
    with pytest.raises(SystemExit) as exit_info:
        main([arg.format(**paths) for arg in argv])
    assert exit_info.value.code == 2
    assert message in one_line_error(capsys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["task", "split-data", "--clients", "2", "--seed", "-1", "--out", "{dir}"], "--seed"),
        (["task", "split-data", "--clients", "2", "--out", "{file}"], "is not a directory"),
        (["task", "create", "--seed", "-1", "--state", "{dir}/c.db"], "--seed must lie in"),
        (["task", "create", "--state", "{dir}/c.db", "--store", "{file}"], "is not a directory"),
        (["task", "status", "--task", "1", "--state", "{dir}/none.db"], "no chain state"),
        (["node", "up", "--state-dir", "{file}"], "--state-dir {file} is not a directory"),
        (["deploy", "--dev-account", "--out", "{dir}"], "--out {dir} is a directory"),
        (["inspect", "{dir}"], "no such file"),
        (["inspect", "{file}", "--features", str(10**9)], "inspect decodes models of at most"),
    ],
)
def test_other_commands_refuse_bad_paths_and_values_in_one_line(tmp_path, capsys, argv, message):
    existing = tmp_path / "existing"
    existing.write_bytes(b"")
    paths = {"dir": str(tmp_path), "file": str(existing)}
    assert main([arg.format(**paths) for arg in argv]) == 2
    assert message.format(**paths) in one_line_error(capsys)
    assert sorted(tmp_path.iterdir()) == [existing]  # nothing created on the way out


# --- inspect: bounded reads, hostile blobs ---------------------------------------------------

CODEC_PARAMS = {"none": {}, "gzip": {}, "powersgd": {"rank": 4}}
MLP_SPEC = model_spec("mlp", 64, 10)


def valid_blob(codec_name: str) -> bytes:
    encoder = make_codec(codec_name, **CODEC_PARAMS[codec_name]).new_encoder(MLP_SPEC, 0)
    delta = {name: np.full(shape, 0.01, np.float32) for name, shape in MLP_SPEC.items()}
    return encoder.encode(delta, UpdateBinding("client-1", "task", 1, 0, "base", 5))


def with_metadata_edit(codec_name: str, old: str, new: str) -> bytes:
    """A correctly framed blob of ``codec_name`` whose metadata text has ``old`` made ``new``."""
    blob = valid_blob(codec_name)
    container = gzip_decompress(blob, 10**8) if codec_name == "gzip" else blob
    metadata = read_container_header(container, 10**7).metadata
    assert old in metadata
    rebuilt = write_container(load_container_tensors(container), metadata.replace(old, new, 1))
    return gzip_compress(rebuilt) if codec_name == "gzip" else rebuilt


HOSTILE_EDITS = {
    "1e400 in params": (
        lambda c: '"params":{}' if c != "powersgd" else '"params":{"rank":4}',
        '"params":{"rank":1e400}',
    ),
    "a list as a layout name": (lambda c: '"name":"0.weight"', '"name":["0.weight"]'),
    "an object as a layout name": (lambda c: '"name":"0.weight"', '"name":{"a":1}'),
}


@pytest.mark.parametrize("codec_name", sorted(CODEC_PARAMS))
@pytest.mark.parametrize("variant", sorted(HOSTILE_EDITS))
def test_inspect_refuses_the_reported_hostile_blobs_in_one_line(
    tmp_path, capsys, codec_name, variant
):
    old, new = HOSTILE_EDITS[variant]
    path = tmp_path / "hostile.blob"
    path.write_bytes(with_metadata_edit(codec_name, old(codec_name), new))
    assert main(["inspect", str(path)]) == 2
    assert one_line_error(capsys).startswith("flare inspect: error: ")


def test_inspect_refuses_a_huge_file_without_reading_it(tmp_path, capsys):
    path = tmp_path / "huge.blob"
    with path.open("wb") as file:
        file.truncate(1 << 30)  # sparse: 1 GiB that costs no disk
    tracemalloc.start()
    try:
        assert main(["inspect", str(path)]) == 2
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    # The largest valid blob of either kind inspect takes: an update or a global model.
    limit = max(blob_limit(MLP_SPEC), model_blob_limit(MLP_SPEC))
    assert f"blob has {1 << 30} bytes, the limit is {limit}" in one_line_error(capsys)


def test_inspect_reads_at_most_the_limit_and_one_byte(tmp_path, capsys, monkeypatch):
    path = tmp_path / "update.blob"
    path.write_bytes(valid_blob("none"))
    requested: list[int] = []
    real_open = Path.open

    class CountingReader:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.file.close()

        def read(self, size=-1):
            requested.append(size)
            return self.file.read(size)

    monkeypatch.setattr(
        Path, "open", lambda self, *a, **k: CountingReader(real_open(self, *a, **k))
    )
    assert main(["inspect", str(path), "--max-bytes", "210000"]) == 0
    assert requested == [210_001]
    assert "codec none" in capsys.readouterr().out


# --- runs that something stops part-way ------------------------------------------------------


class NodeThatDies(InMemoryChain):
    """The embedded chain until ``rounds`` rounds are finalized; then every transaction
    fails the way a connector to a node that went away fails."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds_left = [rounds]  # a list: ``as_sender`` copies share it

    def transact(self, call):
        if self.rounds_left[0] == 0:
            raise ChainUnavailableError("http://127.0.0.1:8545 unavailable: connection refused")
        receipt = super().transact(call)
        self.rounds_left[0] -= sum(isinstance(e, RoundFinalized) for e in receipt.events)
        return receipt


def chain_dying_after(rounds: int):
    def open_chain(self, stack):
        return stack.enter_context(NodeThatDies(rounds))

    return open_chain


def small_config(rounds: int) -> SimulationConfig:
    return SimulationConfig(model="logreg", clients=3, malicious=0, local_epochs=1, rounds=rounds)


def test_a_chain_that_dies_leaves_the_report_of_the_finished_rounds(monkeypatch):
    monkeypatch.setattr(ProtocolSimulation, "_open_chain", chain_dying_after(1))
    with pytest.raises(RunInterrupted) as interrupted:
        ProtocolSimulation(small_config(rounds=2)).run()
    report = interrupted.value.report
    assert [r.round for r in report.rounds] == [1]
    assert report.interrupted == "http://127.0.0.1:8545 unavailable: connection refused"
    assert report.to_dict()["interrupted"] == report.interrupted
    assert str(interrupted.value).startswith("run interrupted after 1 of 2 rounds: http://")
    assert report.seconds > 0


class StoreThatDisconnects(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.connected = True

    def _refuse_when_disconnected(self) -> None:
        if not self.connected:
            raise ConnectionResetError(104, "Connection reset by peer")

    # The transport hooks, which every writer and reader reaches (the simulation's shared
    # reads serve blobs this process already checked, so a round may never load one).
    def _store(self, cid: str, data: bytes) -> None:
        self._refuse_when_disconnected()
        super()._store(cid, data)

    def _load(self, cid: str, limit: int) -> bytes:
        self._refuse_when_disconnected()
        return super()._load(cid, limit)


def test_a_store_that_disconnects_leaves_the_report_of_the_finished_rounds(monkeypatch):
    store = StoreThatDisconnects()

    class DisconnectAfterRoundOne(RunObserver):
        def round_finished(self, record):
            store.connected = False

    monkeypatch.setattr(ProtocolSimulation, "_open_store", lambda self: store)
    with pytest.raises(RunInterrupted) as interrupted:
        ProtocolSimulation(small_config(rounds=3)).run(DisconnectAfterRoundOne())
    report = interrupted.value.report
    assert len(report.rounds) == 1
    assert report.interrupted == "ConnectionResetError: [Errno 104] Connection reset by peer"


def test_ctrl_c_in_the_offline_run_keeps_the_finished_rounds():
    class PressCtrlCAtRoundTwo(RunObserver):
        def round_started(self, round_number, participants):
            if round_number == 2:
                raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as interrupted:
        Simulation(small_config(rounds=3)).run(PressCtrlCAtRoundTwo())
    assert isinstance(interrupted.value.__cause__, KeyboardInterrupt)
    assert len(interrupted.value.report.rounds) == 1
    assert interrupted.value.report.interrupted == "stopped by the user (SIGINT)"


def test_simulate_writes_report_and_plots_when_its_chain_dies(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ProtocolSimulation, "_open_chain", chain_dying_after(1))
    report_path, plots = tmp_path / "runs" / "report.json", tmp_path / "plots"
    argv = [*SMALL, "--rounds", "3", "--report", str(report_path), "--plot", str(plots)]
    assert main(["simulate", *argv]) == 2
    assert one_line_error(capsys) == (
        "flare simulate: error: run interrupted after 1 of 3 rounds: "
        "http://127.0.0.1:8545 unavailable: connection refused"
    )
    report = json.loads(report_path.read_text())
    assert len(report["rounds"]) == 1 and report["rounds"][0]["protocol"]["task_completed"] is False
    assert report["interrupted"].endswith("connection refused")
    assert sorted(p.name for p in plots.iterdir()) == ["accuracy.png", "bytes.png", "scores.png"]


@pytest.mark.parametrize("ctrl_c_round", [1, 2])
def test_simulate_writes_the_report_when_interrupted_by_ctrl_c(
    tmp_path, capsys, monkeypatch, ctrl_c_round
):
    from flare.cli.display import RoundTable

    def ctrl_c(self, round_number, participants):
        if round_number == ctrl_c_round:
            raise KeyboardInterrupt
        start_round(self, round_number, participants)

    start_round = RoundTable.round_started
    monkeypatch.setattr(RoundTable, "round_started", ctrl_c)
    report_path = tmp_path / "report.json"
    argv = [*SMALL, "--offline", "--rounds", "3", "--report", str(report_path)]
    assert main(["simulate", *argv]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == "flare simulate: interrupted"
    assert ("no round finished" in captured.out) == (ctrl_c_round == 1)
    assert f"report written to {report_path}" in captured.out
    report = json.loads(report_path.read_text())
    assert len(report["rounds"]) == ctrl_c_round - 1
    assert report["interrupted"] == "stopped by the user (SIGINT)"


def test_a_report_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    from flare.federation.report import ReportError, SimulationReport

    def disk_full(self, text, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(ReportError, match=r"cannot write the report to .*: No space left"):
        SimulationReport(config={}).write_json(tmp_path / "report.json")


@pytest.mark.anvil
def test_simulate_on_anvil_killed_after_a_round_writes_the_report(tmp_path, capsys, monkeypatch):
    from conformance.anvil_harness import start_anvil

    from flare.cli.display import RoundTable

    node = start_anvil(tmp_path / "anvil")
    finish_round = RoundTable.round_finished

    def kill_the_node_after_round_one(self, record):
        finish_round(self, record)
        node.kill()

    monkeypatch.setattr(RoundTable, "round_finished", kill_the_node_after_round_one)
    report_path = tmp_path / "report.json"
    argv = [*SMALL, "--rounds", "3", "--chain", node.rpc_url, "--report", str(report_path)]
    try:
        code = main(["simulate", "--quiet", *argv])
    finally:
        node.kill()
    assert code == 2
    error = one_line_error(capsys)
    assert error.startswith("flare simulate: error: run interrupted after 1 of 3 rounds: ")
    assert node.rpc_url in error
    report = json.loads(report_path.read_text())
    assert len(report["rounds"]) == 1
    assert report["config"]["chain"] == node.rpc_url and report["interrupted"]

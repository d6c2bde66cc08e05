"""A task's on-chain parameters: one set of defaults, one check that mirrors the contract's
``createTask``, and every command refusing what the contract would refuse before it runs."""

import dataclasses
import re

import pytest

from flare.chain import TaskParams
from flare.chain.api.derive import invalid_parameter
from flare.cli import main
from flare.errors import ConfigError
from flare.federation.agents import TaskSpec
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.simulation import Simulation
from flare.federation.task_parameters import (
    DEFAULT_TASK_PARAMETERS,
    OPTION_NAMES,
    UINT32_MAX,
    TaskParameters,
)

REFUSED = [
    # one per check of createTask, in the contract's order, then the uint32 bound
    ({"min_clients": 0}, "--min-clients must be at least 1"),
    ({"expected_committee": 0, "min_committee": 0}, "--committee must be at least 1"),
    ({"min_committee": 0}, "--min-committee must be at least 1"),
    ({"expected_committee": 5, "min_committee": 6}, "--min-committee 6 exceeds --committee 5"),
    ({"quorum_bps": 5000}, "--quorum must lie in [5001, 10000]"),
    ({"quorum_bps": 10_001}, "--quorum must lie in [5001, 10000]"),
    ({"submission_window": 0}, "--submission-window must be at least 1"),
    ({"vote_window": 0}, "--vote-window must be at least 1"),
    ({"max_rounds": 0}, "--rounds must be at least 1"),
    ({"max_attempts": 0}, "the attempt limit must be at least 1"),
    ({"expected_committee": UINT32_MAX + 1}, f"--committee must be at most {UINT32_MAX}"),
]
"""Parameter values the contract (or the ABI's uint32) refuses, and the refusal's words."""

SIMULATE_OPTIONS = {"expected_committee", "min_committee", "quorum_bps", "min_clients"}
"""The parameters ``flare simulate`` takes; it sets rounds and windows itself."""


def cli_arguments(values: dict[str, int]) -> list[str]:
    return [arg for name, value in values.items() for arg in (OPTION_NAMES[name], str(value))]


@pytest.mark.parametrize(("values", "message"), REFUSED)
def test_the_check_refuses_what_the_contract_refuses(values, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        TaskParameters(**values)
    if all(value <= UINT32_MAX for value in values.values()):  # else ABI encoding refuses
        params = dataclasses.asdict(DEFAULT_TASK_PARAMETERS) | values
        assert invalid_parameter(TaskParams(**params)) is not None


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"quorum_bps": 5001},
        {"quorum_bps": 10_000},
        {"expected_committee": 1, "min_committee": 1},
        {"min_committee": 5},
        {"max_rounds": UINT32_MAX, "max_attempts": 1, "submission_window": 1, "vote_window": 1},
    ],
)
def test_the_check_accepts_what_the_contract_accepts(values):
    parameters = TaskParameters(**values)
    assert parameters.on_chain() == TaskParams(**dataclasses.asdict(parameters))
    assert invalid_parameter(parameters.on_chain()) is None


def test_task_spec_and_protocol_config_take_the_one_set_of_defaults():
    assert TaskSpec().parameters == TaskParameters() == ProtocolConfig().task
    config = SimulationConfig(clients=4, rounds=7)
    created = ProtocolConfig().task_parameters(config)
    assert (created.max_rounds, created.submission_window, created.vote_window) == (7, 16, 16)
    assert dataclasses.replace(created, max_rounds=10, submission_window=30, vote_window=30) == (
        DEFAULT_TASK_PARAMETERS
    )


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if a simulation starts or a task is published: refusals come first."""

    def started(*args, **kwargs):
        raise AssertionError("the command ran before the parameters were checked")

    monkeypatch.setattr(Simulation, "run", started)
    monkeypatch.setattr(ProtocolSimulation, "run", started)
    monkeypatch.setattr("flare.federation.agents.publish_task", started)


@pytest.mark.parametrize(
    ("values", "message"), [case for case in REFUSED if set(case[0]) <= set(OPTION_NAMES)]
)
def test_task_create_refuses_them_in_one_line_before_anything_runs(
    tmp_path, capsys, no_run, values, message
):
    network = ["--state", str(tmp_path / "chain.db"), "--store", str(tmp_path / "blobs")]
    assert main(["task", "create", *cli_arguments(values), *network]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("flare task: error: ") and len(error.splitlines()) == 1
    assert message in error
    assert list(tmp_path.iterdir()) == []  # no chain, no blobs


@pytest.mark.parametrize(
    ("values", "message"),
    [case for case in REFUSED if set(case[0]) <= SIMULATE_OPTIONS]
    + [({"max_rounds": UINT32_MAX + 1}, f"--rounds must be at most {UINT32_MAX}")],
)
def test_simulate_refuses_them_in_one_line_before_anything_runs(capsys, no_run, values, message):
    argv = ["simulate", "--quiet", "--model", "logreg", "--clients", "8", "--malicious", "0"]
    assert main([*argv, *cli_arguments(values)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


@pytest.mark.parametrize(
    ("command", "names"),
    [(["simulate"], SIMULATE_OPTIONS), (["task", "create"], set(OPTION_NAMES))],
)
def test_help_shows_the_dataclass_defaults(capsys, command, names):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in names:
        default = getattr(DEFAULT_TASK_PARAMETERS, name)
        option = OPTION_NAMES[name]
        described = help_text.split(f"{option} ", 2)[2].split(" --")[0]  # past the usage line
        assert described.endswith(f"(default {default})"), described
    assert "(default: None)" not in help_text


def test_task_create_states_the_bound_and_refuses_a_capturable_committee(tmp_path, capsys):
    network = ["--state", str(tmp_path / "chain.db"), "--store", str(tmp_path / "blobs")]
    assert main(["task", "create", "--committee", "5", *network]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "against a 0.2 share of any number of participants: capture 0.00791" in error
    assert "exceeds --max-capture-probability 1e-06" in error
    assert list(tmp_path.iterdir()) == []

    assert main(["task", "create", "--committee", "5", "--force", *network]) == 0
    assert "capture 0.00791, honest stall 0.364" in capsys.readouterr().out
    assert main(["task", "create", *network]) == 0
    assert "per attempt, against a 0.2 share of any number of participants: capture 6.25e-09" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--adversary-share", "1"], "--adversary-share must lie in [0, 1), got 1.0"),
        (["--adversary-share", "0.3"], "capture 3.57e-06"),
        (["--max-capture-probability", "1e-9"], "exceeds --max-capture-probability 1e-09"),
    ],
)
def test_task_create_refuses_a_bound_it_cannot_meet(tmp_path, capsys, no_run, argv, message):
    network = ["--state", str(tmp_path / "chain.db"), "--store", str(tmp_path / "blobs")]
    assert main(["task", "create", *argv, *network]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_simulate_checks_its_own_attackers_before_running(capsys, no_run):
    argv = ["simulate", "--quiet", "--clients", "10", "--malicious", "3", "--committee", "5"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "against its 3 attackers of 10 participants: capture 0.00781" in error
    with pytest.raises(AssertionError, match="ran before the parameters were checked"):
        main([*argv, "--force"])  # forced, it gets as far as running
    assert main(["simulate", "--quiet", "--offline", "--force"]) == 2
    assert "--force would do nothing" in capsys.readouterr().err

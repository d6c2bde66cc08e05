"""ε where a user looks: the round table, the JSON report, the plots, one-line errors."""

import json
import math

import pytest

from flare.cli import main
from flare.cli.display import round_line
from flare.cli.plots import write_plots
from flare.federation.report import RoundRecord, SimulationReport


def _record(round_number: int, privacy: dict | None) -> RoundRecord:
    return RoundRecord(
        round=round_number,
        accuracy=0.5,
        loss=1.0,
        bytes_up=100,
        bytes_raw=100,
        accepted=["client-0", "client-1"],
        flagged=[],
        malicious=[],
        dropped=[],
        rejected={},
        seconds=0.1,
        scores={},
        reasons={},
        timings={},
        privacy=privacy,
    )


def _privacy(epsilon_a: float, epsilon_b: float) -> dict:
    return {"epsilon": max(epsilon_a, epsilon_b), "clients": {"a": epsilon_a, "b": epsilon_b}}


def test_round_line_shows_epsilon_only_with_dp():
    assert "ε 3.25" in round_line(_record(1, _privacy(3.25, 1.0)), 10)
    assert "ε" not in round_line(_record(1, None), 10)


def test_report_states_the_final_epsilon_and_the_mechanism(tmp_path):
    report = SimulationReport(
        config={},
        rounds=[_record(1, _privacy(2.0, 1.0)), _record(2, _privacy(3.0, 2.0))],
        privacy={"clip": 1.0, "noise_multiplier": 2.0, "delta": 1e-5},
    )
    path = tmp_path / "report.json"
    report.write_json(path)
    written = json.loads(path.read_text())
    assert written["final"]["epsilon"] == 3.0
    assert written["privacy"]["noise_multiplier"] == 2.0
    assert written["rounds"][1]["privacy"]["clients"] == {"a": 3.0, "b": 2.0}


def test_report_without_dp_has_no_epsilon():
    report = SimulationReport(config={}, rounds=[_record(1, None)])
    assert report.final["epsilon"] is None and report.to_dict()["privacy"] is None


def test_infinite_epsilon_of_clipping_alone_is_null_in_json(tmp_path):
    report = SimulationReport(config={}, rounds=[_record(1, _privacy(math.inf, math.inf))])
    report.write_json(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text())["final"]["epsilon"] is None


@pytest.mark.slow
def test_privacy_plot_only_with_dp(tmp_path):
    with_dp = SimulationReport(
        config={}, rounds=[_record(1, _privacy(2.0, 1.0)), _record(2, _privacy(3.0, 2.0))]
    )
    written = write_plots(with_dp, tmp_path / "dp")
    png = (tmp_path / "dp" / "privacy.png").read_bytes()
    assert png.startswith(b"\x89PNG") and tmp_path / "dp" / "privacy.png" in written
    write_plots(SimulationReport(config={}, rounds=[_record(1, None)]), tmp_path / "plain")
    assert not (tmp_path / "plain" / "privacy.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dp-clip", "1"], "--dp-clip needs --dp-noise-multiplier or --dp-epsilon"),
        (["--dp-epsilon", "4"], "--dp-noise-multiplier and --dp-epsilon need --dp-clip"),
        (["--dp-clip", "0", "--dp-noise-multiplier", "1"], "--dp-clip must lie in (0, "),
        (["--dp-clip", "1", "--dp-epsilon", "4", "--dp-delta", "2"], "--dp-delta must lie in"),
    ],
)
def test_bad_dp_options_are_one_line(args, message, capsys):
    assert main(["simulate", "--quiet", "--offline", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_simulate_with_dp_reports_epsilon_per_round(tmp_path, capsys):
    report_path = tmp_path / "report.json"
    code = main(
        [
            "simulate",
            "--offline",
            "--model",
            "logreg",
            "--clients",
            "3",
            "--malicious",
            "0",
            "--rounds",
            "2",
            "--dp-clip",
            "1",
            "--dp-epsilon",
            "10",
            "--report",
            str(report_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "client-level DP: clip 1, noise calibrated to ε 10 over 2 rounds" in out
    assert "ε 10" in out  # the last round's line: the whole budget spent
    report = json.loads(report_path.read_text())
    epsilons = [r["privacy"]["epsilon"] for r in report["rounds"]]
    assert epsilons[0] < epsilons[1] <= 10.0

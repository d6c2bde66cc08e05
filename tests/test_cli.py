"""The command line as a user meets it: one-line errors, a report and plots."""

import json
import subprocess
import sys

import numpy as np
import pytest

from flare.cli import main


def flare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flare", *args], capture_output=True, text=True, timeout=600
    )


def test_simulate_writes_report_and_plots(tmp_path):
    result = flare(
        "simulate",
        "--rounds",
        "2",
        "--clients",
        "5",
        "--malicious",
        "1",
        "--codec",
        "powersgd",
        "--report",
        str(tmp_path / "report.json"),
        "--plot",
        str(tmp_path / "plots"),
    )
    assert result.returncode == 0, result.stderr
    assert "round 1/2" in result.stdout and "round 2/2" in result.stdout
    assert "final" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["codec"] == "powersgd"
    assert len(report["rounds"]) == 2
    for name in ("accuracy.png", "bytes.png", "scores.png"):
        png = (tmp_path / "plots" / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attack", "gradient-ascent"], "invalid choice: 'gradient-ascent'"),
        (["--dataset", "/nonexistent/data.npz"], "data set not found"),
        (["--clients", "0"], "--clients must be at least 1"),
        (["--malicious", "11"], "--malicious must lie in"),
    ],
)
def test_bad_input_is_one_line_not_a_traceback(args, message, capsys):
    with pytest.raises(SystemExit) if args[0] == "--attack" else _no_exit():
        code = main(["simulate", "--quiet", *args])
        assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_malformed_npz_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, features=np.zeros((4, 2)))
    assert main(["simulate", "--quiet", "--dataset", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no array named 'X'" in err and len(err.splitlines()) == 1


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

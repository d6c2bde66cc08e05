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
        (["--aggregator-param", "clip=2"], "--aggregator-param: rule 'mi' has no setting 'clip'"),
        (
            ["--aggregator-param", "coordinate_clip_factor=-1"],
            "coordinate_clip_factor must be positive and finite",
        ),
        (["--aggregator", "krum", "--aggregator-param", "num_byzantine"], "is not NAME=VALUE"),
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


@pytest.fixture(scope="module")
def update_blob() -> bytes:
    from flare.compression import make_codec
    from flare.compression.base import UpdateBinding
    from flare.models import build_model
    from flare.tensors import spec_of

    weights = {k: v.numpy() for k, v in build_model("mlp", 64, 10, seed=0).state_dict().items()}
    encoder = make_codec("powersgd").new_encoder(spec_of(weights), 0)
    delta = {k: np.full_like(v, 0.01) for k, v in weights.items()}
    return encoder.encode(delta, UpdateBinding("client-1", "task", 1, 0, "base", 5))


def test_inspect_describes_a_good_update(tmp_path, update_blob, capsys):
    path = tmp_path / "update.blob"
    path.write_bytes(update_blob)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "codec powersgd" in out and "sender client-1" in out and "4.weight" in out


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:-100], "truncated"),
        (lambda b: b[:-4] + b"\x00\x00\xc0\x7f", "NaN or Inf"),
        (lambda b: b + bytes(10_000_000), "the limit is"),
        (lambda b: b"\x00" * 64, "header"),
    ],
)
def test_inspect_refuses_bad_blobs_in_one_line(tmp_path, update_blob, capsys, mutate, message):
    path = tmp_path / "bad.blob"
    path.write_bytes(mutate(update_blob))
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1

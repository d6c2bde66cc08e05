"""Start-up and the first run: ``--help`` imports nothing heavy, set-up is quiet, and what
only some commands need (Anvil, Kubo) is installed by the first command that needs it.

Timing belongs to ``benchmarks/bench_startup.py``; these tests assert on what gets
imported, printed and run, which does not depend on the machine's load.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flare.cli import build_parser, defer_defaults, help_values, node, simulate
from flare.cli.options import aggregator_settings_from_args
from flare.errors import ConfigError
from flare.node import NodeError

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("torch", "numpy", "matplotlib", "sklearn", "scipy", "web3", "eth_account", "rich")
"""Libraries that cost a help text tenths of a second to seconds each."""

HELP_IMPORTS = """
import argparse, json, runpy, sys

from flare.cli import build_parser

HEAVY = set(sys.argv[1].split(","))


def commands(parser, path=()):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


report = []
for path in commands(build_parser()):
    sys.argv = ["flare", *path, "--help"]
    try:
        runpy.run_module("flare", run_name="__main__")  # exactly `python -m flare ... --help`
        code = None
    except SystemExit as exit:
        code = exit.code
    loaded = sorted(HEAVY & {name.split(".")[0] for name in sys.modules})
    report.append({"command": " ".join(path), "code": code, "heavy": loaded})
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def help_report() -> list[dict]:
    """Every ``flare ... --help`` in one fresh interpreter, in order, with the heavy
    libraries loaded after each (a library, once loaded, stays in ``sys.modules``)."""
    finished = subprocess.run(
        [sys.executable, "-c", HELP_IMPORTS, ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout.splitlines()[-1])


def test_every_help_runs_without_importing_torch(help_report: list[dict]) -> None:
    commands = [entry["command"] for entry in help_report]
    for expected in ("", "simulate", "verify", "inspect", "node up", "task status", "deploy"):
        assert expected in commands
    assert "participant keys new" in commands
    for entry in help_report:
        assert entry["code"] == 0, entry
        assert "torch" not in entry["heavy"], f"`flare {entry['command']} --help` imports torch"


def test_no_help_loads_a_heavy_library(help_report: list[dict]) -> None:
    for entry in help_report:
        assert entry["heavy"] == [], f"`flare {entry['command']} --help`: {entry}"


SIMULATE_HELP_IMPORTS = """
import runpy, sys

sys.argv = ["flare", "simulate", "--help"]
try:
    runpy.run_module("flare", run_name="__main__")
except SystemExit as exit:
    assert exit.code == 0, exit.code
print("loaded:", *sorted({"torch", "numpy"} & {name.split(".")[0] for name in sys.modules}))
"""


def test_simulate_help_alone_imports_neither_torch_nor_numpy() -> None:
    """In an interpreter of its own: the report above shares one, where a library any earlier
    help had loaded would be charged to it."""
    finished = subprocess.run(
        [sys.executable, "-c", SIMULATE_HELP_IMPORTS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert finished.returncode == 0, finished.stderr
    assert "--aggregator {" in finished.stdout
    assert finished.stdout.splitlines()[-1] == "loaded:"


def test_the_help_values_are_the_registries() -> None:
    from flare.aggregation import AGGREGATORS
    from flare.compression import CODECS
    from flare.data import PARTITIONS
    from flare.federation.attacks import ATTACKS
    from flare.models import MODELS
    from flare.node import DEFAULT_STATE_DIR

    assert tuple(sorted(MODELS)) == help_values.MODEL_NAMES
    assert tuple(sorted(ATTACKS)) == help_values.ATTACK_NAMES
    assert help_values.PARTITION_NAMES == PARTITIONS
    assert tuple(sorted(AGGREGATORS)) == help_values.AGGREGATOR_NAMES
    assert tuple(sorted(CODECS)) == help_values.CODEC_NAMES
    assert help_values.NODE_STATE_DIR == DEFAULT_STATE_DIR


def test_simulate_reads_its_defaults_only_when_it_runs_and_they_are_the_config_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flare.federation.config import SimulationConfig

    reads = []
    defaults = simulate._defaults
    monkeypatch.setattr(simulate, "_defaults", lambda: reads.append(1) or defaults())
    parser = build_parser()
    assert reads == []  # building the parser, as every command and `flare --help` do
    args = parser.parse_args(["simulate"])
    assert reads == [1]
    assert simulate.config_from_args(args) == SimulationConfig()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    config = SimulationConfig()
    assert f"how many attackers (default: {config.malicious})" in help_text
    assert f"PowerSGD rank (default: {config.rank})" in help_text


def test_an_option_given_overrides_a_deferred_default() -> None:
    args = build_parser().parse_args(["simulate", "--clients", "4", "--codec", "powersgd"])
    config = simulate.config_from_args(args)
    assert (config.clients, config.codec, config.rounds) == (4, "powersgd", 10)


def test_aggregator_settings_are_parsed_as_the_rule_declares_them() -> None:
    args = build_parser().parse_args(
        [
            "simulate",
            "--aggregator-param",
            "coordinate_clip_factor=2",
            "--aggregator-param",
            "clip_to_median_norm=true",
        ]
    )
    assert simulate.config_from_args(args).aggregator_params == {
        "coordinate_clip_factor": 2.0,
        "clip_to_median_norm": True,
    }
    krum = build_parser().parse_args(
        ["simulate", "--aggregator", "krum", "--aggregator-param", "num_byzantine=2"]
    )
    assert simulate.config_from_args(krum).aggregator_params == {"num_byzantine": 2}
    given_twice = build_parser().parse_args(
        ["simulate", "--aggregator-param", "reference_cosine_min=0", "--aggregator-param",
         "reference_cosine_min=0.1"]
    )  # fmt: skip
    with pytest.raises(ConfigError, match="'reference_cosine_min' given twice"):
        simulate.config_from_args(given_twice)
    assert (
        simulate.config_from_args(build_parser().parse_args(["simulate"])).aggregator_params == {}
    )
    create = build_parser().parse_args(
        ["task", "create", "--aggregator-param", "coordinate_clip_factor=1.5"]
    )
    assert aggregator_settings_from_args(create, create.aggregator) == {
        "coordinate_clip_factor": 1.5
    }


def test_simulate_offers_every_registered_aggregator_and_codec(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flare.aggregation import AGGREGATORS
    from flare.compression import CODECS

    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--help"])
    help_text = capsys.readouterr().out
    assert f"--aggregator {{{','.join(sorted(AGGREGATORS))}}}" in help_text
    assert f"--codec {{{','.join(sorted(CODECS))}}}" in help_text
    for name in AGGREGATORS:
        args = build_parser().parse_args(["simulate", "--aggregator", name])
        assert simulate.config_from_args(args).aggregator == name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--codec", "zip"])
    assert "argument --codec: invalid choice: 'zip'" in capsys.readouterr().err


def test_deferring_needs_a_flare_parser() -> None:
    plain = argparse.ArgumentParser()
    with pytest.raises(TypeError, match="build_parser"):
        defer_defaults(plain, dict)


def test_keys_passwords_config_and_deployments_are_git_ignored() -> None:
    paths = ["keys/creator/key.json", "password.txt", "keys/device-7.password"]
    paths += ["flare.toml", "deployments/31337.json", "deployer.password"]
    checked = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], capture_output=True, text=True, cwd=ROOT
    )
    assert checked.stdout.split() == paths


# --- set-up: quiet, one line per step that works -----------------------------------------

FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python: `-m venv DIR` makes DIR/bin/python (this script); `-m pip` prints
# what pip and setuptools print, and fails when $FAKE_PIP_FAIL is set.
if [[ "$1 $2" == "-m venv" ]]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
if [[ "$1 $2" == "-m pip" ]]; then
    echo "********** SetuptoolsDeprecationWarning: License classifiers **********" >&2
    echo "Successfully installed flare-0.1.0"
    echo "pip $*"
    if [[ -n "${FAKE_PIP_FAIL:-}" ]]; then echo "ERROR: $FAKE_PIP_FAIL" >&2; exit 1; fi
    exit 0
fi
exit 2
"""


def run_script(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "fake-python"
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return path


def test_setup_says_one_line_keeps_pip_in_a_log_and_then_says_nothing(
    tmp_path: Path, fake_python: Path
) -> None:
    venv = tmp_path / "venv"
    env = {"FLARE_VENV": str(venv), "PYTHON": str(fake_python)}
    first = run_script("setup.sh", env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    assert first.stderr.splitlines() == [
        f"[setup] creating the Python environment in {venv} (the first time downloads torch; "
        "later ones reuse pip's cache)"
    ]
    log = (venv / "setup.log").read_text()
    assert "SetuptoolsDeprecationWarning" in log and "Successfully installed" in log
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    assert (venv / ".flare-stamp").read_text().strip() == f"{stamp} dev"
    assert f"install -e {ROOT}[dev]" in log  # the first command downloads no Ray
    # native/ is built in the same breath, without a line of its own
    assert f"pip install {ROOT / 'native'}" in (venv / "native.log").read_text()
    assert (venv / ".flare-native-stamp").is_file()
    again = run_script("setup.sh", env)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_setup_rebuilds_changed_native_kernels_and_says_so(
    tmp_path: Path, fake_python: Path
) -> None:
    venv = tmp_path / "venv"
    env = {"FLARE_VENV": str(venv), "PYTHON": str(fake_python)}
    assert run_script("setup.sh", env).returncode == 0
    (venv / ".flare-native-stamp").write_text("older sources\n")
    rebuilt = run_script("setup.sh", env)
    assert rebuilt.returncode == 0
    assert rebuilt.stderr.splitlines() == [
        "[setup] building the native kernels (native/; the first time fetches their crates)"
    ]
    failed = run_script("setup.sh", {**env, "FAKE_PIP_FAIL": "cargo failed"})
    assert failed.returncode == 0  # the stamp is current: nothing to build
    (venv / ".flare-native-stamp").unlink()
    failed = run_script("setup.sh", {**env, "FAKE_PIP_FAIL": "cargo failed"})
    assert failed.returncode == 1
    assert "error: building native/ failed" in failed.stderr and "cargo failed" in failed.stderr


def test_setup_without_cargo_says_so_and_leaves_the_kernels_to_python(
    tmp_path: Path, fake_python: Path
) -> None:
    venv = tmp_path / "venv"
    env = {"FLARE_VENV": str(venv), "PYTHON": str(fake_python), "PATH": "/usr/bin:/bin"}
    first = run_script("setup.sh", env)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines()[1:] == [
        "[setup] warning: no cargo (Rust) here: native/ is not built; pairing checks run on "
        "pyblst alone and PowerSGD blobs in Python (the same answers, more slowly)"
    ]
    assert not (venv / ".flare-native-stamp").exists() and not (venv / "native.log").exists()


def test_setup_adds_the_extras_asked_for_and_keeps_them(tmp_path: Path, fake_python: Path) -> None:
    venv = tmp_path / "venv"
    env = {"FLARE_VENV": str(venv), "PYTHON": str(fake_python)}
    assert run_script("setup.sh", env).returncode == 0
    more = run_script("setup.sh", {**env, "FLARE_EXTRAS": "ray,dev,dashboard"})
    assert more.returncode == 0
    assert more.stderr.splitlines() == [
        f"[setup] adding the extras dashboard,dev,ray to the Python environment in {venv}"
    ]
    assert f"install -e {ROOT}[dashboard,dev,ray]" in (venv / "setup.log").read_text()
    again = run_script("setup.sh", env)  # asking for less changes nothing
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_setup_names_a_changed_project_as_an_update(tmp_path: Path, fake_python: Path) -> None:
    venv = tmp_path / "venv"
    env = {"FLARE_VENV": str(venv), "PYTHON": str(fake_python)}
    assert run_script("setup.sh", env).returncode == 0
    (venv / ".flare-stamp").write_text("an older pyproject.toml\n")
    updated = run_script("setup.sh", env)
    assert updated.returncode == 0
    assert updated.stderr.splitlines() == [
        f"[setup] updating the Python environment in {venv} (pyproject.toml changed)"
    ]


def test_a_failing_setup_shows_pips_output_and_leaves_no_stamp(
    tmp_path: Path, fake_python: Path
) -> None:
    venv = tmp_path / "venv"
    env = {"FLARE_VENV": str(venv), "PYTHON": str(fake_python), "FAKE_PIP_FAIL": "no torch"}
    failed = run_script("setup.sh", env)
    assert failed.returncode == 1
    assert f"[setup] error: setting up {venv} failed; the end of {venv}/setup.log:" in (
        failed.stderr
    )
    assert "ERROR: no torch" in failed.stderr
    assert not (venv / ".flare-stamp").exists()


def test_scripts_flare_sets_up_python_only_and_runs_the_venvs_flare(
    tmp_path: Path, fake_python: Path
) -> None:
    """The README's first command builds no Kubo and installs no npm tools: a ``go`` or
    ``npm`` on PATH that leaves a mark when run is never run."""
    venv = tmp_path / "venv"
    marks = tmp_path / "marks"
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("go", "npm", "node"):
        (tools / tool).write_text(f"#!/bin/sh\necho {tool} >> {marks}\n")
        (tools / tool).chmod(0o755)
    env = {
        "FLARE_VENV": str(venv),
        "PYTHON": str(fake_python),
        "FLARE_CACHE": str(tmp_path / "cache"),
        "PATH": f"{tools}:{os.environ['PATH']}",
    }
    assert run_script("setup.sh", env).returncode == 0
    (venv / "bin" / "flare").write_text('#!/bin/sh\necho "flare $*"\n')
    (venv / "bin" / "flare").chmod(0o755)
    ran = run_script("flare", env, "simulate", "--report", "runs/demo/report.json")
    assert (ran.returncode, ran.stderr) == (0, "")
    assert ran.stdout == "flare simulate --report runs/demo/report.json\n"
    assert not marks.exists()
    assert not (tmp_path / "cache").exists()


# --- Kubo: built once, in one line, silent when cached -----------------------------------

FAKE_GO = """#!/usr/bin/env bash
# Stands in for the Go toolchain: `mod download -json` names $FAKE_KUBO_SOURCE, `build -o F`
# writes an `ipfs` that reports 0.43.1, or fails when $FAKE_GO_FAIL is set.
case "$1" in
    version) echo "go version go1.fake linux/amd64" ;;
    mod)
        if [[ "$2" == download ]]; then
            echo "go: downloading github.com/ipfs/kubo v0.43.1" >&2
            printf '{\\n\\t"Dir": "%s",\\n}\\n' "$FAKE_KUBO_SOURCE"
        fi
        ;;
    build)
        if [[ -n "${FAKE_GO_FAIL:-}" ]]; then echo "compile error: $FAKE_GO_FAIL" >&2; exit 1; fi
        printf '#!/bin/sh\\necho 0.43.1\\n' > "$3" && chmod +x "$3"
        ;;
esac
"""


@pytest.fixture
def fake_go(tmp_path: Path) -> dict[str, str]:
    """The environment under which ``install_kubo.sh`` builds with :data:`FAKE_GO`."""
    tools = tmp_path / "go-bin"
    tools.mkdir()
    (tools / "go").write_text(FAKE_GO)
    (tools / "go").chmod(0o755)
    source = tmp_path / "kubo-source"
    (source / "cmd" / "ipfs").mkdir(parents=True)
    return {
        "PATH": f"{tools}:{os.environ['PATH']}",
        "FAKE_KUBO_SOURCE": str(source),
        "FLARE_CACHE": str(tmp_path / "cache"),
        "KUBO_VERSION": "v0.43.1",
    }


def test_building_kubo_says_one_line_and_a_cached_kubo_says_nothing(
    tmp_path: Path, fake_go: dict[str, str]
) -> None:
    binary = tmp_path / "cache" / "kubo" / "v0.43.1" / "ipfs"
    built = run_script("install_kubo.sh", fake_go)
    assert built.returncode == 0, built.stderr
    assert built.stdout == f"{binary}\n"
    assert built.stderr.splitlines() == [
        "[install_kubo] building Kubo v0.43.1 from source (first time only, a few minutes)…"
    ]
    assert "go: downloading" in (binary.parent / "build.log").read_text()
    cached = run_script("install_kubo.sh", fake_go)
    assert (cached.returncode, cached.stdout, cached.stderr) == (0, f"{binary}\n", "")


def test_a_failed_kubo_build_shows_gos_output_and_caches_nothing(
    tmp_path: Path, fake_go: dict[str, str]
) -> None:
    failed = run_script("install_kubo.sh", {**fake_go, "FAKE_GO_FAIL": "undefined: quic"})
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert "[install_kubo] error: building Kubo v0.43.1 failed" in failed.stderr
    assert "compile error: undefined: quic" in failed.stderr
    left = sorted(path.name for path in (tmp_path / "cache" / "kubo" / "v0.43.1").iterdir())
    assert left == ["build.log"]  # no binary, no half-built staging directory


# --- `flare node up` installs what it lacks -----------------------------------------------

INSTALLER = """#!/bin/sh
echo "$NEEDED_BY" >> "{calls}"
echo "[install] installing the tool (first time only)" >&2
{action}
"""


def installer(scripts: Path, calls: Path, action: str) -> None:
    scripts.mkdir(exist_ok=True)
    path = scripts / "install_tool.sh"
    path.write_text(INSTALLER.format(calls=calls, action=action))
    path.chmod(0o755)


def finder(binary: Path):
    def find() -> Path:
        if not binary.is_file():
            raise NodeError("no tool binary: run scripts/install_tool.sh")
        return binary

    return find


def test_node_up_installs_a_missing_binary_once_with_the_checkouts_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "cache" / "tool"
    calls = tmp_path / "calls"
    installer(tmp_path / "scripts", calls, f"mkdir -p {binary.parent} && touch {binary}")
    monkeypatch.setattr(node, "CHECKOUT_SCRIPTS", tmp_path / "scripts")
    monkeypatch.delenv("FLARE_TOOL", raising=False)
    for _ in range(2):
        found = node.installed_binary(
            finder(binary), "FLARE_TOOL", "install_tool.sh", "tool", {"NEEDED_BY": "node up"}
        )
        assert found == binary
    assert calls.read_text() == "node up\n"  # the second call found what the first installed


@pytest.mark.parametrize(
    ("situation", "message"),
    [
        ("override", "no tool binary: run scripts/install_tool.sh"),
        ("no checkout", "no tool binary: run scripts/install_tool.sh"),
        ("installer fails", "no tool binary, and scripts/install_tool.sh failed (see above)"),
    ],
)
def test_node_up_installs_nothing_against_an_override_or_outside_a_checkout(
    situation: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    installer(tmp_path / "scripts", calls, "exit 3" if situation == "installer fails" else "")
    scripts = tmp_path / ("elsewhere" if situation == "no checkout" else "scripts")
    monkeypatch.setattr(node, "CHECKOUT_SCRIPTS", scripts)
    if situation == "override":
        monkeypatch.setenv("FLARE_TOOL", str(tmp_path / "wrong"))
    else:
        monkeypatch.delenv("FLARE_TOOL", raising=False)
    with pytest.raises(NodeError) as refused:
        node.installed_binary(finder(tmp_path / "tool"), "FLARE_TOOL", "install_tool.sh", "tool")
    assert str(refused.value) == message
    assert calls.exists() == (situation == "installer fails")


def test_node_up_installs_anvil_with_the_npm_script_and_kubo_with_the_build_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flare.cli import main
    from flare.node import KuboConfig, find_anvil, find_ipfs
    from flare.node.kubo import KUBO_VERSION

    asked = []

    def refuse(find, override, installer, name, installer_env=None):
        asked.append((find, override, installer, name, installer_env))
        raise NodeError(f"no {name} binary (test)")

    monkeypatch.setattr(node, "installed_binary", refuse)
    assert main(["node", "up", "--state-dir", str(tmp_path / "state")]) == 2
    assert "flare node: error: no anvil binary (test)" in capsys.readouterr().err
    node._start_kubo(KuboConfig(tmp_path / "kubo"))
    assert capsys.readouterr().out == "kubo skipped: no ipfs binary (test)\n"
    assert asked == [
        (find_anvil, "FLARE_ANVIL", "install_tools.sh", "anvil", None),
        (find_ipfs, "FLARE_IPFS_BIN", "install_kubo.sh", "ipfs", {"KUBO_VERSION": KUBO_VERSION}),
    ]

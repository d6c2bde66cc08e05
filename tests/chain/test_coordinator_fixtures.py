"""The coordinator trace fixture is what flare.chain records today.

``contracts/test/fixtures/coordinator.json`` is the in-memory chain's trace of a scenario that
``FlareCoordinatorTrace.t.sol`` replays against the Solidity contract byte for byte. If
``flare.chain`` changes behaviour, the fixture must be regenerated (and the contract must
follow), or the differential test would keep comparing the contract with an old Python.
"""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_coordinator_fixture_is_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_coordinator_fixtures", ROOT / "scripts" / "gen_coordinator_fixtures.py"
    )
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.OUTPUT.read_text() == generator.render(), (
        "contracts/test/fixtures/coordinator.json is stale: "
        "run scripts/gen_coordinator_fixtures.py, then forge test"
    )

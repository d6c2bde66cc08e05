"""Fixtures of the conformance suite: every test gets a fresh chain of each harness."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.harness import HARNESSES
from conformance.scenario import World


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.anvil] if name == "anvil" else [])
        for name in sorted(HARNESSES)
    ]
)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    harness = HARNESSES[request.param](tmp_path)
    try:
        yield World(harness.connector(), harness.mine, harness.prevrandao, harness.contract_balance)
    finally:
        harness.close()

"""The shipped FlareCoordinator artifact is what the Solidity sources compile to.

``flare/chain/artifacts/FlareCoordinator.json`` is written by ``scripts/export_artifacts.py``
and shipped so that users deploy without a compiler. These tests fail when it is stale:
the recorded source hashes are checked against the tree without any compiler, and where
forge is installed (``scripts/install_tools.sh``) the contract is rebuilt and compared with
the artifact (all but solc's metadata trailer, see ``export_artifacts.strip_metadata``).
"""

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from eth_utils import keccak

from flare.chain.api.calls import CALL_TYPES
from flare.chain.api.errors import PROTOCOL_ERRORS
from flare.chain.api.events import EVENT_TYPES
from flare.chain.rpc.contract import canonical_type

ROOT = Path(__file__).resolve().parents[2]


def _load_export_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "export_artifacts", ROOT / "scripts" / "export_artifacts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export = _load_export_script()


@pytest.fixture(scope="module")
def artifact() -> dict[str, Any]:
    return json.loads(export.ARTIFACT.read_text())


def _signatures(abi: list[dict[str, Any]], kind: str) -> set[str]:
    return {
        f"{entry['name']}({','.join(canonical_type(p) for p in entry['inputs'])})"
        for entry in abi
        if entry["type"] == kind
    }


def test_artifact_records_compiler_and_code(artifact: dict[str, Any]) -> None:
    assert artifact["contractName"] == "FlareCoordinator"
    assert artifact["compiler"]["version"].startswith("0.8.30+commit.")
    assert artifact["compiler"]["evmVersion"] == "prague"
    assert artifact["compiler"]["optimizer"] == {"enabled": True, "runs": 200}
    for key in ("bytecode", "deployedBytecode"):
        code = bytes.fromhex(artifact[key].removeprefix("0x"))
        assert len(code) > 1000
        assert len(code) <= 24_576 or key == "bytecode"  # EIP-170 runtime size limit


def test_artifact_sources_are_the_tree(artifact: dict[str, Any]) -> None:
    """Editing a contract source without re-exporting fails here, compiler or not."""
    recorded = artifact["sources"]
    assert "contracts/src/FlareCoordinator.sol" in recorded
    assert "contracts/src/BLS.sol" in recorded
    assert artifact["sourceHash"] == export.source_hash(recorded)
    stale = [
        path
        for path, digest in recorded.items()
        if not (ROOT / path).exists() or export.file_sha256(ROOT / path) != digest
    ]
    assert not stale, f"sources changed since the export (run scripts/export_artifacts.py): {stale}"


def test_artifact_abi_is_flare_chains(artifact: dict[str, Any]) -> None:
    """Every call, event and error of flare.chain is in the ABI with the same signature."""
    abi = artifact["abi"]
    functions = _signatures(abi, "function")
    for call in CALL_TYPES:
        assert call.signature() in functions
    for view in (
        "taskCount()",
        "getTask(uint256)",
        "getRound(uint256)",
        "getParticipant(uint256,address)",
        "getProposal(uint256,uint32)",
        "admissionRoot(uint256)",
        "minStake(uint256)",
        "stakeOf(uint256,address)",
        "stakeSnapshot(uint256)",
        "STAKE_LOCK_BLOCKS()",
    ):
        assert view in functions
    assert len(functions) == len(CALL_TYPES) + 10
    events = _signatures(abi, "event")
    assert events == {kind.signature() for kind in EVENT_TYPES}
    for entry in abi:
        if entry["type"] == "event":
            kind = next(k for k in EVENT_TYPES if k.__name__ == entry["name"])
            assert keccak(text=kind.signature()) == kind.topic()
    errors = _signatures(abi, "error")
    assert {error.signature() for error in PROTOCOL_ERRORS} <= errors
    # Beyond the protocol's errors, only the crypto libraries' (never raised on valid input).
    extra = {name.split("(")[0] for name in errors} - {e.__name__ for e in PROTOCOL_ERRORS}
    assert extra <= {
        "EmptyPopulation",
        "InsufficientGas",
        "InvalidDomainTag",
        "InvalidEncodingLength",
        "PrecompileFailed",
    }


def test_artifact_matches_a_fresh_build(artifact: dict[str, Any]) -> None:
    if not export.FORGE.exists() or shutil.which("node") is None:
        pytest.skip("forge is not installed (scripts/install_tools.sh installs it); cannot rebuild")
    fresh = export.artifact_document(export.compile_contract())
    assert export.comparable(fresh) == export.comparable(artifact), (
        "flare/chain/artifacts/FlareCoordinator.json is stale: run scripts/export_artifacts.py"
    )

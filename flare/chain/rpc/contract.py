"""The compiled ``FlareCoordinator`` shipped with the package, and its interface check.

Users deploy from this artifact without a compiler, and the RPC connector talks to what
it deployed. The connector encodes calls and decodes results with :mod:`flare.chain.api.abi`
(the codecs the in-memory chain journals through), so the artifact's ABI is checked
against those codecs once per process: a contract exported with a renamed error or a
reordered struct field is refused with a list of every difference, instead of being
misread call by call.
"""

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from eth_abi import decode, encode

from flare.chain.api.abi import abi_fields, field_types, from_abi, hex_bytes, selector, signature
from flare.chain.api.calls import CALL_TYPES
from flare.chain.api.errors import PROTOCOL_ERRORS, ChainError
from flare.chain.api.events import EVENT_TYPES
from flare.chain.api.types import Participant, Proposal, Round, Task

CONTRACT_NAME = "FlareCoordinator"


class ContractArtifactError(ChainError):
    """The contract artifact is missing, unreadable, or disagrees with Flare's ABI."""


@dataclass(frozen=True)
class View:
    """One view function: argument types and the record (or ABI type) it returns."""

    name: str
    inputs: tuple[str, ...]
    output: type | str

    @property
    def output_type(self) -> str:
        """The canonical ABI type of the return value (a tuple for a struct)."""
        if isinstance(self.output, str):
            return self.output
        return "(" + ",".join(field_types(self.output)) + ")"

    def calldata(self, *args: Any) -> bytes:
        """Selector and ABI-encoded arguments."""
        return selector(signature(self.name, list(self.inputs))) + encode(
            list(self.inputs), list(args)
        )

    def result(self, data: bytes) -> Any:
        """The decoded return value; a record for struct-returning views."""
        (value,) = decode([self.output_type], data)
        return value if isinstance(self.output, str) else from_abi(self.output, tuple(value))


TASK_COUNT = View("taskCount", (), "uint256")
GET_TASK = View("getTask", ("uint256",), Task)
GET_ROUND = View("getRound", ("uint256",), Round)
GET_PARTICIPANT = View("getParticipant", ("uint256", "address"), Participant)
GET_PROPOSAL = View("getProposal", ("uint256", "uint32"), Proposal)
ADMISSION_ROOT = View("admissionRoot", ("uint256",), "bytes32")
MIN_STAKE = View("minStake", ("uint256",), "uint256")
STAKE_OF = View("stakeOf", ("uint256", "address"), "uint256")
STAKE_SNAPSHOT = View("stakeSnapshot", ("uint256",), "uint256")
VIEWS = (
    TASK_COUNT,
    GET_TASK,
    GET_ROUND,
    GET_PARTICIPANT,
    GET_PROPOSAL,
    ADMISSION_ROOT,
    MIN_STAKE,
    STAKE_OF,
    STAKE_SNAPSHOT,
)


@dataclass(frozen=True)
class Artifact:
    """ABI and bytecode of one compiled contract, and a hash naming exactly them."""

    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the canonical JSON of ABI and both bytecodes.

        Canonical (sorted keys, no whitespace) so that re-exporting the same contract
        with other formatting keeps the hash a deployment file records.
        """
        canonical = json.dumps(
            {
                "abi": list(self.abi),
                "bytecode": "0x" + self.bytecode.hex(),
                "deployedBytecode": "0x" + self.deployed_bytecode.hex(),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def default_artifact_path() -> Path:
    """Where the package ships ``FlareCoordinator.json``."""
    return Path(str(resources.files("flare.chain") / "artifacts" / f"{CONTRACT_NAME}.json"))


def load_artifact(path: Path | None = None) -> Artifact:
    """Read an artifact (the shipped one by default) and check its interface."""
    return _shipped_artifact() if path is None else _read_checked(path)


@cache
def _shipped_artifact() -> Artifact:
    return _read_checked(default_artifact_path())


def _read_checked(path: Path) -> Artifact:
    try:
        document = json.loads(path.read_text())
        artifact = Artifact(
            tuple(document["abi"]),
            _code(document["bytecode"]),
            _code(document["deployedBytecode"]),
        )
    except FileNotFoundError as exc:
        raise ContractArtifactError(f"no contract artifact at {path}") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ContractArtifactError(f"unreadable contract artifact {path}: {exc}") from exc
    problems = interface_problems(artifact.abi)
    if problems:
        raise ContractArtifactError(f"{path} does not match Flare's ABI: " + "; ".join(problems))
    return artifact


def _code(value: Any) -> bytes:
    """Bytecode given as a hex string or as forge's ``{"object": "0x…"}``."""
    text = value["object"] if isinstance(value, dict) else value
    if not isinstance(text, str) or len(text) <= 2:
        raise ValueError("empty bytecode")
    return hex_bytes(text)


def interface_problems(abi: tuple[dict[str, Any], ...]) -> list[str]:
    """Every difference between ``abi`` and the calls, views, events and errors Flare uses."""
    found = {(entry.get("type"), entry.get("name")): entry for entry in abi}
    problems = []
    for call in CALL_TYPES:
        problems += _compare(found, "function", call.FUNCTION, field_types(call))
    for view in VIEWS:
        problems += _compare(found, "function", view.name, list(view.inputs))
        entry = found.get(("function", view.name))
        if entry is not None:
            outputs = [canonical_type(o) for o in entry.get("outputs", [])]
            if outputs != [view.output_type]:
                problems.append(f"{view.name} returns {outputs}, expected [{view.output_type}]")
    for event in EVENT_TYPES:
        problems += _compare(found, "event", event.__name__, field_types(event))
        entry = found.get(("event", event.__name__))
        if entry is not None:
            indexed = [bool(i.get("indexed")) for i in entry["inputs"]]
            expected = [f.indexed for f in abi_fields(event)]
            if indexed != expected:
                problems.append(f"event {event.__name__} indexes {indexed}, expected {expected}")
    for error in PROTOCOL_ERRORS:
        types = [solidity_type for _, solidity_type in error.ARGS]
        problems += _compare(found, "error", error.__name__, types)
    return problems


def _compare(
    found: dict[tuple[Any, Any], dict[str, Any]], kind: str, name: str, types: list[str]
) -> list[str]:
    entry = found.get((kind, name))
    if entry is None:
        return [f"{kind} {name} is missing"]
    actual = [canonical_type(i) for i in entry.get("inputs", [])]
    if actual != types:
        return [f"{kind} {name}({','.join(actual)}), expected {signature(name, types)}"]
    return []


def canonical_type(parameter: dict[str, Any]) -> str:
    """The canonical type of one ABI JSON parameter (tuples spelled out, enums as uint8)."""
    kind = parameter["type"]
    if kind.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in parameter["components"])
        return f"({inner}){kind.removeprefix('tuple')}"
    return kind

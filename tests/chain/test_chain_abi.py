"""The chain layer's ABI: in sync with docs/protocol.md, and round-tripping exactly.

The Solidity contract is written from docs/protocol.md; these tests parse its tables and
headings and compare them with the Python declarations, so a signature cannot silently
differ between the document, the in-memory chain and the RPC decoder.
"""

import re
from dataclasses import fields
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from flare.chain import (
    ERRORS_BY_SELECTOR,
    EVENT_TYPES,
    PROTOCOL_ERRORS,
    ChainError,
    ContentRef,
    ContractError,
    UnrecognizedRevert,
    decode_log,
    decode_revert,
    encode_log,
)
from flare.chain.api import errors as e
from flare.chain.api.abi import abi_fields
from flare.chain.api.calls import (
    CALL_TYPES,
    CALLS_BY_SELECTOR,
    Register,
    RegisterStaked,
    checked_calldata,
    decode_call,
    encode_call,
)
from flare.chain.api.derive import (
    decode_accepted,
    encode_accepted,
    is_canonical_bitmap,
    next_history_hash,
    next_submissions_hash,
    quorum_threshold,
    round_seed,
)
from flare.chain.api.types import Participant, Proposal, Round, Task, TaskParams
from flare.errors import ConfigError
from flare.storage import compute_cid

PROTOCOL = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
STRUCT_TYPES = {"Cid": ContentRef, "TaskParams": TaskParams}
ADDRESS = to_checksum_address("0x" + "ab" * 20)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def canonical(solidity_type: str) -> str:
    record = STRUCT_TYPES.get(solidity_type)
    if record is None:
        return "uint8" if solidity_type == "TaskStatus" else solidity_type
    return "(" + ",".join(canonical_of(record)) + ")"


def canonical_of(record: type) -> list[str]:
    return [f.type_name for f in abi_fields(record)]


def parse_params(text: str) -> list[tuple[str, str, bool]]:
    """``uint256 indexed taskId, Cid model`` → ``[(type, name, indexed), …]``."""
    params = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        words = part.split()
        params.append((canonical(words[0]), words[-1], "indexed" in words))
    return params


def test_every_event_matches_the_protocol_table() -> None:
    rows = re.findall(r"^\| \d+ \| `(\w+)` \| (.+) \|$", PROTOCOL, re.MULTILINE)
    assert [name for name, _ in rows] == [kind.__name__ for kind in EVENT_TYPES]
    for (name, params), kind in zip(rows, EVENT_TYPES, strict=True):
        expected = [(f.type_name, camel(f.name), f.indexed) for f in abi_fields(kind)]
        assert parse_params(params.replace("`", "")) == expected, name
        assert expected[0][:3] == ("uint256", "taskId", True), "taskId is topic 1 everywhere"


def test_every_error_matches_the_protocol_table() -> None:
    rows = re.findall(r"^\| `(\w+)\(([^)]*)\)` \|", PROTOCOL, re.MULTILINE)
    assert [name for name, _ in rows] == [cls.__name__ for cls in PROTOCOL_ERRORS]
    for (name, params), cls in zip(rows, PROTOCOL_ERRORS, strict=True):
        expected = [(t, camel(n), False) for n, t in cls.ARGS]
        assert parse_params(params) == expected, name


def test_every_call_matches_its_protocol_heading() -> None:
    headings = re.findall(r"^### 4\.\d+ `(\w+)\(([^)]*)\)", PROTOCOL, re.MULTILINE)
    assert [name for name, _ in headings] == [kind.FUNCTION for kind in CALL_TYPES]
    for (name, params), kind in zip(headings, CALL_TYPES, strict=True):
        expected = [(f.type_name, camel(f.name), False) for f in abi_fields(kind)]
        assert parse_params(params) == expected, name


@pytest.mark.parametrize("record", [Task, Round, Participant, Proposal, TaskParams, ContentRef])
def test_every_view_struct_matches_the_protocol(record: type) -> None:
    name = {ContentRef: "Cid"}.get(record, record.__name__)
    body = re.search(rf"struct {name} \{{(.*?)\}}", PROTOCOL, re.DOTALL)
    assert body is not None, name
    declared = [
        (canonical(line.split()[0]), line.split()[1])
        for line in re.sub(r"//[^\n]*", "", body.group(1)).split(";")
        if line.strip()
    ]
    assert declared == [(f.type_name, camel(f.name)) for f in abi_fields(record)]


def test_selectors_and_topics_are_unique() -> None:
    assert len(ERRORS_BY_SELECTOR) == len(PROTOCOL_ERRORS) == 47
    assert len({kind.topic() for kind in EVENT_TYPES}) == len(EVENT_TYPES)
    assert len(CALLS_BY_SELECTOR) == len(CALL_TYPES)
    assert e.UnknownTask.selector() == keccak(text="UnknownTask(uint256)")[:4]


def sample(abi_type: str, seed: int) -> object:
    """A deterministic value of ``abi_type`` that exercises its full width."""
    if abi_type == "address":
        return to_checksum_address(keccak(b"%d" % seed)[:20])
    if abi_type == "bool":
        return seed % 2 == 0
    if abi_type == "bytes32":
        return keccak(b"%d" % seed)
    if abi_type == "bytes":
        return keccak(b"%d" % seed) * (seed % 5)
    if abi_type == "bytes32[]":
        return tuple(keccak(b"%d-%d" % (seed, i)) for i in range(seed % 4))
    bits = int(abi_type.removeprefix("uint"))
    return (2**bits - 1) - seed


def sample_record(record: type, seed: int = 1) -> object:
    values = {}
    for offset, f in enumerate(abi_fields(record)):
        if isinstance(f.abi_type, str):
            values[f.name] = sample(f.abi_type, seed + offset)
        else:
            values[f.name] = sample_record(f.abi_type, seed + offset)
    extra = {f.name: 7 for f in fields(record) if f.name not in values}
    return record(**values, **extra)


@pytest.mark.parametrize("error_class", PROTOCOL_ERRORS, ids=lambda c: c.__name__)
def test_revert_data_decodes_to_the_same_exception(error_class: type[ContractError]) -> None:
    error = error_class(*(sample(t, n) for n, (_, t) in enumerate(error_class.ARGS)))
    data = error.encode()
    assert data[:4] == error_class.selector()
    assert decode_revert(data) == error
    for index, (name, _) in enumerate(error_class.ARGS):
        assert getattr(error, name) == error.args[index]
    assert str(error).startswith(error_class.__name__ + "(")


def test_undecodable_reverts_are_unrecognized() -> None:
    assert isinstance(decode_revert(b"\x08\xc3\x79\xa0" + bytes(64)), UnrecognizedRevert)
    truncated = e.UnknownTask(5).encode()[:-1]
    assert decode_revert(truncated) == UnrecognizedRevert(truncated)
    with pytest.raises(TypeError):
        e.UnknownTask()


def test_errors_compare_by_class_and_arguments() -> None:
    assert e.UnknownTask(1) == e.UnknownTask(1)
    assert e.UnknownTask(1) != e.UnknownTask(2)
    assert e.UnknownTask(1) != e.TaskNotStarted(1)
    assert isinstance(e.UnknownTask(1), ContractError)
    assert issubclass(ContractError, ChainError)


@pytest.mark.parametrize("kind", EVENT_TYPES, ids=lambda k: k.__name__)
def test_logs_round_trip(kind: type) -> None:
    event = sample_record(kind)
    topics, data = encode_log(event)
    assert topics[0] == kind.topic()
    assert len(topics) == 1 + sum(f.indexed for f in abi_fields(kind))
    assert decode_log(topics, data, 7, 7) == event


@pytest.mark.parametrize("kind", CALL_TYPES, ids=lambda k: k.__name__)
def test_calldata_round_trips(kind: type) -> None:
    call = sample_record(kind)
    calldata = encode_call(call)
    assert calldata[:4] == kind.selector()
    assert decode_call(calldata, call.value) == call


def test_only_a_payable_call_carries_a_value() -> None:
    key, proof = bytes(256), bytes(128)
    staked = RegisterStaked(1, key, proof, value=10**18)
    assert checked_calldata(staked) == encode_call(staked)
    for refused in (Register(1, key, proof, value=1), RegisterStaked(1, key, proof, value=-1)):
        with pytest.raises(ConfigError, match="cannot carry a value"):
            checked_calldata(refused)


def test_seed_is_keccak_of_the_documented_abi_encoding() -> None:
    digest = keccak(b"model")
    expected = keccak(
        encode(
            ["uint256", "address", "uint256", "uint256", "uint256", "bytes32", "uint256"],
            [31337, ADDRESS, 4, 2, 1, digest, 2**255 + 3],
        )
    )
    assert round_seed(31337, ADDRESS, 4, 2, 1, digest, 2**255 + 3) == expected


def test_hash_chains_are_keccak_of_the_documented_abi_encodings() -> None:
    update = ContentRef(0x70, keccak(b"u"))
    previous = keccak(b"previous")
    assert next_submissions_hash(previous, ADDRESS, update, 9) == keccak(
        encode(
            ["bytes32", "address", "uint64", "bytes32", "uint64"],
            [previous, ADDRESS, 0x70, update.digest, 9],
        )
    )
    accepted_hash = keccak(b"\x05")
    assert next_history_hash(previous, 3, 1, keccak(b"s"), keccak(b"h"), accepted_hash, update) == (
        keccak(
            encode(
                [
                    "bytes32",
                    "uint256",
                    "uint256",
                    "bytes32",
                    "bytes32",
                    "bytes32",
                    "uint64",
                    "bytes32",
                ],
                [previous, 3, 1, keccak(b"s"), keccak(b"h"), accepted_hash, 0x70, update.digest],
            )
        )
    )


@pytest.mark.parametrize(
    ("bps", "size", "threshold"),
    [(6_000, 4, 3), (5_000, 4, 2), (10_000, 1, 1), (1, 1, 1), (6_667, 3, 3), (6_666, 3, 2)],
)
def test_quorum_threshold_rounds_up(bps: int, size: int, threshold: int) -> None:
    assert quorum_threshold(bps, size) == threshold


@given(
    st.integers(0, 40).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(0, max(n - 1, 0))))
    )
)
def test_bitmaps_round_trip_and_are_canonical(case: tuple[int, set[int]]) -> None:
    count, indices = case
    indices = {i for i in indices if i < count}
    bitmap = encode_accepted(indices, count)
    assert decode_accepted(bitmap) == sorted(indices)
    assert is_canonical_bitmap(bitmap, count)
    assert not is_canonical_bitmap(bitmap + b"\x00", count)
    if count % 8:
        assert not is_canonical_bitmap(bitmap[:-1] + bytes([bitmap[-1] | 0x80]), count)


def test_bitmap_bit_order_is_little_endian_within_bytes() -> None:
    assert encode_accepted([0, 9], 10) == b"\x01\x02"
    with pytest.raises(ValueError):
        encode_accepted([10], 10)


def test_content_ref_round_trips_a_kubo_cid() -> None:
    cid = str(compute_cid(b"hello flare"))
    ref = ContentRef.from_cid(cid)
    assert (ref.codec, len(ref.digest)) == (0x55, 32)
    assert ref.to_cid() == cid

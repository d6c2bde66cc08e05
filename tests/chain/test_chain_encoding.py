"""The chain layer's own ABI encoder: ``eth_abi``'s bytes, and its refusals.

Calldata and logs are encoded by :mod:`flare.chain.api.encoding`, which checks each value
as it writes it instead of decoding the result again. These tests hold it to ``eth_abi``
on every call and event type, and show that every value it refuses is one that ``eth_abi``
either cannot encode or would send changed (the check it replaced).
"""

from dataclasses import fields, replace

import pytest
from eth_abi import decode, encode
from eth_abi.exceptions import EncodingError
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.chain import EVENT_TYPES, ContentRef, decode_log, encode_log
from flare.chain.api.abi import abi_fields, field_types, to_abi
from flare.chain.api.calls import (
    CALL_TYPES,
    ClaimSeat,
    Propose,
    RegisterAdmitted,
    Submit,
    Vote,
    checked_calldata,
    decode_call,
)
from flare.chain.api.types import TaskParams
from flare.errors import ConfigError


def abi_values(abi_type: str) -> st.SearchStrategy[object]:
    """Every value of ``abi_type`` that the ABI carries unchanged, edges included."""
    if abi_type == "address":
        return st.binary(min_size=20, max_size=20).map(to_checksum_address)
    if abi_type == "bool":
        return st.booleans()
    if abi_type == "bytes32":
        return st.binary(min_size=32, max_size=32)
    if abi_type == "bytes":
        return st.binary(max_size=100)
    if abi_type == "bytes32[]":
        return st.lists(st.binary(min_size=32, max_size=32), max_size=4).map(tuple)
    bits = int(abi_type.removeprefix("uint"))
    return st.integers(0, 2**bits - 1) | st.sampled_from([0, 2**bits - 1])


def records(record: type) -> st.SearchStrategy[object]:
    """Instances of a call, event or struct type with arbitrary ABI values."""
    values = {
        f.name: abi_values(f.abi_type) if isinstance(f.abi_type, str) else records(f.abi_type)
        for f in abi_fields(record)
    }
    extra = {f.name: st.just(0) for f in fields(record) if f.name not in values}
    return st.builds(record, **values, **extra)


def eth_abi_calldata(call: object) -> bytes:
    return type(call).selector() + encode(field_types(type(call)), list(to_abi(call)))


@pytest.mark.parametrize("kind", CALL_TYPES, ids=lambda k: k.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_calldata_is_eth_abis_and_decodes_to_the_call(kind: type, data: st.DataObject) -> None:
    call = data.draw(records(kind))
    calldata = checked_calldata(call)
    assert calldata == eth_abi_calldata(call)
    assert decode_call(calldata, call.value) == call


@pytest.mark.parametrize("kind", EVENT_TYPES, ids=lambda k: k.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_logs_are_eth_abis(kind: type, data: st.DataObject) -> None:
    event = data.draw(records(kind))
    topics, log_data = encode_log(event)
    indexed = [f for f in abi_fields(kind) if f.indexed]
    assert topics[1:] == [encode([f.type_name], [getattr(event, f.name)]) for f in indexed]
    plain = [
        (f.type_name, value)
        for f, value in zip(abi_fields(kind), to_abi(event), strict=True)
        if not f.indexed
    ]
    assert log_data == encode([t for t, _ in plain], [value for _, value in plain])
    assert decode_log(topics, log_data, 0, 0) == event


DIGEST = bytes(range(32))
SUBMIT = Submit(1, ContentRef(0x55, DIGEST), 9)

# Calls that must never be sent: each with a value the ABI cannot carry unchanged.
REFUSED = {
    "short bytes32": replace(SUBMIT, update=ContentRef(0x55, b"short")),
    "long bytes32": replace(SUBMIT, update=ContentRef(0x55, bytes(33))),
    "uint64 overflow": replace(SUBMIT, sample_count=2**64),
    "negative uint": replace(SUBMIT, task_id=-1),
    "bool as uint": replace(SUBMIT, sample_count=True),
    "float as uint": replace(SUBMIT, sample_count=9.0),
    "str as bytes": ClaimSeat(1, "ab" * 128, bytes(128)),
    "int as bool": Vote(1, 2, 1),
    "tuple as struct": replace(SUBMIT, update=(0x55, DIGEST)),
    "other struct": Propose(1, TaskParams(1, 1, 1, 1, 1, 1, 1, 1), b""),
    "list as bytes32[]": RegisterAdmitted(1, bytes(256), bytes(128), [DIGEST]),
    "short bytes32 in an array": RegisterAdmitted(1, bytes(256), bytes(128), (b"x",)),
}


@pytest.mark.parametrize("call", REFUSED.values(), ids=REFUSED.keys())
def test_a_value_the_abi_would_change_is_refused(call: object) -> None:
    with pytest.raises(ConfigError, match="cannot be ABI-encoded"):
        checked_calldata(call)
    # What eth_abi does with it: refuse it too, or send something that decodes differently.
    try:
        sent = eth_abi_calldata(call)
    except (EncodingError, TypeError, AttributeError):
        return
    kind = type(call)
    assert decode_call(sent, 0) != call or decode(field_types(kind), sent[4:]) != to_abi(call)


def test_a_bytearray_is_carried_as_the_bytes_it_holds() -> None:
    call = ClaimSeat(1, bytearray(range(256)), bytearray(128))
    assert checked_calldata(call) == eth_abi_calldata(call)
    assert decode_call(checked_calldata(call)) == call

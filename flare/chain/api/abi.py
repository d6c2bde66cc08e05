"""Solidity ABI descriptions of the chain layer's records, calls, events and errors.

Every typed record (a struct, an event, a call) is a frozen dataclass whose protocol
fields are annotated with their Solidity type (``task_id: Uint256``). From that one
declaration this module derives the canonical signature, the selector or topic, and the
conversion to and from the tuples ``eth_abi`` encodes. The in-memory chain journals real
calldata and logs through it and the RPC connector decodes node responses through it,
so the two implementations cannot drift apart in their encodings.
"""

from dataclasses import dataclass, fields
from enum import IntEnum
from functools import cache
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from eth_utils import keccak, to_checksum_address

T = TypeVar("T")
RecordT = TypeVar("RecordT")


@dataclass(frozen=True)
class AbiType:
    """Annotation marker: the field is an ABI value of Solidity type ``name``."""

    name: str


class _Marker:
    """Annotation markers without data (tuple-typed and indexed fields)."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


_TUPLE = _Marker("abi-tuple")
_INDEXED = _Marker("indexed")

Uint8 = Annotated[int, AbiType("uint8")]
Uint16 = Annotated[int, AbiType("uint16")]
Uint32 = Annotated[int, AbiType("uint32")]
Uint64 = Annotated[int, AbiType("uint64")]
Uint256 = Annotated[int, AbiType("uint256")]
Address = Annotated[str, AbiType("address")]
Bytes32 = Annotated[bytes, AbiType("bytes32")]
Bytes = Annotated[bytes, AbiType("bytes")]
Bool = Annotated[bool, AbiType("bool")]
Bytes32Array = Annotated[tuple[bytes, ...], AbiType("bytes32[]")]
AbiTuple = Annotated[T, _TUPLE]
"""A nested record (itself a dataclass of ABI fields), encoded as an ABI tuple."""
Indexed = Annotated[T, _INDEXED]
"""An event field that is logged as a topic (``Indexed[Uint256]``)."""


@dataclass(frozen=True)
class AbiField:
    """One ABI value of a record: its Python name and type, Solidity type, topic flag."""

    name: str
    python_type: type
    abi_type: str | type
    indexed: bool

    @property
    def type_name(self) -> str:
        """Canonical ABI type string; nested records become ``(uint64,bytes32)``-style tuples."""
        if isinstance(self.abi_type, str):
            return self.abi_type
        return "(" + ",".join(f.type_name for f in abi_fields(self.abi_type)) + ")"


@cache
def abi_fields(record_type: type) -> tuple[AbiField, ...]:
    """The ABI fields of a record dataclass, in declaration (= ABI) order.

    Fields without an ABI annotation (an event's ``block_number``) are left out.
    """
    hints = get_type_hints(record_type, include_extras=True)
    found = []
    for f in fields(record_type):
        hint = hints[f.name]
        if get_origin(hint) is not Annotated:
            continue
        base, *markers = get_args(hint)
        named = [m.name for m in markers if isinstance(m, AbiType)]
        abi_type: str | type = base if _TUPLE in markers else named[-1]
        found.append(AbiField(f.name, base, abi_type, _INDEXED in markers))
    return tuple(found)


def field_types(record_type: type) -> list[str]:
    """Canonical ABI type strings of every ABI field of ``record_type``."""
    return [f.type_name for f in abi_fields(record_type)]


def signature(name: str, types: list[str]) -> str:
    """``Name(type1,type2,…)``, the string whose keccak256 gives selectors and topics."""
    return f"{name}({','.join(types)})"


@cache
def selector(text_signature: str) -> bytes:
    """The 4-byte function or error selector of a canonical signature."""
    return keccak(text=text_signature)[:4]


@cache
def topic(text_signature: str) -> bytes:
    """The 32-byte event topic 0 of a canonical signature."""
    return keccak(text=text_signature)


def to_abi(record: object) -> tuple[Any, ...]:
    """The ABI values of ``record`` in order, nested records as tuples (``eth_abi`` input)."""
    values = []
    for f in abi_fields(type(record)):
        value = getattr(record, f.name)
        values.append(value if isinstance(f.abi_type, str) else to_abi(value))
    return tuple(values)


def from_abi(record_type: type[RecordT], values: tuple[Any, ...], **extra: Any) -> RecordT:
    """Build ``record_type`` from decoded ABI ``values`` plus non-ABI fields in ``extra``."""
    record_fields = abi_fields(record_type)
    if len(values) != len(record_fields):
        raise ValueError(f"{record_type.__name__} takes {len(record_fields)} ABI values")
    converted = {
        f.name: _field_from_abi(f, value) for f, value in zip(record_fields, values, strict=True)
    }
    return record_type(**converted, **extra)


def _field_from_abi(f: AbiField, value: Any) -> Any:
    if not isinstance(f.abi_type, str):
        return from_abi(f.abi_type, tuple(value))
    if isinstance(f.python_type, type) and issubclass(f.python_type, IntEnum):
        return f.python_type(value)
    return value_from_abi(f.abi_type, value)


def value_from_abi(abi_type: str, value: Any) -> Any:
    """Normalise one decoded scalar: ``eth_abi`` gives lower-case addresses, we checksum."""
    return to_checksum_address(value) if abi_type == "address" else value


def word(value: int | bytes | str) -> bytes:
    """One 32-byte ABI word of a static value: an integer, a ``bytes32`` or an address.

    Used for the hashes of docs/protocol.md §2.3, which are ``keccak256(abi.encode(...))``
    over static values only, so a concatenation of words is exactly ``abi.encode``.
    """
    if isinstance(value, bool):
        raise TypeError("booleans are not hashed by the protocol")
    if isinstance(value, int):
        return value.to_bytes(32, "big")
    if isinstance(value, str):
        return hex_bytes(value).rjust(32, b"\x00")
    if len(value) != 32:
        raise ValueError("a bytes32 word must be exactly 32 bytes")
    return value


def hex_bytes(text: str) -> bytes:
    """The bytes a JSON-RPC hex string (``0x`` optional) or a hex address spells."""
    return bytes.fromhex(text.removeprefix("0x"))

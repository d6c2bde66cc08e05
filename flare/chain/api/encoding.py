"""ABI encoding of the chain layer's records, checked value by value as it goes.

Every transaction's calldata and every log's topics and data are encoded here: the
in-memory chain journals them and the RPC connector sends them, so this is on the path of
every call a round makes. ``eth_abi`` encodes any ABI type through a chain of generic
validators and then needs a decode of the result to catch what it silently changes (a
short ``bytes32`` is right-padded); here each record type is compiled once into one small
function per field, for the handful of types the protocol uses, and each function refuses
what the ABI could not carry unchanged before writing anything: an integer out of its
range or a ``bool`` in its place, a ``bytes32`` of another length, a record of another type,
a list where the ABI decodes a tuple. ``tests/chain/test_chain_encoding.py`` holds it to
``eth_abi``'s bytes and ``decode``'s round trip.
"""

from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from eth_utils import is_address

from flare.chain.api.abi import abi_fields
from flare.errors import ConfigError

_WORD = 32
_ZERO_PAD = bytes(_WORD)
_ADDRESS_PREFIX = bytes(12)

_Encode = Callable[[Any], bytes]


@cache
def _field_plan(record_type: type) -> tuple[tuple[str, bool, _Encode], ...]:
    """``(field name, is dynamic, encoder)`` of each ABI field of ``record_type``."""
    plan = []
    for f in abi_fields(record_type):
        if isinstance(f.abi_type, str):
            dynamic, encoder = _scalar_encoder(f.abi_type)
        else:
            dynamic, encoder = False, _static_record_encoder(f.abi_type)
        plan.append((f.name, dynamic, encoder))
    return tuple(plan)


def encode_fields(record: object, names: frozenset[str] | None = None) -> bytes:
    """``abi.encode`` of the ABI fields of ``record`` (only those in ``names`` if given),
    in declaration order; :class:`ConfigError` for a value the ABI would change."""
    heads: list[bytes] = []
    tails: list[bytes] = []
    encoded = [
        (dynamic, encoder(getattr(record, name)))
        for name, dynamic, encoder in _field_plan(type(record))
        if names is None or name in names
    ]
    # A static field (a static tuple included) sits whole in the head; a dynamic one by offset.
    offset = sum(_WORD if dynamic else len(data) for dynamic, data in encoded)
    for dynamic, data in encoded:
        if dynamic:
            heads.append(offset.to_bytes(_WORD, "big"))
            tails.append(data)
            offset += len(data)
        else:
            heads.append(data)
    return b"".join(heads) + b"".join(tails)


def encode_word(abi_type: str, value: object) -> bytes:
    """The 32-byte encoding of one static scalar (an indexed event field's topic)."""
    dynamic, encoder = _scalar_encoder(abi_type)
    if dynamic:
        raise TypeError(f"{abi_type} is not a static type")
    return encoder(value)


@cache
def _scalar_encoder(abi_type: str) -> tuple[bool, _Encode]:
    if abi_type.startswith("uint"):
        return False, _uint_encoder(int(abi_type.removeprefix("uint")))
    static = {"bool": _bool, "bytes32": _bytes32, "address": _address}
    if abi_type in static:
        return False, static[abi_type]
    dynamic = {"bytes": _bytes, "bytes32[]": _bytes32_array}
    if abi_type in dynamic:
        return True, dynamic[abi_type]
    raise TypeError(f"no encoder for ABI type {abi_type}")


def _static_record_encoder(record_type: type) -> _Encode:
    plan = _field_plan(record_type)
    if any(dynamic for _, dynamic, _ in plan):
        raise TypeError(f"{record_type.__name__} is not a static tuple")

    def encode(record: object) -> bytes:
        # A record of another type can decode to nothing equal to it.
        if type(record) is not record_type:
            raise ConfigError(f"expected a {record_type.__name__}, got {type(record).__name__}")
        return b"".join(encoder(getattr(record, name)) for name, _, encoder in plan)

    return encode


def _uint_encoder(bits: int) -> _Encode:
    limit = 1 << bits

    def encode(value: object) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"uint{bits} takes an integer, got {type(value).__name__}")
        if not 0 <= value < limit:
            raise ConfigError(f"{value} is out of the range of uint{bits}")
        return value.to_bytes(_WORD, "big")

    return encode


def _bool(value: object) -> bytes:
    if not isinstance(value, bool):
        raise ConfigError(f"bool takes True or False, got {type(value).__name__}")
    return value.to_bytes(_WORD, "big")


def _bytes32(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != _WORD:
        raise ConfigError(f"bytes32 takes exactly 32 bytes, got {_describe(value)}")
    return bytes(value)


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise ConfigError(f"bytes takes bytes, got {type(value).__name__}")
    return len(value).to_bytes(_WORD, "big") + value + _ZERO_PAD[: -len(value) % _WORD]


def _bytes32_array(value: object) -> bytes:
    # The ABI decodes an array to a tuple, so a list would not come back equal.
    if not isinstance(value, tuple):
        raise ConfigError(f"bytes32[] takes a tuple, got {type(value).__name__}")
    return len(value).to_bytes(_WORD, "big") + b"".join(_bytes32(item) for item in value)


def _address(value: object) -> bytes:
    if not isinstance(value, str) or not _is_address(value):
        raise ConfigError(f"{value!r} is not a hex address (checksummed if mixed-case)")
    return _ADDRESS_PREFIX + bytes.fromhex(value[2:])


# Every event names an account, and checking a checksum runs keccak: remember the verdicts.
_is_address = lru_cache(maxsize=1 << 16)(is_address)


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    return type(value).__name__

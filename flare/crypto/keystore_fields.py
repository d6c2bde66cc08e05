"""Typed reads of a keystore's JSON fields, each refusing a wrong type, length or format with
:class:`KeystoreError` that names the field: a keystore is a file anyone may have edited."""

import re
import uuid
from collections.abc import Mapping
from typing import Any

from flare.crypto.errors import KeystoreError

HEX_DIGITS = re.compile("[0-9a-fA-F]*")


def member(document: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in document:
        raise KeystoreError(f"malformed keystore: {where} has no {key!r}")
    return document[key]


def json_object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise KeystoreError(f"malformed keystore: {where} must be a JSON object")
    return value


def string_field(document: Mapping[str, Any], key: str, where: str) -> str:
    value = member(document, key, where)
    if not isinstance(value, str):
        raise KeystoreError(f"malformed keystore: {where}.{key} must be a string")
    return value


def integer_field(document: Mapping[str, Any], key: str, where: str) -> int:
    value = member(document, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise KeystoreError(f"malformed keystore: {where}.{key} must be an integer")
    return value


def hex_field(document: Mapping[str, Any], key: str, where: str, lengths: range) -> bytes:
    digits = string_field(document, key, where).removeprefix("0x")
    if len(digits) % 2 or len(digits) // 2 not in lengths:
        expected = str(lengths[0]) if len(lengths) == 1 else f"{lengths[0]} to {lengths[-1]}"
        raise KeystoreError(f"malformed keystore: {where}.{key} must be {expected} bytes of hex")
    if not HEX_DIGITS.fullmatch(digits):
        raise KeystoreError(f"malformed keystore: {where}.{key} must be hex")
    return bytes.fromhex(digits)


def exactly(length: int) -> range:
    return range(length, length + 1)


def uuid_field(document: Mapping[str, Any], key: str, where: str) -> None:
    try:
        uuid.UUID(string_field(document, key, where))
    except ValueError as exc:
        raise KeystoreError(f"malformed keystore: {where}.{key} must be a UUID") from exc


def lowercase_keys(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key.lower() if isinstance(key, str) else key: value for key, value in fields.items()}

"""Hostile inputs for the blob decoders: JSON planted in valid documents, mutated bytes.

A fuzzer that writes whole random documents is stopped by the first key check; planting
one hostile value at one place in a valid document gets past every check before that
place, so the decoders' deepest code sees it. Values are generated as JSON *text*, so
they can hold what ``json.dumps`` never writes: ``1e400``, duplicate keys, 5000-digit
integers, lone surrogates, non-string keys, nesting deeper than any parser allows.
"""

import copy
import json
import struct
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from flare.compression.wire import canonical_json

OUT_OF_RANGE_NUMBERS = [
    "1e400",
    "-1e400",
    "1E+999",
    "-2e308",
    "1e-400",
    "1" + "0" * 40,
    "1" + "0" * 400,
]
"""Valid JSON numbers that Python parses to infinity, to zero, or to integers past 2**64
and past the largest float64."""

ODD_TOKENS = [
    "-0",
    "0.0",
    "1.0",
    "2.5",
    "-1",
    "true",
    "false",
    "null",
    '""',
    "[]",
    "{}",
    '{"a":1,"a":1}',
    "{1:2}",
    '"\\ud800"',
    '"fc\\u0000"',
    '"\\uff46\\uff43"',
    '"fc\\u200b"',
    '"\\ud83d\\ude00"',
]
"""Every JSON type, numbers in non-canonical spellings, duplicate and non-string keys, and
strings with lone surrogates, NUL, full-width letters, zero-width spaces and emoji."""

NEAR_VALID_STRINGS = [
    "conv",
    "fc",
    "bias",
    "conv:P",
    "fc:Q",
    "dense",
    "lowrank",
    "F32",
    "F16",
    "flare-update/1",
    "flare-model/1",
    "flare-task/1",
    "powersgd",
    "gzip",
    "none",
]
"""Strings the decoders compare against, so that generated values pass some checks."""

KEYS = ["name", "shape", "kind", "rank", "tensor", "factors", "p", "q", "dtype", "data_offsets"]

json_leaf = st.one_of(
    st.sampled_from(OUT_OF_RANGE_NUMBERS),
    st.sampled_from(ODD_TOKENS),
    st.integers(4000, 5000).map(lambda digits: "9" * digits),
    st.integers(60, 80).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(60, 80).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.integers().map(str),
    st.integers(2**63 - 2, 2**64 + 2).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.text(max_size=6).map(canonical_json),
    st.sampled_from(NEAR_VALID_STRINGS).map(canonical_json),
)


def _object_text(entries: dict[str, str]) -> str:
    return "{" + ",".join(f"{canonical_json(k)}:{v}" for k, v in sorted(entries.items())) + "}"


json_text = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=4).map(
            _object_text
        ),
    ),
    max_leaves=10,
)
"""JSON text in canonical spelling (sorted keys, no spaces) unless a leaf says otherwise."""


def json_paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in ``document`` where a value can be replaced, or added (key or item)."""
    paths = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            paths += json_paths(value, (*prefix, key))
        paths.append((*prefix, "extra"))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            paths += json_paths(value, (*prefix, index))
        paths.append((*prefix, len(document)))
    return paths


HOLE = "\x00hole\x00"


def plant(
    document: Any, path: tuple, fragment: str, dump: Callable[[Any], str] = canonical_json
) -> str:
    """The text of ``document`` with the value at ``path`` replaced by JSON text ``fragment``."""
    if not path:
        return fragment
    edited = copy.deepcopy(document)
    target = edited
    for key in path[:-1]:
        target = target[key]
    if isinstance(target, list) and path[-1] == len(target):
        target.append(HOLE)
    else:
        target[path[-1]] = HOLE
    text = dump(edited)
    hole = dump(HOLE)
    assert text.count(hole) == 1
    return text.replace(hole, fragment)


def container_header_text(container: bytes) -> str:
    """The JSON header of a valid safetensors container, without its padding."""
    (header_len,) = struct.unpack("<Q", container[:8])
    return container[8 : 8 + header_len].decode().rstrip()


def with_container_header(container: bytes, header_text: str) -> bytes:
    """``container`` with its header replaced by ``header_text`` (padded), data unchanged."""
    (header_len,) = struct.unpack("<Q", container[:8])
    encoded = header_text.encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + container[8 + header_len :]


def mutated(blob: bytes, data: st.DataObject) -> bytes:
    """``blob`` after one to four byte flips, deletions, insertions, duplications or cuts."""
    mutable = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        position = data.draw(st.integers(0, len(mutable)), label="position")
        kind = data.draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "cut"]))
        if kind == "flip" and position < len(mutable):
            mutable[position] ^= data.draw(st.integers(1, 255), label="mask")
        elif kind == "delete":
            del mutable[position : position + data.draw(st.integers(1, 16), label="span")]
        elif kind == "insert":
            mutable[position:position] = data.draw(st.binary(min_size=1, max_size=16))
        elif kind == "duplicate":
            span = data.draw(st.integers(1, 64), label="span")
            mutable[position:position] = mutable[position : position + span]
        elif kind == "cut":
            del mutable[position:]
    return bytes(mutable)

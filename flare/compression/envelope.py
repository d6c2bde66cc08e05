"""The ``flare`` metadata every update blob carries: format, codec, binding and layout.

It is stored as canonical JSON (sorted keys, no whitespace, ASCII) in the safetensors
``__metadata__``, so an update's bytes are a function of its content alone, and the
decoder refuses any other spelling of the same content.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from flare.compression.base import MalformedUpdateError, UpdateBinding
from flare.compression.layout import TensorLayout
from flare.compression.wire import canonical_json, parse_json_strictly, shown

FORMAT_VERSION = "flare-update/1"
MAX_LABEL_CHARS = 256
"""Longest sender, task or base_model label: room for an address, an id or a CID."""

MAX_COUNTER = 2**63 - 1
"""Largest round, attempt or num_samples (fits a signed 64-bit integer everywhere)."""

LABEL_FIELDS = ("sender", "task", "base_model")
COUNTER_FIELDS = ("round", "attempt", "num_samples")
BINDING_FIELDS = LABEL_FIELDS + COUNTER_FIELDS
ENVELOPE_KEYS = {"binding", "codec", "format", "layout", "params"}


@dataclass(frozen=True)
class Envelope:
    """Parsed metadata of a blob; ``params`` are integers but unchecked, ``layout`` is raw JSON."""

    codec: str
    params: dict[str, int]
    binding: UpdateBinding
    layout: list[Any]


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()  # the characters " " to "~"


def check_binding(binding: UpdateBinding) -> None:
    """Reject a binding whose fields could not be written or read back unambiguously."""
    for field in LABEL_FIELDS:
        value = getattr(binding, field)
        if (
            not isinstance(value, str)
            or not 1 <= len(value) <= MAX_LABEL_CHARS
            or not _is_printable_ascii(value)
        ):
            raise MalformedUpdateError(
                f"binding {field} must be 1-{MAX_LABEL_CHARS} printable ASCII characters"
            )
    for field in COUNTER_FIELDS:
        value = getattr(binding, field)
        lowest = 1 if field == "num_samples" else 0
        if not _is_integer(value) or not lowest <= value <= MAX_COUNTER:
            raise MalformedUpdateError(
                f"binding {field} must be an integer in [{lowest}, 2**63-1], got {shown(value)}"
            )


def _binding_from_json(value: Any) -> UpdateBinding:
    fields = set(BINDING_FIELDS)
    if not isinstance(value, dict) or set(value) != fields:
        raise MalformedUpdateError(f"binding must have exactly the fields {sorted(fields)}")
    binding = UpdateBinding(**value)
    check_binding(binding)
    return binding


def metadata_tail(codec_name: str, params: Mapping[str, int], layout: list[TensorLayout]) -> str:
    """The canonical metadata of a blob after its binding.

    ``binding`` sorts first among the metadata's keys, so the canonical JSON of the whole
    is ``{"binding":`` and :func:`binding_json`, then this tail: it does not depend on the
    binding, so the writer and the decoder's short path keep it, escaped in the header's
    suffix, per configuration (:mod:`flare.compression.container`).
    """
    rest = {
        "codec": codec_name,
        "format": FORMAT_VERSION,
        "layout": [entry.to_json() for entry in layout],
        "params": dict(params),
    }
    return "," + canonical_json(rest)[1:]


def binding_json(binding: UpdateBinding) -> str:
    """The canonical JSON of a binding, spelled out: every update writes and reads one.

    Keys in sorted order, labels escaped by the function :func:`canonical_json` uses,
    counters as ``int``'s own digits: :func:`canonical_json` of the fields, at a fraction
    of its cost (tested on arbitrary bindings).
    """
    return (
        f'{{"attempt":{int.__repr__(binding.attempt)},'
        f'"base_model":{encode_basestring_ascii(binding.base_model)},'
        f'"num_samples":{int.__repr__(binding.num_samples)},'
        f'"round":{int.__repr__(binding.round)},'
        f'"sender":{encode_basestring_ascii(binding.sender)},'
        f'"task":{encode_basestring_ascii(binding.task)}}}'
    )


def read_envelope(metadata: str) -> Envelope:
    """Parse and type-check a blob's ``flare`` metadata, requiring its canonical spelling."""
    value = parse_json_strictly(metadata, "flare metadata")
    if not isinstance(value, dict) or set(value) != ENVELOPE_KEYS:
        raise MalformedUpdateError(
            f"flare metadata must have exactly the keys {sorted(ENVELOPE_KEYS)}"
        )
    if value["format"] != FORMAT_VERSION:
        raise MalformedUpdateError(
            f"unsupported format {shown(value['format'])}; this reader speaks {FORMAT_VERSION!r}"
        )
    if not isinstance(value["codec"], str):
        raise MalformedUpdateError("codec name is not a string")
    params = value["params"]
    if not isinstance(params, dict) or not all(_is_integer(v) for v in params.values()):
        raise MalformedUpdateError(f"codec params must map names to integers: {shown(params)}")
    if not isinstance(value["layout"], list):
        raise MalformedUpdateError("layout is not a JSON array")
    binding = _binding_from_json(value["binding"])
    if canonical_json(value) != metadata:
        raise MalformedUpdateError("flare metadata is not in canonical JSON form")
    return Envelope(value["codec"], params, binding, value["layout"])

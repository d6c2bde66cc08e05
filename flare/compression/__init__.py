"""Update compression: codecs, the canonical wire format, and the one decoder.

Clients encode with ``make_codec(name, **params).new_encoder(spec, seed).encode(...)``;
anyone who receives a blob calls :func:`decode_update`, which reads the codec from the
blob itself. See ``docs/wire-format.md`` for the byte layout and rejection rules.
"""

from flare.compression.base import (
    Codec,
    DecodedUpdate,
    MalformedUpdateError,
    UpdateBinding,
    UpdateEncoder,
)
from flare.compression.decode import blob_limit, decode_update
from flare.compression.dense import GzipCodec, NoneCodec
from flare.compression.envelope import FORMAT_VERSION
from flare.compression.powersgd import PowerSGDCodec, PowerSGDQ8Codec
from flare.compression.registry import CODECS, make_codec
from flare.compression.topk import TopKCodec

__all__ = [
    "CODECS",
    "FORMAT_VERSION",
    "Codec",
    "DecodedUpdate",
    "GzipCodec",
    "MalformedUpdateError",
    "NoneCodec",
    "PowerSGDCodec",
    "PowerSGDQ8Codec",
    "TopKCodec",
    "UpdateBinding",
    "UpdateEncoder",
    "blob_limit",
    "decode_update",
    "make_codec",
]

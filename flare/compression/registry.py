"""Codecs by name: how configuration files and blob metadata pick a codec."""

import inspect
from typing import Any

from flare.compression.base import Codec
from flare.compression.dense import GzipCodec, NoneCodec
from flare.compression.powersgd import PowerSGDCodec, PowerSGDQ8Codec
from flare.compression.topk import TopKCodec
from flare.compression.wire import shown
from flare.errors import ConfigError

CODECS: dict[str, type[Codec]] = {
    codec.name: codec for codec in (NoneCodec, GzipCodec, PowerSGDCodec, PowerSGDQ8Codec, TopKCodec)
}

ACCEPTED_PARAMS = {
    name: frozenset(inspect.signature(codec).parameters) for name, codec in CODECS.items()
}
"""Each codec's constructor parameters, read once: every decode checks a blob's against them."""


def make_codec(name: str, /, **params: Any) -> Codec:
    """The codec called ``name`` configured with ``params``.

    Raises :class:`ConfigError` for an unknown name, an unknown parameter or a bad value,
    so that both a typo in a config file and a forged blob fail with one clear line. ``name``
    is positional-only: a blob's params may hold any key, ``"name"`` included.
    """
    codec_class = CODECS.get(name) if isinstance(name, str) else None
    if codec_class is None:
        raise ConfigError(f"unknown codec {shown(name)}; known codecs: {sorted(CODECS)}")
    accepted = ACCEPTED_PARAMS[name]
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"codec {name!r} takes parameters {sorted(accepted)}, got unknown {shown(unknown)}"
        )
    return codec_class(**params)

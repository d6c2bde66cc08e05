"""CIDv1 values: the canonical base32 string, the binary form, the on-chain pair.

Flare names every blob by a CIDv1 whose multihash is sha2-256 and whose codec is
``raw`` (a blob of at most one chunk) or ``dag-pb`` (the root of a chunked
UnixFS file). Both are exactly what Kubo prints for
``ipfs add --cid-version=1 --raw-leaves``. Anything else (CIDv0, other hashes,
other codecs, other multibases, non-canonical spellings) is rejected, so that a
CID has exactly one string form and string equality is CID equality: the chain
stores ``(codec, digest)`` and every party must rebuild the same string from it.

The multiformats encodings involved are tiny and written out here rather than
taken from a library: unsigned varint (LEB128, minimal form) and multibase
base32 (RFC 4648 alphabet, lower case, no padding, prefix ``b``).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from functools import lru_cache

from flare.storage.errors import InvalidCidError

CID_VERSION = 1
CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
SUPPORTED_CODECS = frozenset({CODEC_RAW, CODEC_DAG_PB})
MULTIHASH_SHA2_256 = 0x12
SHA2_256_DIGEST_SIZE = 32
BASE32_PREFIX = "b"

CANONICAL_CID_TEXT = re.compile(r"b(?:afkrei|afybei)[a-h][a-z2-7]{50}[aeimquy4]")
"""Exactly the canonical CID strings, as a pattern: a check for hot paths that costs a
fraction of :meth:`Cid.parse` (pure-Python base32). The 36 binary bytes are 288 bits in 58
base32 characters of 5 bits: ``afkrei`` / ``afybei`` spell the four header bytes
(version 1, codec raw / dag-pb, sha2-256, 32) but for their last two bits, which are zero,
so the next character is below ``i``; the last character ends in two zero padding bits."""

# Multiformats caps varints at 9 bytes (63 bits of payload).
_MAX_VARINT_BYTES = 9
# A valid Flare CID string is 59 characters; bound the work done on garbage.
_MAX_CID_TEXT_LENGTH = 128


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as used by multiformats and by protobuf."""
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buffer: bytes, offset: int = 0) -> tuple[int, int]:
    """Read one minimal unsigned varint at ``offset``; return ``(value, next_offset)``.

    Non-minimal encodings (a trailing ``0x00`` continuation) are refused because
    they would give one CID several binary spellings.
    """
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        position = offset + index
        if position >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[position]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise ValueError("varint is not minimally encoded")
            return value, position + 1
    raise ValueError(f"varint longer than {_MAX_VARINT_BYTES} bytes")


def encode_base32(data: bytes) -> str:
    """RFC 4648 base32, lower case, without padding (multibase ``base32``, sans prefix)."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def decode_base32(text: str) -> bytes:
    """Inverse of :func:`encode_base32`; refuses every spelling it would not produce."""
    if text != text.lower():
        raise ValueError("base32 text must be lower case")
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        data = base64.b32decode(padded)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not valid base32: {exc}") from None
    if encode_base32(data) != text:
        # Wrong length or non-zero trailing bits: decodes, but is not canonical.
        raise ValueError("base32 text is not in canonical form")
    return data


@dataclass(frozen=True, slots=True)
class Cid:
    """A Flare CID: CIDv1, sha2-256, codec raw or dag-pb.

    ``str(cid)`` is the canonical base32 form; ``bytes(cid)`` the binary form
    that dag-pb links embed.
    """

    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.codec, int) or isinstance(self.codec, bool):
            raise InvalidCidError(f"a CID codec is an integer, got {_describe(self.codec)}")
        if self.codec not in SUPPORTED_CODECS:
            raise InvalidCidError(
                f"unsupported CID codec {self.codec:#x}; Flare uses raw (0x55) or dag-pb (0x70)"
            )
        if not isinstance(self.digest, bytes) or len(self.digest) != SHA2_256_DIGEST_SIZE:
            raise InvalidCidError(
                f"a sha2-256 digest is {SHA2_256_DIGEST_SIZE} bytes, got {_describe(self.digest)}"
            )

    def __bytes__(self) -> bytes:
        return (
            encode_varint(CID_VERSION)
            + encode_varint(self.codec)
            + encode_varint(MULTIHASH_SHA2_256)
            + encode_varint(SHA2_256_DIGEST_SIZE)
            + self.digest
        )

    def __str__(self) -> str:
        return BASE32_PREFIX + encode_base32(bytes(self))

    @classmethod
    def from_bytes(cls, binary: bytes) -> Cid:
        """Parse the binary CIDv1 form; raise :class:`InvalidCidError` on anything else."""
        try:
            version, offset = decode_varint(binary)
            codec, offset = decode_varint(binary, offset)
            hash_code, offset = decode_varint(binary, offset)
            digest_size, offset = decode_varint(binary, offset)
        except ValueError as exc:
            raise InvalidCidError(f"malformed CID bytes: {exc}") from None
        if version != CID_VERSION:
            raise InvalidCidError(f"unsupported CID version {version}; Flare uses CIDv1")
        if hash_code != MULTIHASH_SHA2_256:
            raise InvalidCidError(f"unsupported multihash {hash_code:#x}; Flare uses sha2-256")
        if digest_size != SHA2_256_DIGEST_SIZE:
            raise InvalidCidError(f"sha2-256 multihash declares {digest_size} digest bytes")
        digest = binary[offset:]
        if len(digest) != SHA2_256_DIGEST_SIZE:
            raise InvalidCidError(
                f"CID carries {len(digest)} digest bytes, expected {SHA2_256_DIGEST_SIZE}"
            )
        return cls(codec, digest)

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse a canonical CID string; raise :class:`InvalidCidError` on anything else."""
        if not isinstance(text, str):
            raise InvalidCidError(f"a CID must be a string, got {type(text).__name__}")
        if len(text) > _MAX_CID_TEXT_LENGTH:
            raise InvalidCidError(f"CID string too long ({len(text)} characters)")
        if text.startswith("Qm") and len(text) == 46:
            raise InvalidCidError(f"CIDv0 {text!r} is not accepted; Flare uses CIDv1 base32")
        if not text.startswith(BASE32_PREFIX):
            raise InvalidCidError(
                f"CID {text!r} is not multibase base32 lower case (must start with 'b')"
            )
        try:
            binary = decode_base32(text[len(BASE32_PREFIX) :])
        except ValueError as exc:
            raise InvalidCidError(f"CID {text!r}: {exc}") from None
        return cls.from_bytes(binary)


def parse_cid(text: str) -> Cid:
    """Validate a CID string and return its parts; see :meth:`Cid.parse`."""
    return Cid.parse(text)


def cid_to_onchain(cid: str) -> tuple[int, bytes]:
    """Compact on-chain form of a CID string: ``(codec, 32-byte sha2-256 digest)``.

    Version and hash function are fixed for Flare, so codec and digest are all
    the chain needs to store; :func:`cid_from_onchain` rebuilds the string.
    """
    parsed = Cid.parse(cid)
    return parsed.codec, parsed.digest


def cid_from_onchain(codec: int, digest: bytes) -> str:
    """Canonical CID string of an on-chain ``(codec, digest)`` pair."""
    if isinstance(digest, bytearray | memoryview):
        digest = bytes(digest)
    if type(codec) is int and type(digest) is bytes:
        return _memoised_cid_string(codec, digest)
    # Other types (subclasses, or what Cid refuses) skip the memo: its keys stay plain values.
    return str(Cid(codec, digest))


@lru_cache(maxsize=1 << 16)
def _memoised_cid_string(codec: int, digest: bytes) -> str:
    # A round reads the same few thousand references from logs again and again (every
    # committee member, every auditor), and base32 in pure Python is the cost.
    return str(Cid(codec, digest))


def _describe(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return type(value).__name__

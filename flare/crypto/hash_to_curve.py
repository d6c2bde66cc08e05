"""Hash-to-G1 per RFC 9380, suite ``BLS12381G1_XMD:SHA-256_SSWU_RO_``.

Signing and verifying hash with blst (:func:`flare.crypto.pairing.hashed_message`);
:func:`hash_to_g1` is the same map through arkworks, for the fixture scripts and tests that
work on arkworks points, and tests hold the two to the same point.
:func:`expand_message_xmd` and :func:`hash_to_field_fp` are a plain-Python reference of the
byte-level half of the suite, kept because the Solidity verifier must rebuild exactly these
steps before it hands the two field elements to the EIP-2537 ``MAP_FP_TO_G1`` precompile and
adds the results with ``G1ADD``; tests tie the reference to the RFC vectors and to arkworks.
"""

import hashlib

from py_arkworks_bls12381 import G1Point

from flare.crypto.errors import InvalidDomainTag
from flare.crypto.points import FIELD_MODULUS
from flare.errors import ConfigError

_HASH_BYTES = 32  # b_in_bytes of SHA-256
_HASH_BLOCK_BYTES = 64  # s_in_bytes of SHA-256
FIELD_ELEMENT_BYTES = 64
"""``L`` of RFC 9380 for BLS12-381 at k = 128: bytes of uniform output per field element."""


def check_domain_tag(dst: bytes) -> bytes:
    """Return ``dst`` if RFC 9380 accepts it as is (1..255 bytes), else raise.

    Longer tags would need the RFC's oversize-DST hashing, which no Flare tag needs and the
    Solidity side then need not implement.
    """
    if not isinstance(dst, bytes) or not 1 <= len(dst) <= 255:
        raise InvalidDomainTag("a domain separation tag must be 1 to 255 bytes")
    return dst


def expand_message_xmd(message: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 ``expand_message_xmd`` with SHA-256.

    ``msg' = Z_pad(64) || msg || I2OSP(length, 2) || 0x00 || DST || I2OSP(len(DST), 1)``;
    ``b0 = H(msg')``, ``b1 = H(b0 || 0x01 || DST')``,
    ``bi = H((b0 xor b(i-1)) || I2OSP(i, 1) || DST')``; output ``b1 || ... `` cut to length.
    """
    dst_prime = check_domain_tag(dst) + bytes([len(dst)])
    blocks = -(-length // _HASH_BYTES)
    if not 1 <= length <= 65535 or blocks > 255:
        raise ConfigError("expand_message_xmd: length must be 1..8160 bytes")
    message_prime = (
        bytes(_HASH_BLOCK_BYTES) + message + length.to_bytes(2, "big") + b"\x00" + dst_prime
    )
    b_0 = hashlib.sha256(message_prime).digest()
    b_i = hashlib.sha256(b_0 + b"\x01" + dst_prime).digest()
    uniform = [b_i]
    for index in range(2, blocks + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha256(mixed + bytes([index]) + dst_prime).digest()
        uniform.append(b_i)
    return b"".join(uniform)[:length]


def hash_to_field_fp(message: bytes, dst: bytes, count: int = 2) -> list[int]:
    """RFC 9380 section 5.2 ``hash_to_field`` into Fp: ``count`` elements from 64-byte chunks.

    Each chunk of ``expand_message_xmd(msg, DST, 64 * count)`` is read big-endian and
    reduced mod p. ``hash_to_curve`` uses ``count = 2``.
    """
    uniform = expand_message_xmd(message, dst, FIELD_ELEMENT_BYTES * count)
    return [
        int.from_bytes(uniform[i : i + FIELD_ELEMENT_BYTES], "big") % FIELD_MODULUS
        for i in range(0, len(uniform), FIELD_ELEMENT_BYTES)
    ]


def hash_to_g1(message: bytes, dst: bytes) -> G1Point:
    """RFC 9380 ``hash_to_curve`` into G1 under ``dst`` (random-oracle variant), as arkworks'
    point.

    py-arkworks-bls12381 0.5.0 takes ``(msg, dst)`` in that order, the reverse of its
    docstring; the RFC vectors in the tests pin the order.
    """
    return G1Point.hash_to_curve(message, check_domain_tag(dst))

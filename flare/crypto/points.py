"""EIP-2537 encodings of BLS12-381 points: the bytes the Solidity precompiles read.

Flare keeps points on the wire and on chain exactly as the EIP-2537 precompiles take them, so
the contract never re-encodes anything:

* an Fp element is 64 bytes: 16 zero bytes, then the 48-byte big-endian integer, which must be
  ``< p``;
* a G1 point is ``x || y`` (128 bytes);
* a G2 point is ``x.c0 || x.c1 || y.c0 || y.c1`` (256 bytes) for ``x = x.c0 + x.c1 * u``;
* the point at infinity is all zero bytes.

Decoding is strict (canonical encodings only) so that one point has exactly one byte string:
the VRF output hashes the proof bytes, and a malleable encoding would give a second output.
"""

from typing import Any

from py_arkworks_bls12381 import G1Point, G2Point

from flare.crypto.errors import InvalidPointEncoding

FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf"
    "6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)
"""The base field prime ``p`` of BLS12-381 (381 bits)."""

GROUP_ORDER = int("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001", 16)
"""The prime order ``r`` of G1, G2 and GT; secret keys live in ``[1, r)``."""

FP_LENGTH = 64
G1_LENGTH = 2 * FP_LENGTH
G2_LENGTH = 4 * FP_LENGTH
_FP_PAD = 16
_FP_BYTES = FP_LENGTH - _FP_PAD


def _encode_fp_words(words: bytes) -> bytes:
    """Pad each 48-byte big-endian coordinate of arkworks' output to EIP-2537's 64 bytes."""
    parts = [words[i : i + _FP_BYTES] for i in range(0, len(words), _FP_BYTES)]
    return b"".join(bytes(_FP_PAD) + part for part in parts)


def _strip_fp_words(data: bytes, what: str) -> bytes:
    """Check padding and range of each 64-byte Fp word; return the 48-byte words joined."""
    stripped = []
    for index in range(0, len(data), FP_LENGTH):
        word = data[index : index + FP_LENGTH]
        if any(word[:_FP_PAD]):
            raise InvalidPointEncoding(f"{what}: non-zero padding in field element {index // 64}")
        if int.from_bytes(word, "big") >= FIELD_MODULUS:
            raise InvalidPointEncoding(f"{what}: field element {index // 64} is not below p")
        stripped.append(word[_FP_PAD:])
    return b"".join(stripped)


def encode_g1(point: G1Point) -> bytes:
    """The 128-byte EIP-2537 encoding of a G1 point (all zeros for infinity)."""
    if point == G1Point.identity():
        return bytes(G1_LENGTH)
    return _encode_fp_words(point.to_xy_bytes_be())


def encode_g2(point: G2Point) -> bytes:
    """The 256-byte EIP-2537 encoding of a G2 point (all zeros for infinity).

    arkworks writes each Fp2 coordinate as ``c0 || c1``, the same order as EIP-2537.
    """
    if point == G2Point.identity():
        return bytes(G2_LENGTH)
    return _encode_fp_words(point.to_xy_bytes_be())


def encode_compressed_g1(compressed: bytes) -> bytes:
    """The EIP-2537 encoding of a G1 point that blst computed, from its 48-byte compressed form.

    ``y`` is rebuilt from ``x`` and the sign bit (one square root, 0.05 ms). The subgroup test
    is skipped, so only a point blst derived from points of the subgroup (a signature) may be
    passed here; the curve equation is still enforced.
    """
    return encode_g1(G1Point.from_compressed_bytes_unchecked(compressed))


def encode_compressed_g2(compressed: bytes) -> bytes:
    """The EIP-2537 encoding of a G2 point that blst computed, from its 96-byte compressed
    form; as :func:`encode_compressed_g1`, only for points blst derived (a public key)."""
    return encode_g2(G2Point.from_compressed_bytes_unchecked(compressed))


def decode_g1(data: bytes, *, allow_infinity: bool = False) -> G1Point:
    """Parse a canonical EIP-2537 G1 encoding into a point of the prime-order subgroup.

    Raises :class:`InvalidPointEncoding` for anything the precompiles would reject, for a
    point outside the subgroup, and for infinity unless ``allow_infinity`` is set (a signature
    or VRF proof is never infinity).
    """
    return _decode(data, G1_LENGTH, "G1", G1Point, allow_infinity)


def decode_g2(data: bytes, *, allow_infinity: bool = False) -> G2Point:
    """Parse a canonical EIP-2537 G2 encoding into a point of the prime-order subgroup.

    Same rules as :func:`decode_g1`; a public key is never infinity.
    """
    return _decode(data, G2_LENGTH, "G2", G2Point, allow_infinity)


def canonical_coordinates(data: object, length: int, what: str) -> bytes | None:
    """Check an EIP-2537 encoding's layout; return its 48-byte big-endian words joined.

    Raises :class:`InvalidPointEncoding` for a non-bytes value, a wrong length, non-zero
    padding or a coordinate ``>= p``; returns ``None`` for the all-zero encoding of infinity.
    The curve and subgroup tests are the caller's, on whichever arithmetic it uses.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidPointEncoding(f"{what}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) != length:
        raise InvalidPointEncoding(f"{what}: expected {length} bytes, got {len(data)}")
    if not any(data):
        return None
    return _strip_fp_words(data, what)


def infinity_refused(what: str) -> InvalidPointEncoding:
    """The error for infinity where a key, signature or proof is expected."""
    return InvalidPointEncoding(f"{what}: the point at infinity is not allowed here")


def _decode(
    data: bytes,
    length: int,
    what: str,
    point_type: type[G1Point] | type[G2Point],
    allow_infinity: bool,
) -> Any:
    coordinates = canonical_coordinates(data, length, what)
    if coordinates is None:
        if allow_infinity:
            return point_type.identity()
        raise infinity_refused(what)
    try:
        # "unchecked" skips only the subgroup test; the curve equation is still enforced.
        point = point_type.from_xy_bytes_unchecked_be(coordinates)
    except ValueError as exc:
        raise InvalidPointEncoding(f"{what}: not a point on the curve") from exc
    if not point.is_in_subgroup():
        raise InvalidPointEncoding(f"{what}: point is not in the prime-order subgroup")
    return point

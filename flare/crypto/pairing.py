"""BLS12-381 arithmetic through blst: hash-to-G1, the generator, decoding and the pairing
check.

Signing and key derivation (:mod:`flare.crypto.bls`) multiply these points; verifying parses
keys and signatures and runs the pairing check. blst does each step several times faster
than arkworks (``docs/bench/pairing.md``), and a fleet does them for every registration and
seat claim. arkworks only rebuilds ``y`` from blst's compressed output
(:func:`flare.crypto.points.encode_compressed_g1`).

pyblst reads points only in the ZCash compressed form (``x`` and a sign bit for ``y``), so an
EIP-2537 encoding is checked here exactly as :func:`flare.crypto.points.decode_g1` checks it
(layout, range, infinity, the curve equation) and then compressed; blst decompresses it and
tests subgroup membership. A point on the curve is fixed by ``x`` and the sign of ``y``, so
blst rebuilds exactly the encoded point, and every input is accepted or refused as before.

A point this process derived itself (a key it computed, a signature it made) is kept by its
encoding until parsed once (:func:`keep_derived`): where one process plays signer and chain,
as a simulation does, the chain's parse of bytes it was just handed is then a look-up. Only
the encoder puts points there, each under the exact bytes it wrote for a point of the
subgroup, so any other byte string, however close, is parsed and checked in full.
"""

import functools
import threading
from typing import Generic, TypeVar

from pyblst import BlstP1Element, BlstP2Element, final_verify, miller_loop

try:  # built from native/ by scripts/setup.sh; without it, pyblst runs every check whole
    from flare_native import PairingCheck
except ImportError:
    PairingCheck = None

from flare.crypto.errors import InvalidPointEncoding
from flare.crypto.hash_to_curve import check_domain_tag
from flare.crypto.points import (
    FIELD_MODULUS,
    G1_LENGTH,
    G2_LENGTH,
    canonical_coordinates,
    infinity_refused,
)

_WORD = 48
_CURVE_B = 4  # E1: y^2 = x^3 + 4; E2: y^2 = x^3 + 4(1 + u)
_HALF_MODULUS = (FIELD_MODULUS - 1) // 2
_COMPRESSED_FLAG = 0x80
_Y_SIGN_FLAG = 0x20
G2_GENERATOR = BlstP2Element.uncompress(
    bytes.fromhex(
        "93e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d0"
        "55d042b7e024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bb"
        "efd48056c8c121bdb8"
    )
)
"""The standard generator ``g2`` of G2 (its ZCash compressed form): public keys are
``sk * g2``."""

_Fp2 = tuple[int, int]
_Point = TypeVar("_Point", BlstP1Element, BlstP2Element)


def signature_point(data: bytes) -> BlstP1Element:
    """Parse a 128-byte EIP-2537 signature or VRF proof; reject it as ``decode_g1`` would."""
    derived = _derived_signatures.take(data)
    return _parsed_signature(data) if derived is None else derived


def _parsed_signature(data: object) -> BlstP1Element:
    coordinates = canonical_coordinates(data, G1_LENGTH, "G1")
    if coordinates is None:
        raise infinity_refused("G1")
    x, y = (int.from_bytes(coordinates[i : i + _WORD], "big") for i in (0, _WORD))
    if (y * y - x * x * x - _CURVE_B) % FIELD_MODULUS:
        raise InvalidPointEncoding("G1: not a point on the curve")
    sign = _Y_SIGN_FLAG if y > _HALF_MODULUS else 0
    return _in_subgroup(BlstP1Element, _compressed(coordinates[:_WORD], sign), "G1")


PUBLIC_KEYS_KEPT = 1024
"""Recently parsed public keys kept: a registered key is checked again at every seat claim."""


def public_key_point(data: bytes) -> BlstP2Element:
    """Parse a 256-byte EIP-2537 public key; reject it as ``decode_g2`` would."""
    if isinstance(data, bytes):  # a bytearray cannot key the cache
        return _recent_public_key_point(data)
    return _parsed_public_key(data)


@functools.lru_cache(maxsize=PUBLIC_KEYS_KEPT)
def _recent_public_key_point(data: bytes) -> BlstP2Element:
    derived = _derived_keys.take(data)
    return _parsed_public_key(data) if derived is None else derived


def _parsed_public_key(data: object) -> BlstP2Element:
    coordinates = canonical_coordinates(data, G2_LENGTH, "G2")
    if coordinates is None:
        raise infinity_refused("G2")
    x0, x1, y0, y1 = (int.from_bytes(coordinates[i : i + _WORD], "big") for i in range(0, 192, 48))
    x, y = (x0, x1), (y0, y1)
    if _fp2_square(y) != _fp2_add(_fp2_mul(_fp2_square(x), x), (_CURVE_B, _CURVE_B)):
        raise InvalidPointEncoding("G2: not a point on the curve")
    # ZCash's sign of an Fp2 element: that of c1, or of c0 when c1 is zero.
    sign = _Y_SIGN_FLAG if (y1 or y0) > _HALF_MODULUS else 0
    # The compressed form orders x as c1 || c0, the reverse of EIP-2537.
    compressed_x = coordinates[_WORD : 2 * _WORD] + coordinates[:_WORD]
    return _in_subgroup(BlstP2Element, _compressed(compressed_x, sign), "G2")


KEYS_WITH_LINES_KEPT = 4096
"""Public keys whose Miller-loop lines the native check keeps: a fleet's registered keys."""


def signature_verifies(public_key: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
    """``e(signature, g2) == e(H(message), public_key)`` for an EIP-2537 key and signature:
    one final exponentiation of the quotient of two Miller loops, the check EIP-2537's
    ``PAIRING_CHECK`` makes on chain.

    Both are parsed first, as :func:`public_key_point` and :func:`signature_point` parse
    them (raising :class:`InvalidPointEncoding`), so either way of checking sees only points
    of the subgroup, and ``dst`` is checked as :func:`hashed_message` checks it. With the
    native check (``native/``, built by ``scripts/setup.sh``), the lines of ``g2`` and of each
    key are computed once, not at every check; without it, pyblst runs both Miller loops
    whole. Tests hold the two to the same answers (``tests/crypto/test_crypto_pairing.py``).
    """
    key_point = public_key_point(public_key)
    parsed_signature = signature_point(signature)
    native = _native_check()
    if native is None:
        hashed = hashed_message(message, dst)
        return final_verify(
            miller_loop(parsed_signature, G2_GENERATOR), miller_loop(hashed, key_point)
        )
    return native.verify(
        bytes(_blst_g2(public_key)),
        bytes(message),
        check_domain_tag(dst),
        bytes(_blst_g1(signature)),
    )


def _blst_g1(encoding: bytes) -> bytes:
    """blst's uncompressed form of an EIP-2537 G1 point: ``x || y``, each without its
    16 bytes of zero padding."""
    return encoding[16:64] + encoding[80:128]


def _blst_g2(encoding: bytes) -> bytes:
    """blst's uncompressed form of an EIP-2537 G2 point: ``x.c1 || x.c0 || y.c1 || y.c0``
    (EIP-2537 puts ``c0`` first), each without its 16 bytes of zero padding."""
    return encoding[80:128] + encoding[16:64] + encoding[208:256] + encoding[144:192]


@functools.cache
def _native_check() -> "PairingCheck | None":
    """The native pairing check, made on first use; ``None`` where ``native/`` is not built."""
    return None if PairingCheck is None else PairingCheck(KEYS_WITH_LINES_KEPT)


HASHED_POINTS_KEPT = 256
"""Recent hash-to-G1 results kept, for signing and verifying alike: every participant of a
round attempt signs, and the chain checks, the same VRF input, and a registration's proof
is checked right after it is signed where one process plays signer and chain."""


def hashed_message(message: bytes, dst: bytes) -> BlstP1Element:
    """RFC 9380 ``hash_to_curve`` into G1 under ``dst``, the same point as
    :func:`flare.crypto.hash_to_curve.hash_to_g1`; a recent result is returned again (points
    are immutable)."""
    return _recent_hashed_message(bytes(message), check_domain_tag(dst))


@functools.lru_cache(maxsize=HASHED_POINTS_KEPT)
def _recent_hashed_message(message: bytes, dst: bytes) -> BlstP1Element:
    return BlstP1Element.hash_to_group(message, dst)


DERIVED_POINTS_KEPT = 4096
"""Points derived here and not parsed yet that are kept, of each group: a fleet's keys until
registered, a round's VRF proofs until the winners' seat claims are checked."""


class _DerivedPoints(Generic[_Point]):
    """Points of one group this process derived, by the encoding it wrote for each, until
    parsed once; the oldest go first past :data:`DERIVED_POINTS_KEPT`."""

    def __init__(self) -> None:
        self._points: dict[bytes, _Point] = {}
        self._lock = threading.Lock()

    def keep(self, encoding: bytes, point: _Point) -> None:
        with self._lock:
            self._points[encoding] = point
            while len(self._points) > DERIVED_POINTS_KEPT:
                del self._points[next(iter(self._points))]

    def take(self, encoding: object) -> _Point | None:
        if type(encoding) is not bytes:  # a bytearray is parsed in full
            return None
        with self._lock:
            return self._points.pop(encoding, None)


_derived_signatures: _DerivedPoints[BlstP1Element] = _DerivedPoints()
_derived_keys: _DerivedPoints[BlstP2Element] = _DerivedPoints()


def keep_derived(encoding: bytes, point: BlstP1Element | BlstP2Element) -> None:
    """Remember that ``encoding`` is the EIP-2537 encoding of ``point``, a point of the
    prime-order subgroup this process derived (a key ``sk * g2``, a signature
    ``sk * H(m)``): its first parse returns ``point`` without decoding it again. Only for
    the encoder's own output: a wrong pair here would be accepted unchecked."""
    if isinstance(point, BlstP1Element):
        _derived_signatures.keep(encoding, point)
    else:
        _derived_keys.keep(encoding, point)


def _compressed(x_words: bytes, sign: int) -> bytes:
    return bytes([x_words[0] | _COMPRESSED_FLAG | sign]) + x_words[1:]


def _in_subgroup(point_type: type[_Point], compressed: bytes, what: str) -> _Point:
    try:
        return point_type.uncompress(compressed)
    except ValueError as exc:
        # The curve equation holds (checked above), so blst can only refuse the subgroup.
        raise InvalidPointEncoding(f"{what}: point is not in the prime-order subgroup") from exc


def _fp2_add(a: _Fp2, b: _Fp2) -> _Fp2:
    return (a[0] + b[0]) % FIELD_MODULUS, (a[1] + b[1]) % FIELD_MODULUS


def _fp2_mul(a: _Fp2, b: _Fp2) -> _Fp2:
    """``(a0 + a1 u)(b0 + b1 u)`` with ``u^2 = -1``."""
    real = a[0] * b[0] - a[1] * b[1]
    imaginary = a[0] * b[1] + a[1] * b[0]
    return real % FIELD_MODULUS, imaginary % FIELD_MODULUS


def _fp2_square(a: _Fp2) -> _Fp2:
    return _fp2_mul(a, a)

"""The blst verifier against the arkworks arithmetic it replaced: the same accept, the same
reject and the same error, for valid, tampered, off-subgroup, infinity and malformed inputs."""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py_arkworks_bls12381 import GT, G1Point, G2Point
from py_ecc.bls.hash_to_curve import hash_to_field_FQ2, iso_map_G2, optimized_swu_G2
from py_ecc.optimized_bls12_381 import normalize

from flare.crypto import (
    FIELD_MODULUS,
    GROUP_ORDER,
    POP_DST,
    InvalidPointEncoding,
    SecretKey,
    decode_g1,
    decode_g2,
    hash_to_g1,
    pairing,
    sign,
    verify,
)
from flare.crypto.pairing import (
    _recent_public_key_point,
    hashed_message,
    public_key_point,
    signature_point,
    signature_verifies,
)
from flare.crypto.vrf import VRF_DST

J91 = json.loads(
    (
        Path(__file__).parents[1] / "vectors" / "rfc9380_j91_bls12381g1_xmd_sha256_sswu_ro.json"
    ).read_text()
)
WORD = 64
PADDING = 16

Outcome = bool | tuple[str, str]
"""A check's result: accepted or not, or which input was refused and with what message."""


def arkworks_outcome(public_key: bytes, message: bytes, signature: bytes, dst: bytes) -> Outcome:
    """The verifier as it was: arkworks decoding and ``e(sig, -g2) * e(H(m), pk) == 1``."""
    try:
        key = decode_g2(public_key)
    except InvalidPointEncoding as exc:
        return ("key", str(exc))
    try:
        point = decode_g1(signature)
    except InvalidPointEncoding as exc:
        return ("signature", str(exc))
    return GT.pairing_check([point, G1Point.hash_to_curve(message, dst)], [-G2Point(), key])


def blst_outcome(public_key: bytes, message: bytes, signature: bytes, dst: bytes) -> Outcome:
    """The verifier's outcome, which the native check (``native/``) and pyblst alone must
    both give: with them apart, every input is checked both ways."""
    try:
        public_key_point(public_key)
    except InvalidPointEncoding as exc:
        return ("key", str(exc))
    try:
        signature_point(signature)
    except InvalidPointEncoding as exc:
        return ("signature", str(exc))
    native = signature_verifies(public_key, message, signature, dst)
    with mock.patch.object(pairing, "_native_check", lambda: None):
        assert signature_verifies(public_key, message, signature, dst) == native
    return native


def _words(encoding: bytes) -> list[int]:
    return [int.from_bytes(encoding[i : i + WORD], "big") for i in range(0, len(encoding), WORD)]


def _encode(words: list[int]) -> bytes:
    return b"".join(word.to_bytes(WORD, "big") for word in words)


def off_subgroup_g1(seed: int) -> bytes:
    """A point on y^2 = x^3 + 4 from the first x >= seed that has one; the cofactor is about
    2^126, so it is outside the order-r subgroup but for a negligible chance."""
    x = seed % FIELD_MODULUS
    while True:
        rhs = (x**3 + 4) % FIELD_MODULUS
        y = pow(rhs, (FIELD_MODULUS + 1) // 4, FIELD_MODULUS)
        if y * y % FIELD_MODULUS == rhs:
            return _encode([x, y])
        x = (x + 1) % FIELD_MODULUS


def off_subgroup_g2(seed: bytes) -> bytes:
    """RFC 9380's map to E2 before cofactor clearing: on the curve, outside the subgroup."""
    (u,) = hash_to_field_FQ2(seed, 1, b"FLARE-TEST", hashlib.sha256)
    x, y = normalize(iso_map_G2(*optimized_swu_G2(u)))
    return _encode([int(c) for c in (*x.coeffs, *y.coeffs)])


@st.composite
def tampered(draw: st.DrawFn, encoding: bytes) -> bytes:
    """``encoding`` as is, or changed in one of the ways a decoder must tell apart."""
    words = _words(encoding)
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "bit",
                "negated",
                "off-curve",
                "off-subgroup",
                "infinity",
                "length",
                "padding",
                "not-below-p",
            ]
        )
    )
    half = len(words) // 2
    if kind == "bit":
        data = bytearray(encoding)
        position = draw(st.integers(0, 8 * len(data) - 1))
        data[position // 8] ^= 1 << (position % 8)
        return bytes(data)
    if kind == "negated":
        return _encode(words[:half] + [(FIELD_MODULUS - w) % FIELD_MODULUS for w in words[half:]])
    if kind == "off-curve":
        index = draw(st.integers(0, len(words) - 1))
        words[index] = (words[index] + draw(st.integers(1, 8))) % FIELD_MODULUS
        return _encode(words)
    if kind == "off-subgroup":
        if len(words) == 2:
            return off_subgroup_g1(draw(st.integers(0, FIELD_MODULUS - 1)))
        return off_subgroup_g2(draw(st.binary(min_size=1, max_size=16)))
    if kind == "infinity":
        return bytes(len(encoding))
    if kind == "length":
        return draw(st.sampled_from([encoding[:-1], encoding + b"\x00", b""]))
    if kind == "padding":
        data = bytearray(encoding)
        data[draw(st.integers(0, len(words) - 1)) * WORD + draw(st.integers(0, PADDING - 1))] = 1
        return bytes(data)
    if kind == "not-below-p":
        words[draw(st.integers(0, len(words) - 1))] += FIELD_MODULUS
        return _encode(words)
    return encoding


@st.composite
def verification_inputs(draw: st.DrawFn) -> tuple[bytes, bytes, bytes, bytes]:
    key = SecretKey(draw(st.integers(1, GROUP_ORDER - 1)))
    dst = draw(st.sampled_from([POP_DST, VRF_DST]))
    message = draw(st.binary(max_size=200))
    signed = draw(st.one_of(st.just(message), st.binary(max_size=200)))
    signature = sign(key, signed, dst)
    public_key = key.public_key()
    side = draw(st.sampled_from(["neither", "key", "signature"]))
    if side == "key":
        public_key = draw(tampered(public_key))
    elif side == "signature":
        signature = draw(tampered(signature))
    return public_key, message, signature, dst


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(verification_inputs())
def test_blst_and_arkworks_agree(inputs: tuple[bytes, bytes, bytes, bytes]) -> None:
    assert blst_outcome(*inputs) == arkworks_outcome(*inputs)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, GROUP_ORDER - 1), st.binary(max_size=64))
def test_valid_signatures_verify_for_both_signs_of_y(scalar: int, message: bytes) -> None:
    """Keys and signatures come out with either sign of ``y``; each must compress right."""
    key = SecretKey(scalar)
    signature = sign(key, message, POP_DST)
    assert blst_outcome(key.public_key(), message, signature, POP_DST) is True


@pytest.mark.parametrize(
    ("encoding", "decode"),
    [(off_subgroup_g1(4), signature_point), (off_subgroup_g2(b"flare"), public_key_point)],
    ids=["G1", "G2"],
)
def test_off_subgroup_points_are_refused_as_such(
    encoding: bytes, decode: Callable[[bytes], object]
) -> None:
    with pytest.raises(InvalidPointEncoding, match="subgroup"):
        decode(encoding)


@pytest.mark.parametrize("vector", J91["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_hashed_message_matches_rfc9380_j91(vector: dict) -> None:
    expected = bytes(16) + bytes.fromhex(vector["P.x"]) + bytes(16) + bytes.fromhex(vector["P.y"])
    assert hashed_message(vector["msg"].encode(), J91["dst"].encode()) == signature_point(expected)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=300), st.binary(min_size=1, max_size=255))
def test_hashed_message_is_arkworks_hash_to_g1(message: bytes, dst: bytes) -> None:
    assert hashed_message(message, dst).compress() == hash_to_g1(message, dst).to_compressed_bytes()


def test_verify_accepts_a_bytearray_message() -> None:
    key = SecretKey(7)
    signature = sign(key, b"flare", POP_DST)
    assert verify(key.public_key(), bytearray(b"flare"), signature, POP_DST)


def test_a_recent_public_key_is_parsed_once_and_a_bad_one_refused_every_time() -> None:
    public_key = SecretKey(11).public_key()
    _recent_public_key_point.cache_clear()  # another test may have parsed this key already
    misses = _recent_public_key_point.cache_info().misses
    first = public_key_point(public_key)
    assert public_key_point(public_key) is first
    assert public_key_point(bytearray(public_key)) == first
    assert _recent_public_key_point.cache_info().misses == misses + 1
    bad = public_key[:-1] + bytes([public_key[-1] ^ 1])
    for _ in range(2):
        with pytest.raises(InvalidPointEncoding, match="not a point on the curve"):
            public_key_point(bad)


def test_the_native_check_is_built_and_used() -> None:
    """``scripts/setup.sh`` builds ``native/``: a checkout whose pairing checks fell back to
    pyblst alone would pass every other test here, only slower."""
    assert pairing._native_check() is not None


def test_the_native_check_keeps_the_lines_of_as_many_keys_as_it_is_told() -> None:
    """Past its capacity the oldest key's lines go, and that key still verifies (its lines
    are computed again); a forged signature fails before and after."""
    check = pairing.PairingCheck(2)
    keys = [SecretKey(scalar) for scalar in (3, 5, 7)]
    message = b"seat"
    for _ in range(2):
        for key in keys:
            public_key, signature = key.public_key(), sign(key, message, VRF_DST)
            arguments = (pairing._blst_g2(public_key), message, VRF_DST)
            assert check.verify(*arguments, pairing._blst_g1(signature))
            forged = sign(SecretKey(11), message, VRF_DST)
            assert not check.verify(*arguments, pairing._blst_g1(forged))


def test_the_native_check_refuses_bytes_that_are_not_points() -> None:
    check = pairing.PairingCheck(1)
    key = SecretKey(3)
    public_key = pairing._blst_g2(key.public_key())
    signature = pairing._blst_g1(sign(key, b"m", VRF_DST))
    with pytest.raises(ValueError, match="96 bytes"):
        check.verify(public_key, b"m", VRF_DST, signature[:-1])
    with pytest.raises(ValueError, match="not a point of G1"):
        check.verify(public_key, b"m", VRF_DST, signature[:-1] + bytes([signature[-1] ^ 1]))
    with pytest.raises(ValueError, match="not a point of G2"):
        check.verify(public_key[:-1] + bytes([public_key[-1] ^ 1]), b"m", VRF_DST, signature)

"""EIP-2537 point encodings: exact layout, round trips, and every rejection the chain makes."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_arkworks_bls12381 import G1Point, G2Point, Scalar
from py_ecc.bls.hash_to_curve import hash_to_field_FQ2, iso_map_G2, optimized_swu_G2
from py_ecc.optimized_bls12_381 import normalize
from pyblst import BlstP1Element, BlstP2Element

from flare.crypto import (
    FIELD_MODULUS,
    GROUP_ORDER,
    InvalidPointEncoding,
    decode_g1,
    decode_g2,
    encode_g1,
    encode_g2,
)
from flare.crypto.pairing import G2_GENERATOR
from flare.crypto.points import encode_compressed_g1, encode_compressed_g2

# Generator coordinates as printed in EIP-2537 ("Curve parameters"); they pin the G2 layout
# x.c0 || x.c1 || y.c0 || y.c1.
EIP2537_G1 = (
    "17f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb",
    "08b3f481e3aaa0f1a09e30ed741d8ae4fcf5e095d5d00af600db18cb2c04b3edd03cc744a2888ae40caa232946c5e7e1",
)
EIP2537_G2 = (
    "024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8",
    "13e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e",
    "0ce5d527727d6e118cc9cdc6da2e351aadfd9baa8cbdd3a76d429a695160d12c923ac9cc3baca289e193548608b82801",
    "0606c4a02ea734cc32acd2b02bc28b99cb3e287e85a763af267492ab572e99ab3f370d275cec1da1aaa9075ff05f79be",
)
scalars = st.integers(min_value=1, max_value=GROUP_ORDER - 1)


def padded(*words: str) -> bytes:
    return b"".join(bytes(16) + bytes.fromhex(word) for word in words)


def test_generators_encode_as_eip2537_prints_them() -> None:
    assert encode_g1(G1Point()) == padded(*EIP2537_G1)
    assert encode_g2(G2Point()) == padded(*EIP2537_G2)


def test_infinity_is_all_zeros_and_only_allowed_when_asked() -> None:
    assert encode_g1(G1Point.identity()) == bytes(128)
    assert encode_g2(G2Point.identity()) == bytes(256)
    assert decode_g1(bytes(128), allow_infinity=True) == G1Point.identity()
    assert decode_g2(bytes(256), allow_infinity=True) == G2Point.identity()
    with pytest.raises(InvalidPointEncoding, match="infinity"):
        decode_g1(bytes(128))
    with pytest.raises(InvalidPointEncoding, match="infinity"):
        decode_g2(bytes(256))


@settings(max_examples=25, deadline=None)
@given(scalars)
def test_g1_round_trip(scalar: int) -> None:
    point = G1Point() * Scalar(scalar)
    encoded = encode_g1(point)
    assert len(encoded) == 128
    assert decode_g1(encoded) == point


@settings(max_examples=15, deadline=None)
@given(scalars)
def test_g2_round_trip(scalar: int) -> None:
    point = G2Point() * Scalar(scalar)
    encoded = encode_g2(point)
    assert len(encoded) == 256
    assert decode_g2(encoded) == point


@pytest.mark.parametrize("length", [0, 96, 127, 129, 256])
def test_g1_wrong_length(length: int) -> None:
    with pytest.raises(InvalidPointEncoding, match="128 bytes"):
        decode_g1(encode_g1(G1Point()).ljust(length, b"\x00")[:length])


@pytest.mark.parametrize("length", [0, 128, 192, 255, 257])
def test_g2_wrong_length(length: int) -> None:
    with pytest.raises(InvalidPointEncoding, match="256 bytes"):
        decode_g2(encode_g2(G2Point()).ljust(length, b"\x00")[:length])


def test_non_bytes_rejected() -> None:
    with pytest.raises(InvalidPointEncoding, match="expected bytes"):
        decode_g1(encode_g1(G1Point()).hex())  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(word=st.integers(0, 1), offset=st.integers(0, 15), value=st.integers(1, 255))
def test_g1_nonzero_padding_rejected(word: int, offset: int, value: int) -> None:
    data = bytearray(encode_g1(G1Point()))
    data[64 * word + offset] = value
    with pytest.raises(InvalidPointEncoding, match="padding"):
        decode_g1(bytes(data))


@settings(max_examples=30, deadline=None)
@given(word=st.integers(0, 3), offset=st.integers(0, 15), value=st.integers(1, 255))
def test_g2_nonzero_padding_rejected(word: int, offset: int, value: int) -> None:
    data = bytearray(encode_g2(G2Point()))
    data[64 * word + offset] = value
    with pytest.raises(InvalidPointEncoding, match="padding"):
        decode_g2(bytes(data))


@pytest.mark.parametrize("word", [0, 1])
def test_g1_coordinate_not_below_p_rejected(word: int) -> None:
    """x + p (or y + p) names the same residue but is not canonical: the EVM rejects it."""
    data = bytearray(encode_g1(G1Point()))
    value = int.from_bytes(data[64 * word : 64 * word + 64], "big") + FIELD_MODULUS
    data[64 * word : 64 * word + 64] = value.to_bytes(64, "big")
    with pytest.raises(InvalidPointEncoding, match="not below p"):
        decode_g1(bytes(data))


@pytest.mark.parametrize("word", [0, 1, 2, 3])
def test_g2_coordinate_not_below_p_rejected(word: int) -> None:
    data = bytearray(encode_g2(G2Point()))
    value = int.from_bytes(data[64 * word : 64 * word + 64], "big") + FIELD_MODULUS
    data[64 * word : 64 * word + 64] = value.to_bytes(64, "big")
    with pytest.raises(InvalidPointEncoding, match="not below p"):
        decode_g2(bytes(data))


def test_off_curve_points_rejected() -> None:
    g1 = bytearray(encode_g1(G1Point()))
    g1[-1] ^= 1
    with pytest.raises(InvalidPointEncoding, match="not a point on the curve"):
        decode_g1(bytes(g1))
    g2 = bytearray(encode_g2(G2Point()))
    g2[-1] ^= 1
    with pytest.raises(InvalidPointEncoding, match="not a point on the curve"):
        decode_g2(bytes(g2))


def test_g1_point_outside_subgroup_rejected() -> None:
    """(4, sqrt(68)) lies on y^2 = x^3 + 4 but not in the order-r subgroup."""
    x = 4
    y = pow(x**3 + 4, (FIELD_MODULUS + 1) // 4, FIELD_MODULUS)
    assert y * y % FIELD_MODULUS == (x**3 + 4) % FIELD_MODULUS
    encoded = padded(f"{x:096x}", f"{y:096x}")
    with pytest.raises(InvalidPointEncoding, match="subgroup"):
        decode_g1(encoded)


def test_g2_point_outside_subgroup_rejected() -> None:
    """RFC 9380's map to E2 before cofactor clearing lands outside the subgroup."""
    (u,) = hash_to_field_FQ2(b"flare", 1, b"FLARE-TEST", hashlib.sha256)
    x, y = normalize(iso_map_G2(*optimized_swu_G2(u)))
    encoded = padded(*(f"{int(c):096x}" for c in (*x.coeffs, *y.coeffs)))
    with pytest.raises(InvalidPointEncoding, match="subgroup"):
        decode_g2(encoded)


def test_blst_points_encode_as_eip2537_says() -> None:
    """blst's generators and identities, given in compressed form, come out in EIP-2537's
    layout: the generators' published coordinates, all zeros for infinity."""
    g1 = BlstP1Element.uncompress(G1Point().to_compressed_bytes())
    assert encode_compressed_g1(g1.compress()) == padded(*EIP2537_G1)
    assert encode_compressed_g2(G2_GENERATOR.compress()) == padded(*EIP2537_G2)
    assert encode_compressed_g1(BlstP1Element().compress()) == bytes(128)
    assert encode_compressed_g2(BlstP2Element().compress()) == bytes(256)


@settings(max_examples=25, deadline=None)
@given(scalars)
def test_blst_points_encode_as_arkworks_points(scalar: int) -> None:
    point = BlstP2Element.uncompress((G2Point() * Scalar(scalar)).to_compressed_bytes())
    assert encode_compressed_g2(point.compress()) == encode_g2(G2Point() * Scalar(scalar))
    negated = -(G1Point() * Scalar(scalar))
    assert encode_compressed_g1(negated.to_compressed_bytes()) == encode_g1(negated)

"""RFC 9380 hash-to-G1 and expand_message_xmd, checked against the RFC's published vectors."""

import hashlib
import json
from pathlib import Path
from unittest import mock

import pytest
from py_arkworks_bls12381 import G1Point
from py_ecc.bls.hash_to_curve import hash_to_G1
from py_ecc.optimized_bls12_381 import normalize

from flare.crypto import (
    POP_DST,
    InvalidDomainTag,
    SecretKey,
    encode_g1,
    expand_message_xmd,
    hash_to_field_fp,
    hash_to_g1,
    pairing,
    sign,
    verify,
)
from flare.crypto.pairing import HASHED_POINTS_KEPT, _recent_hashed_message, hashed_message
from flare.crypto.vrf import VRF_DST
from flare.errors import ConfigError

VECTORS = Path(__file__).parents[1] / "vectors"
J91 = json.loads((VECTORS / "rfc9380_j91_bls12381g1_xmd_sha256_sswu_ro.json").read_text())
K1 = json.loads((VECTORS / "rfc9380_k1_expand_message_xmd_sha256.json").read_text())


def _short(vector: dict[str, str]) -> str:
    return vector["msg"][:8] or "empty"


@pytest.mark.parametrize("vector", K1["vectors"], ids=lambda v: f"{_short(v)}-{v['len_in_bytes']}")
def test_expand_message_xmd_matches_rfc9380_k1(vector: dict) -> None:
    uniform = expand_message_xmd(vector["msg"].encode(), K1["dst"].encode(), vector["len_in_bytes"])
    assert uniform.hex() == vector["uniform_bytes"]


def test_k1_dst_prime_is_dst_and_its_length() -> None:
    dst = K1["dst"].encode()
    assert (dst + bytes([len(dst)])).hex() == K1["dst_prime"]


@pytest.mark.parametrize("vector", J91["vectors"], ids=_short)
def test_hash_to_g1_matches_rfc9380_j91(vector: dict) -> None:
    point = hash_to_g1(vector["msg"].encode(), J91["dst"].encode())
    expected = bytes(16) + bytes.fromhex(vector["P.x"]) + bytes(16) + bytes.fromhex(vector["P.y"])
    assert encode_g1(point) == expected


@pytest.mark.parametrize("vector", J91["vectors"], ids=_short)
def test_hash_to_field_matches_rfc9380_j91(vector: dict) -> None:
    u0, u1 = hash_to_field_fp(vector["msg"].encode(), J91["dst"].encode())
    assert (u0, u1) == (int(vector["u[0]"], 16), int(vector["u[1]"], 16))


@pytest.mark.parametrize("vector", J91["vectors"][:2], ids=_short)
def test_solidity_composition_reaches_the_same_point(vector: dict) -> None:
    """What the contract does: hash_to_field, MAP_FP_TO_G1 on each u (it clears the cofactor),
    then G1ADD. Clearing is linear, so the sum equals RFC's clear(Q0 + Q1)."""
    msg, dst = vector["msg"].encode(), J91["dst"].encode()
    u0, u1 = hash_to_field_fp(msg, dst)
    mapped = G1Point.map_from_fp_be(u0.to_bytes(48, "big")) + G1Point.map_from_fp_be(
        u1.to_bytes(48, "big")
    )
    assert mapped == hash_to_g1(msg, dst)


@pytest.mark.parametrize(
    ("message", "dst"),
    [(b"abc", J91["dst"].encode()), (bytes(range(192)), VRF_DST), (b"\x01" * 20, POP_DST)],
    ids=["rfc-dst", "vrf-dst", "pop-dst"],
)
def test_hash_to_g1_agrees_with_py_ecc(message: bytes, dst: bytes) -> None:
    x, y = normalize(hash_to_G1(message, dst, hashlib.sha256))
    expected = int(x).to_bytes(64, "big") + int(y).to_bytes(64, "big")
    assert encode_g1(hash_to_g1(message, dst)) == expected


@pytest.mark.parametrize("dst", [b"", b"x" * 256, "FLARE"])
def test_bad_domain_tags_rejected(dst: bytes) -> None:
    with pytest.raises(InvalidDomainTag):
        hash_to_g1(b"m", dst)
    with pytest.raises(InvalidDomainTag):
        expand_message_xmd(b"m", dst, 32)
    key = SecretKey.from_seed(bytes(32))
    signature = sign(key, b"m", POP_DST)
    for native in (pairing._native_check, lambda: None):  # the native check and pyblst alone
        with mock.patch.object(pairing, "_native_check", native), pytest.raises(InvalidDomainTag):
            pairing.signature_verifies(key.public_key(), b"m", signature, dst)


@pytest.mark.parametrize("length", [0, 255 * 32 + 1, 70000])
def test_expand_message_xmd_length_limits(length: int) -> None:
    with pytest.raises(ConfigError, match="length"):
        expand_message_xmd(b"m", b"DST", length)


def test_expand_message_xmd_longest_output() -> None:
    assert len(expand_message_xmd(b"m", b"DST", 255 * 32)) == 255 * 32


def test_a_recent_message_is_hashed_once_and_to_the_same_point() -> None:
    """Signing then verifying one message with pyblst alone (a registration, one process
    playing signer and chain) hashes it to the curve once; the point is the one a fresh hash
    gives. (The native check hashes with blst itself, once per message it keeps.)"""
    key = SecretKey.from_seed(bytes(range(32)))
    message = b"hashed once " + bytes(range(40))
    _recent_hashed_message.cache_clear()  # another test may have hashed this message already
    proof = sign(key, message, POP_DST)
    with mock.patch.object(pairing, "_native_check", lambda: None):
        assert verify(key.public_key(), message, proof, POP_DST)
    info = _recent_hashed_message.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert info.maxsize == HASHED_POINTS_KEPT
    fresh = G1Point.hash_to_curve(message, POP_DST).to_compressed_bytes()
    assert hashed_message(message, POP_DST).compress() == fresh
    assert hashed_message(bytearray(message), POP_DST) is hashed_message(message, POP_DST)
    assert hash_to_g1(bytearray(message), POP_DST) == hash_to_g1(message, POP_DST)
    for hash_to_curve in (hashed_message, hash_to_g1):
        with pytest.raises(InvalidDomainTag):  # checked before the cache is consulted
            hash_to_curve(message, b"")

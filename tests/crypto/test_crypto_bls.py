"""Secret keys, min-sig BLS signatures and proofs of possession."""

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from py_arkworks_bls12381 import G1Point, G2Point, Scalar
from py_ecc.bls import G2ProofOfPossession
from py_ecc.bls.hash_to_curve import hash_to_G1
from py_ecc.optimized_bls12_381 import G2, multiply, normalize

from flare.crypto import (
    FIELD_MODULUS,
    GROUP_ORDER,
    NEG_G2_GENERATOR,
    POP_DST,
    InvalidPointEncoding,
    InvalidSecretKey,
    SecretKey,
    encode_g1,
    encode_g2,
    prove_possession,
    sign,
    verify,
    verify_possession,
)
from flare.crypto.vrf import VRF_DST
from flare.errors import ConfigError

FLARE_VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "flare_crypto_vectors.json").read_text()
)
ADDRESS = bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8")
OTHER_ADDRESS = bytes.fromhex("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")
DST = b"FLARE-V1-TEST_BLS12381G1_XMD:SHA-256_SSWU_RO_"

# EIP-2333 "derive_master_SK" test cases: seed -> master secret key (IETF KeyGen).
EIP2333_MASTER_KEYS = [
    (
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1"
        "e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
        6083874454709270928345386274498605044986640685124978867557563392430687146096,
    ),
    (
        "3141592653589793238462643383279502884197169399375105820974944592",
        29757020647961307431480504535336562678282505419141012933316116377660817309383,
    ),
    (
        "0099FF991111002299DD7744EE3355BBDD8844115566CC55663355668888CC00",
        27580842291869792442942448775674722299803720648445448686099262467207037398656,
    ),
    (
        "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3",
        19022158461524446591288038168518313374041767046816487870552872741050760015818,
    ),
]


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return SecretKey.from_seed(b"flare-bls-tests".ljust(32, b"\x00"))


@pytest.fixture(scope="module")
def other_key() -> SecretKey:
    return SecretKey.from_seed(b"flare-bls-tests-other".ljust(32, b"\x00"))


@pytest.mark.parametrize("scalar", [0, GROUP_ORDER, GROUP_ORDER + 1, -1, 2**256])
def test_secret_key_out_of_range_rejected(scalar: int) -> None:
    with pytest.raises(InvalidSecretKey):
        SecretKey(scalar)


@pytest.mark.parametrize("value", [True, 1.0, "1", b"\x01"])
def test_secret_key_must_be_an_int(value: object) -> None:
    with pytest.raises(InvalidSecretKey):
        SecretKey(value)  # type: ignore[arg-type]


def test_secret_key_bounds_accepted_and_bytes_round_trip() -> None:
    for scalar in (1, GROUP_ORDER - 1):
        key = SecretKey(scalar)
        assert SecretKey.from_bytes(key.to_bytes()) == key
        assert len(key.to_bytes()) == 32


@pytest.mark.parametrize("data", [bytes(32), GROUP_ORDER.to_bytes(32, "big"), b"\x01" * 31])
def test_secret_key_from_bad_bytes_rejected(data: bytes) -> None:
    with pytest.raises(InvalidSecretKey):
        SecretKey.from_bytes(data)


@pytest.mark.parametrize(("seed", "expected"), EIP2333_MASTER_KEYS)
def test_from_seed_matches_eip2333_and_py_ecc(seed: str, expected: int) -> None:
    key = SecretKey.from_seed(bytes.fromhex(seed))
    assert key.to_int() == expected
    assert G2ProofOfPossession.KeyGen(bytes.fromhex(seed)) == expected


def test_from_seed_needs_32_bytes() -> None:
    with pytest.raises(InvalidSecretKey):
        SecretKey.from_seed(b"\x01" * 31)


def test_generate_gives_distinct_valid_keys() -> None:
    keys = {SecretKey.generate().to_bytes() for _ in range(8)}
    assert len(keys) == 8


def test_repr_never_shows_the_secret(key: SecretKey) -> None:
    text = repr(key)
    assert key.to_bytes().hex() not in text
    assert str(key.to_int()) not in text
    assert "redacted" in text


def test_public_key_matches_py_ecc(key: SecretKey) -> None:
    x, y = normalize(multiply(G2, key.to_int()))
    expected = b"".join(int(c).to_bytes(64, "big") for c in (*x.coeffs, *y.coeffs))
    assert key.public_key() == expected


def test_signature_matches_py_ecc(key: SecretKey) -> None:
    """Same key, same message, same tag: byte-identical signature in both libraries."""
    message = b"cross-check"
    x, y = normalize(multiply(hash_to_G1(message, DST, hashlib.sha256), key.to_int()))
    expected = int(x).to_bytes(64, "big") + int(y).to_bytes(64, "big")
    assert sign(key, message, DST) == expected


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, GROUP_ORDER - 1),
    st.binary(max_size=256),
    st.binary(min_size=1, max_size=255),
)
@example(1, b"", b"D")
@example(GROUP_ORDER - 1, bytes(range(192)), VRF_DST)
def test_keys_and_signatures_are_the_bytes_arkworks_computes(
    scalar: int, message: bytes, dst: bytes
) -> None:
    """blst derives keys and signs; both are functions of the key (and message), so the
    bytes must be those the arkworks path they replaced gave, for every key and message."""
    key = SecretKey(scalar)
    arkworks_key = G2Point() * Scalar(scalar)
    assert key.public_key() == encode_g2(arkworks_key)
    assert key.compressed_public_key() == arkworks_key.to_compressed_bytes()
    expected = encode_g1(G1Point.hash_to_curve(message, dst) * Scalar(scalar))
    assert sign(key, message, dst) == expected


def test_neg_g2_constant_is_the_negated_generator() -> None:
    x, y = normalize(G2)
    neg_y = [-int(c) % FIELD_MODULUS for c in y.coeffs]
    expected = b"".join(int(c).to_bytes(64, "big") for c in (*x.coeffs, *neg_y))
    assert expected == NEG_G2_GENERATOR


def test_sign_verify_round_trip(key: SecretKey) -> None:
    signature = sign(key, b"hello", DST)
    assert len(signature) == 128
    assert verify(key.public_key(), b"hello", signature, DST)


def test_verify_rejects_other_message_key_and_tag(key: SecretKey, other_key: SecretKey) -> None:
    signature = sign(key, b"hello", DST)
    assert not verify(key.public_key(), b"hellp", signature, DST)
    assert not verify(other_key.public_key(), b"hello", signature, DST)
    assert not verify(key.public_key(), b"hello", signature, POP_DST)


@pytest.mark.parametrize("position", [16, 63, 80, 127])
def test_verify_rejects_flipped_signature_bits(key: SecretKey, position: int) -> None:
    signature = bytearray(sign(key, b"hello", DST))
    signature[position] ^= 0x01
    assert not verify(key.public_key(), b"hello", bytes(signature), DST)


@pytest.mark.parametrize("signature", [bytes(128), b"", bytes(127)])
def test_verify_rejects_malformed_signatures(key: SecretKey, signature: bytes) -> None:
    assert not verify(key.public_key(), b"hello", signature, DST)


def test_verify_raises_on_malformed_public_key(key: SecretKey) -> None:
    signature = sign(key, b"hello", DST)
    with pytest.raises(InvalidPointEncoding):
        verify(bytes(256), b"hello", signature, DST)
    with pytest.raises(InvalidPointEncoding):
        verify(key.public_key()[:-1], b"hello", signature, DST)


def test_pop_round_trip_and_vector(key: SecretKey) -> None:
    proof = prove_possession(key, ADDRESS)
    assert verify_possession(key.public_key(), ADDRESS, proof)
    vector = FLARE_VECTORS["proofs_of_possession"][0]
    vector_key = SecretKey.from_bytes(bytes.fromhex(FLARE_VECTORS["keys"][0]["secret_key"]))
    assert prove_possession(vector_key, bytes.fromhex(vector["address"])).hex() == vector["proof"]


def test_pop_rejects_wrong_address_and_key(key: SecretKey, other_key: SecretKey) -> None:
    proof = prove_possession(key, ADDRESS)
    assert not verify_possession(key.public_key(), OTHER_ADDRESS, proof)
    assert not verify_possession(other_key.public_key(), ADDRESS, proof)


def test_pop_is_not_a_plain_or_vrf_signature(key: SecretKey) -> None:
    """Separate tags: a signature over the same 20 bytes under another tag is no PoP."""
    for tag in (DST, VRF_DST):
        assert not verify_possession(key.public_key(), ADDRESS, sign(key, ADDRESS, tag))


@pytest.mark.parametrize("address", [b"\x01" * 19, b"\x01" * 21, "0x" + "01" * 20])
def test_pop_needs_a_20_byte_address(key: SecretKey, address: bytes) -> None:
    with pytest.raises(ConfigError):
        prove_possession(key, address)
    with pytest.raises(ConfigError):
        verify_possession(key.public_key(), address, bytes(128))


def test_rogue_infinity_key_is_rejected() -> None:
    """With pk = infinity every pairing with H(m) is 1; such a key must never decode."""
    with pytest.raises(InvalidPointEncoding):
        verify_possession(bytes(256), ADDRESS, bytes(128))


def test_spec_document_states_the_constants_in_use() -> None:
    """docs/crypto.md is what Solidity follows; it must name the tags and -g2 the code uses."""
    spec = (Path(__file__).parents[2] / "docs" / "crypto.md").read_text()
    assert f"`{POP_DST.decode()}` | {len(POP_DST)}" in spec
    assert f"`{VRF_DST.decode()}` | {len(VRF_DST)}" in spec
    for start in range(0, 256, 64):
        assert NEG_G2_GENERATOR[start : start + 64].hex() in spec

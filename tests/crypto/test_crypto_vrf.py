"""The committee VRF: input layout, proofs, outputs, and exact integer sortition."""

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import pytest
from eth_abi.packed import encode_packed
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from py_ecc.bls.hash_to_curve import hash_to_G1
from py_ecc.optimized_bls12_381 import multiply, normalize

from flare.crypto import (
    InvalidPointEncoding,
    SecretKey,
    VrfProofRejected,
    decode_g1,
    encode_g1,
    hash_to_field_fp,
    vrf,
)
from flare.errors import ConfigError

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "flare_crypto_vectors.json").read_text()
)
CONTRACT = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")
OTHER_CONTRACT = bytes.fromhex("e7f1725E7734CE288F8367e1Bb143E90bb3F0512")
SEED = keccak(b"round seed")
BASE = {
    "chain_id": 31337,
    "contract": CONTRACT,
    "task_id": 1,
    "round": 2,
    "attempt": 0,
    "seed": SEED,
}
TWO_256 = 1 << 256
uint256 = st.integers(min_value=0, max_value=TWO_256 - 1)


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return SecretKey.from_seed(b"flare-vrf-tests".ljust(32, b"\x00"))


@pytest.fixture(scope="module")
def draw(key: SecretKey) -> tuple[bytes, bytes]:
    message = vrf.vrf_input(**BASE)
    return message, vrf.prove(key, message)


@settings(max_examples=40, deadline=None)
@given(
    chain_id=uint256,
    contract=st.binary(min_size=20, max_size=20),
    task_id=uint256,
    round_=uint256,
    attempt=uint256,
    seed=st.binary(min_size=32, max_size=32),
)
def test_vrf_input_is_solidity_abi_encode_packed(
    chain_id: int, contract: bytes, task_id: int, round_: int, attempt: int, seed: bytes
) -> None:
    expected = encode_packed(
        ["bytes12", "uint256", "address", "uint256", "uint256", "uint256", "bytes32"],
        [b"FLARE-VRF-V1", chain_id, "0x" + contract.hex(), task_id, round_, attempt, seed],
    )
    message = vrf.vrf_input(chain_id, contract, task_id, round_, attempt, seed)
    assert message == expected
    assert len(message) == vrf.VRF_INPUT_LENGTH == 192


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain_id", -1),
        ("task_id", TWO_256),
        ("round", 1.5),
        ("attempt", True),
        ("contract", b"\x00" * 19),
        ("contract", "0x" + "00" * 20),
        ("seed", b"\x00" * 31),
    ],
)
def test_vrf_input_rejects_out_of_range_fields(field: str, value: object) -> None:
    with pytest.raises(ConfigError):
        vrf.vrf_input(**{**BASE, field: value})


def test_prove_verify_round_trip(key: SecretKey, draw: tuple[bytes, bytes]) -> None:
    message, proof = draw
    assert len(proof) == 128
    assert vrf.verify(key.public_key(), message, proof) == keccak(proof) == vrf.output(proof)
    assert vrf.prove(key, message) == proof  # unique: nothing to grind


def test_proof_and_output_match_py_ecc(key: SecretKey, draw: tuple[bytes, bytes]) -> None:
    message, proof = draw
    point = multiply(hash_to_G1(message, vrf.VRF_DST, hashlib.sha256), key.to_int())
    x, y = normalize(point)
    expected = int(x).to_bytes(64, "big") + int(y).to_bytes(64, "big")
    assert proof == expected
    assert vrf.output(proof) == keccak(expected)


@pytest.mark.parametrize("vector", VECTORS["vrf"], ids=lambda v: f"r{v['round']}a{v['attempt']}")
def test_flare_vectors_reproduce(vector: dict) -> None:
    key = SecretKey.from_bytes(bytes.fromhex(VECTORS["keys"][vector["key"]]["secret_key"]))
    assert key.public_key().hex() == VECTORS["keys"][vector["key"]]["public_key"]
    message = vrf.vrf_input(
        vector["chain_id"],
        bytes.fromhex(vector["contract"]),
        vector["task_id"],
        vector["round"],
        vector["attempt"],
        bytes.fromhex(vector["seed"]),
    )
    assert message.hex() == vector["input"]
    u0, u1 = hash_to_field_fp(message, vrf.VRF_DST)
    assert (f"{u0:096x}", f"{u1:096x}") == (vector["u0"], vector["u1"])
    proof = bytes.fromhex(vector["proof"])
    assert vrf.prove(key, message) == proof
    assert vrf.verify(key.public_key(), message, proof).hex() == vector["output"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain_id", 1),
        ("contract", OTHER_CONTRACT),
        ("task_id", 2),
        ("round", 3),
        ("attempt", 1),
        ("seed", keccak(b"another seed")),
    ],
)
def test_proof_does_not_carry_to_another_draw(
    key: SecretKey, draw: tuple[bytes, bytes], field: str, value: object
) -> None:
    _, proof = draw
    with pytest.raises(VrfProofRejected, match="does not verify"):
        vrf.verify(key.public_key(), vrf.vrf_input(**{**BASE, field: value}), proof)


def test_proof_does_not_verify_under_another_key(draw: tuple[bytes, bytes]) -> None:
    message, proof = draw
    other = SecretKey.from_seed(b"someone else".ljust(32, b"\x00"))
    with pytest.raises(VrfProofRejected):
        vrf.verify(other.public_key(), message, proof)


@settings(max_examples=20, deadline=None)
@given(position=st.integers(0, 127), bit=st.integers(0, 7))
def test_flipped_proof_bits_rejected(
    key: SecretKey, draw: tuple[bytes, bytes], position: int, bit: int
) -> None:
    message, proof = draw
    tampered = bytearray(proof)
    tampered[position] ^= 1 << bit
    with pytest.raises(VrfProofRejected):
        vrf.verify(key.public_key(), message, bytes(tampered))


@pytest.mark.parametrize("proof", [bytes(128), bytes(127), b"", bytes(129)])
def test_malformed_or_infinity_proofs_rejected(
    key: SecretKey, draw: tuple[bytes, bytes], proof: bytes
) -> None:
    with pytest.raises(VrfProofRejected, match="malformed"):
        vrf.verify(key.public_key(), draw[0], proof)


def test_negated_proof_rejected(key: SecretKey, draw: tuple[bytes, bytes]) -> None:
    """-proof is a valid curve point with another keccak; it must not verify."""
    message, proof = draw
    with pytest.raises(VrfProofRejected):
        vrf.verify(key.public_key(), message, encode_g1(-decode_g1(proof)))


def test_malformed_public_key_is_an_encoding_error(draw: tuple[bytes, bytes]) -> None:
    with pytest.raises(InvalidPointEncoding):
        vrf.verify(bytes(256), *draw)


def _output(value: int) -> bytes:
    return value.to_bytes(32, "big")


@pytest.mark.parametrize(("k", "n"), [(1, 2), (10, 100), (3, 7), (5, 1000), (1, TWO_256 - 1)])
def test_seat_threshold_boundary_is_exact(k: int, n: int) -> None:
    threshold = vrf.seat_threshold(k, n)
    assert threshold == -(-k * TWO_256 // n)
    assert vrf.seat_granted(_output(threshold - 1), k, n)
    assert not vrf.seat_granted(_output(threshold), k, n)


@pytest.mark.parametrize(("k", "n"), [(5, 5), (6, 5), (1, 1), (TWO_256 - 1, 3)])
def test_everyone_sits_when_k_reaches_n(k: int, n: int) -> None:
    assert vrf.seat_threshold(k, n) == TWO_256
    for value in (0, TWO_256 // 2, TWO_256 - 1):
        assert vrf.seat_granted(_output(value), k, n)


def test_nobody_sits_when_k_is_zero() -> None:
    assert vrf.seat_threshold(0, 10) == 0
    assert not vrf.seat_granted(_output(0), 0, 10)


def test_half_of_the_range_for_k_over_n_one_half() -> None:
    assert vrf.seat_granted(_output(TWO_256 // 2 - 1), 1, 2)
    assert not vrf.seat_granted(_output(TWO_256 // 2), 1, 2)


@settings(max_examples=200, deadline=None)
@given(value=uint256, k=uint256, n=st.integers(min_value=1, max_value=TWO_256 - 1))
def test_seat_rule_equals_the_rational_definition(value: int, k: int, n: int) -> None:
    """output < 2^256 * min(1, k/n), in exact rationals, is what the integer rule decides."""
    expected = value < TWO_256 * min(Fraction(1), Fraction(k, n))
    assert vrf.seat_granted(_output(value), k, n) == expected
    assert (value < vrf.seat_threshold(k, n)) == expected


@pytest.mark.parametrize(("k", "n"), [(1, 0), (-1, 5), (1, -5), (1, TWO_256)])
def test_sortition_rejects_bad_counts(k: int, n: int) -> None:
    with pytest.raises(ConfigError):
        vrf.seat_granted(_output(0), k, n)
    with pytest.raises(ConfigError):
        vrf.seat_threshold(k, n)


@pytest.mark.parametrize("output", [b"", bytes(31), bytes(33)])
def test_sortition_needs_a_32_byte_output(output: bytes) -> None:
    with pytest.raises(ConfigError):
        vrf.seat_granted(output, 1, 2)


def _evm_high_word(a: int, b: int) -> int:
    """docs/crypto.md's Solidity: mulmod/mul/sub/lt, all in 256-bit EVM arithmetic."""
    full = (a * b) % (TWO_256 - 1)
    low = (a * b) % TWO_256
    return (full - low - (1 if full < low else 0)) % TWO_256


@settings(max_examples=200, deadline=None)
@given(value=uint256, n=uint256)
def test_documented_solidity_high_word_is_exact(value: int, n: int) -> None:
    assert _evm_high_word(value, n) == (value * n) >> 256

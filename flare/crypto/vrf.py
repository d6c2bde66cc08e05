"""The committee VRF: a BLS unique signature over the round's public context.

``proof = sk * H_VRF(input)`` (a 128-byte EIP-2537 G1 point) and ``output = keccak256(proof)``.
BLS signatures are unique per key and message and the encoding is canonical, so a participant
has exactly one possible output per round attempt and cannot grind for a committee seat.
Anyone holding the public key can recompute and check every seat; the contract does the same
with the EIP-2537 precompiles.
"""

from eth_hash.auto import keccak

from flare.crypto.bls import SecretKey, sign
from flare.crypto.errors import InvalidPointEncoding, VrfProofRejected
from flare.crypto.pairing import public_key_point, signature_verifies
from flare.errors import ConfigError

VRF_DST = b"FLARE-V1-VRF_BLS12381G1_XMD:SHA-256_SSWU_RO_"
"""Domain tag of VRF proofs (distinct from the PoP tag, so no proof can serve as the other)."""

VRF_INPUT_TAG = b"FLARE-VRF-V1"
"""The 12-byte prefix of every VRF input (Solidity ``bytes12``)."""

VRF_INPUT_LENGTH = 12 + 32 + 20 + 32 + 32 + 32 + 32
OUTPUT_LENGTH = 32
_UINT256_LIMIT = 1 << 256


def _uint256(name: str, value: int) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _UINT256_LIMIT:
        raise ConfigError(f"{name} must be an integer in [0, 2**256)")
    return value.to_bytes(32, "big")


def _fixed_bytes(name: str, value: bytes, length: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise ConfigError(f"{name} must be exactly {length} bytes")
    return value


def vrf_input(
    chain_id: int, contract: bytes, task_id: int, round: int, attempt: int, seed: bytes
) -> bytes:
    """The 192-byte message a participant signs to claim a seat in one round attempt.

    Exactly Solidity's ``abi.encodePacked(bytes12("FLARE-VRF-V1"), uint256 chainid,
    address contract, uint256 taskId, uint256 round, uint256 attempt, bytes32 seed)``. Every
    field that tells one draw from another is in it, so a proof never carries over to another
    chain, contract, task, round, attempt or seed.
    """
    return b"".join(
        (
            VRF_INPUT_TAG,
            _uint256("chain_id", chain_id),
            _fixed_bytes("contract", contract, 20),
            _uint256("task_id", task_id),
            _uint256("round", round),
            _uint256("attempt", attempt),
            _fixed_bytes("seed", seed, 32),
        )
    )


def prove(secret_key: SecretKey, message: bytes) -> bytes:
    """The VRF proof for ``message`` (normally from :func:`vrf_input`): 128 bytes."""
    return sign(secret_key, message, VRF_DST)


def output(proof: bytes) -> bytes:
    """The 32-byte VRF output: ``keccak256`` of the 128-byte proof encoding."""
    return keccak(proof)


def verify(public_key: bytes, message: bytes, proof: bytes) -> bytes:
    """Check ``proof`` for ``public_key`` and ``message``; return the 32-byte output.

    Raises :class:`VrfProofRejected` if the proof is malformed or does not verify, and
    :class:`InvalidPointEncoding` if the public key itself is malformed.
    """
    public_key_point(public_key)  # a malformed key raises here, as itself
    try:
        verified = signature_verifies(public_key, message, proof, VRF_DST)
    except InvalidPointEncoding as exc:
        raise VrfProofRejected(f"malformed VRF proof: {exc}") from exc
    if not verified:
        raise VrfProofRejected("VRF proof does not verify for this key and input")
    return output(proof)


def seat_threshold(expected_committee: int, registered: int) -> int:
    """The least output value that is *not* granted a seat: ``ceil(2^256 * min(1, k/n))``.

    A seat is granted iff ``int(output) < seat_threshold(k, n)``; the result is ``2^256`` (all
    outputs win) when ``k >= n``. Provided for reporting; :func:`seat_granted` is the rule.
    """
    _check_sortition_args(expected_committee, registered)
    if expected_committee >= registered:
        return _UINT256_LIMIT
    return -(-expected_committee * _UINT256_LIMIT // registered)


def seat_granted(output: bytes, expected_committee: int, registered: int) -> bool:
    """True iff ``output < 2^256 * min(1, k / n)``, decided exactly in integers.

    The rule is ``output * n < k * 2^256``, which equals ``(output * n) >> 256 < k``: the high
    256-bit word of the 512-bit product ``output * n`` is below ``k``. That is how Solidity
    computes it too (``mulmod`` gives the high word without overflow), and it needs no special
    case for ``k >= n``, where every output wins because ``output < 2^256``.
    """
    _check_sortition_args(expected_committee, registered)
    value = int.from_bytes(_fixed_bytes("output", output, OUTPUT_LENGTH), "big")
    return (value * registered) >> 256 < expected_committee


def _check_sortition_args(expected_committee: int, registered: int) -> None:
    _uint256("expected_committee", expected_committee)
    _uint256("registered", registered)
    if registered == 0:
        raise ConfigError("sortition needs at least one registered participant")

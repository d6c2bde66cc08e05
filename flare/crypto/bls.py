"""BLS12-381 signatures in the "minimal-signature-size" variant: signatures in G1, keys in G2.

Signatures are in G1 because every participant's VRF proof and proof of possession is
verified on chain, and a G1 signature is half the calldata of a G2 one (128 vs 256 bytes)
and hashes to G1 with the cheap ``MAP_FP_TO_G1`` precompile. Keys sit in G2 and are stored
once per participant at registration.

Verification is the pairing equation ``e(sig, g2) == e(H(m), pk)``. On chain it is the single
product check ``e(sig, -g2) * e(H(m), pk) == 1``, exactly the two-pair input the EIP-2537
``PAIRING_CHECK`` precompile takes: ``sig || -g2 || H(m) || pk``; here the same check runs
through blst (:mod:`flare.crypto.pairing`).

Keys and signatures are computed through blst too: both are deterministic functions of the
secret key (and the message), so any correct library gives the same points, and tests hold
these bytes to arkworks' and py_ecc's on many keys and messages.
"""

import hashlib
import hmac
import secrets

from flare.crypto.errors import InvalidPointEncoding, InvalidSecretKey
from flare.crypto.pairing import (
    G2_GENERATOR,
    hashed_message,
    keep_derived,
    public_key_point,
    signature_verifies,
)
from flare.crypto.points import GROUP_ORDER, encode_compressed_g1, encode_compressed_g2
from flare.errors import ConfigError

SECRET_KEY_LENGTH = 32
ADDRESS_LENGTH = 20

POP_DST = b"FLARE-V1-POP_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_"
"""Domain tag of proofs of possession (a signature over the registrant's 20-byte address)."""

_KEYGEN_SALT = b"BLS-SIG-KEYGEN-SALT-"
_KEYGEN_OKM_LENGTH = 48  # ceil(3 * ceil(log2(r)) / 16): 128 extra bits make "mod r" unbiased
_MIN_SEED_LENGTH = 32
NEG_G2_GENERATOR = encode_compressed_g2((-G2_GENERATOR).compress())
"""EIP-2537 encoding of ``-g2``: the constant second point of the pairing-check input."""


class SecretKey:
    """A BLS secret key: a scalar in ``[1, r)``.

    The value never appears in ``repr`` or logs; use :meth:`to_bytes` only to encrypt it.
    """

    __slots__ = ("_compressed_public_key", "_public_key", "_scalar")

    def __init__(self, scalar: int) -> None:
        if isinstance(scalar, bool) or not isinstance(scalar, int):
            raise InvalidSecretKey("a secret key is an integer scalar")
        if not 0 < scalar < GROUP_ORDER:
            raise InvalidSecretKey("a secret key must lie in [1, r)")
        self._scalar = scalar
        self._compressed_public_key: bytes | None = None
        self._public_key: bytes | None = None

    @classmethod
    def generate(cls) -> "SecretKey":
        """A fresh key from the operating system's CSPRNG, uniform over ``[1, r)``."""
        return cls(secrets.randbelow(GROUP_ORDER - 1) + 1)

    @classmethod
    def from_seed(cls, seed: bytes) -> "SecretKey":
        """Derive a key deterministically from >= 32 bytes of secret seed material.

        This is ``KeyGen(IKM=seed, key_info="")`` of the IETF BLS signature draft, the same
        function EIP-2333 calls ``derive_master_SK``, so a seed gives the key any conforming
        tool would derive from it.
        """
        if not isinstance(seed, bytes) or len(seed) < _MIN_SEED_LENGTH:
            raise InvalidSecretKey("a key seed must be at least 32 bytes")
        salt = _KEYGEN_SALT
        scalar = 0
        while scalar == 0:
            salt = hashlib.sha256(salt).digest()
            pseudo_random_key = hmac.new(salt, seed + b"\x00", hashlib.sha256).digest()
            info = _KEYGEN_OKM_LENGTH.to_bytes(2, "big")
            okm = _hkdf_expand_sha256(pseudo_random_key, info, _KEYGEN_OKM_LENGTH)
            scalar = int.from_bytes(okm, "big") % GROUP_ORDER
        return cls(scalar)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SecretKey":
        """Parse the 32-byte big-endian form written by :meth:`to_bytes`."""
        if not isinstance(data, bytes) or len(data) != SECRET_KEY_LENGTH:
            raise InvalidSecretKey("a secret key is 32 big-endian bytes")
        return cls(int.from_bytes(data, "big"))

    def to_bytes(self) -> bytes:
        """The 32-byte big-endian scalar (the EIP-2335 keystore secret)."""
        return self._scalar.to_bytes(SECRET_KEY_LENGTH, "big")

    def to_int(self) -> int:
        """The scalar itself: what signing multiplies by, and what other libraries check."""
        return self._scalar

    def public_key(self) -> bytes:
        """The 256-byte EIP-2537 G2 encoding of ``sk * g2``."""
        if self._public_key is None:
            point = G2_GENERATOR.scalar_mul(self._scalar)
            self._compressed_public_key = point.compress()
            self._public_key = encode_compressed_g2(self._compressed_public_key)
            keep_derived(self._public_key, point)
        return self._public_key

    def compressed_public_key(self) -> bytes:
        """The 96-byte ZCash compressed form of ``sk * g2``, the ``pubkey`` of EIP-2335."""
        if self._compressed_public_key is None:
            self._compressed_public_key = G2_GENERATOR.scalar_mul(self._scalar).compress()
        return self._compressed_public_key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        return hash(self.public_key())

    def __repr__(self) -> str:
        return f"SecretKey(<redacted>, public_key=0x{self.public_key()[-8:].hex()}…)"


def _hkdf_expand_sha256(pseudo_random_key: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with HMAC-SHA-256."""
    output, block, counter = b"", b"", 1
    while len(output) < length:
        block = hmac.new(pseudo_random_key, block + info + bytes([counter]), "sha256").digest()
        output += block
        counter += 1
    return output[:length]


def sign(secret_key: SecretKey, message: bytes, dst: bytes) -> bytes:
    """The 128-byte EIP-2537 G1 signature ``sk * H(message)`` under domain tag ``dst``.

    The signature is unique per (key, message, tag), which is what makes it usable as a VRF.
    """
    signature = hashed_message(message, dst).scalar_mul(secret_key.to_int())
    encoding = encode_compressed_g1(signature.compress())
    keep_derived(encoding, signature)
    return encoding


def verify(public_key: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
    """True iff ``signature`` is the canonical signature of ``message`` under ``public_key``.

    A signature that does not decode (wrong length, non-canonical, off-curve, outside the
    subgroup, infinity) is simply invalid: ``False``. A malformed *public key* raises
    :class:`InvalidPointEncoding`, because keys are validated once at registration and a bad
    one here is a caller's bug, not an attacker's forgery.
    """
    public_key_point(public_key)  # a malformed key raises here, as itself
    try:
        return signature_verifies(public_key, message, signature, dst)
    except InvalidPointEncoding:
        return False


def _check_address(address: bytes) -> bytes:
    if not isinstance(address, bytes) or len(address) != ADDRESS_LENGTH:
        raise ConfigError("an Ethereum address is exactly 20 bytes")
    return address


def prove_possession(secret_key: SecretKey, address: bytes) -> bytes:
    """Proof of possession: the signature over the registrant's 20-byte address under POP_DST.

    Binding the address (the contract checks it equals ``msg.sender``) stops anyone from
    replaying someone else's proof to register that key as their own. Chain id and contract
    are deliberately not bound: replaying a proof elsewhere only re-registers the same key for
    the same address, which its owner could do anyway.
    """
    return sign(secret_key, _check_address(address), POP_DST)


def verify_possession(public_key: bytes, address: bytes, proof: bytes) -> bool:
    """True iff ``proof`` is a valid proof of possession of ``public_key`` for ``address``."""
    return verify(public_key, _check_address(address), proof, POP_DST)

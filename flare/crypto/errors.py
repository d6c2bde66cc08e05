"""Typed errors of the crypto layer.

Every failure a caller may want to tell apart (a bad key, a malformed point, a forged VRF
proof, a wrong keystore password) has its own class, so that the chain and federation
layers can map it to a revert reason or a user message without parsing strings.
"""

from flare.errors import FlareError


class CryptoError(FlareError):
    """Base class of every deliberate error raised by :mod:`flare.crypto`."""


class InvalidSecretKey(CryptoError, ValueError):
    """A secret key is not a scalar in ``[1, r)`` or not 32 bytes."""


class InvalidPointEncoding(CryptoError, ValueError):
    """Bytes that should hold an EIP-2537 point do not: wrong length, non-zero padding,
    a coordinate ``>= p``, not on the curve, not in the prime-order subgroup, or the point at
    infinity where a key or signature is expected."""


class InvalidDomainTag(CryptoError, ValueError):
    """A hash-to-curve domain separation tag is empty or longer than 255 bytes."""


class VrfProofRejected(CryptoError):
    """A VRF proof is malformed or does not verify for the given public key and input.

    Not the contract error of the same meaning, :class:`flare.chain.api.errors.InvalidVrfProof`,
    whose name the Solidity custom error fixes.
    """


class KeystoreError(CryptoError):
    """A keystore file is malformed, unsupported, or cannot be written."""


class WrongPassword(KeystoreError):
    """The password does not open the keystore (its checksum/MAC does not match)."""


class WeakPassword(KeystoreError):
    """A password chosen for a new key is too short, only white space, or holds a control
    character; callers that mean it pass ``allow_weak_password``."""

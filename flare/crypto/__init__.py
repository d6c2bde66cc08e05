"""BLS12-381 keys, signatures, proofs of possession and the committee VRF.

Every byte layout here is what the Solidity side verifies; ``docs/crypto.md`` is the spec.
"""

from flare.crypto.account_keyfile import decrypt_eth_account, encrypt_eth_account
from flare.crypto.bls import (
    NEG_G2_GENERATOR,
    POP_DST,
    SecretKey,
    prove_possession,
    sign,
    verify,
    verify_possession,
)
from flare.crypto.errors import (
    CryptoError,
    InvalidDomainTag,
    InvalidPointEncoding,
    InvalidSecretKey,
    KeystoreError,
    VrfProofRejected,
    WeakPassword,
    WrongPassword,
)
from flare.crypto.hash_to_curve import expand_message_xmd, hash_to_field_fp, hash_to_g1
from flare.crypto.identity import ParticipantKeys
from flare.crypto.keystore import (
    check_password_strength,
    decrypt_bls_key,
    decrypt_keystore,
    encrypt_bls_key,
    encrypt_keystore,
    normalize_password,
)
from flare.crypto.points import (
    FIELD_MODULUS,
    G1_LENGTH,
    G2_LENGTH,
    GROUP_ORDER,
    decode_g1,
    decode_g2,
    encode_g1,
    encode_g2,
)

__all__ = [
    "FIELD_MODULUS",
    "G1_LENGTH",
    "G2_LENGTH",
    "GROUP_ORDER",
    "NEG_G2_GENERATOR",
    "POP_DST",
    "CryptoError",
    "InvalidDomainTag",
    "InvalidPointEncoding",
    "InvalidSecretKey",
    "KeystoreError",
    "ParticipantKeys",
    "SecretKey",
    "VrfProofRejected",
    "WeakPassword",
    "WrongPassword",
    "check_password_strength",
    "decode_g1",
    "decode_g2",
    "decrypt_bls_key",
    "decrypt_eth_account",
    "decrypt_keystore",
    "encode_g1",
    "encode_g2",
    "encrypt_bls_key",
    "encrypt_eth_account",
    "encrypt_keystore",
    "expand_message_xmd",
    "hash_to_field_fp",
    "hash_to_g1",
    "normalize_password",
    "prove_possession",
    "sign",
    "verify",
    "verify_possession",
]

"""Keys at rest: EIP-2335 keystores for BLS keys, Web3 Secret Storage for Ethereum accounts.

Both formats are password-encrypted JSON that other Ethereum tools already read, so a
participant's keys can be inspected or moved with standard tooling. Nothing here writes a
key in plaintext.

EIP-2335 (version 4): ``decryption_key = KDF(normalised password)`` (scrypt or
PBKDF2-HMAC-SHA256, 32 bytes); ``checksum = SHA256(decryption_key[16:32] || ciphertext)``;
``ciphertext = AES-128-CTR(key=decryption_key[0:16], iv=16-byte initial counter, secret)``.
"""

import hashlib
import hmac
import os
import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from Crypto.Cipher import AES
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keyfile.exceptions import EthKeyfileException
from py_arkworks_bls12381 import G2Point

from flare.crypto.bls import SecretKey
from flare.crypto.errors import InvalidSecretKey, KeystoreError, WrongPassword
from flare.crypto.points import decode_g2

Kdf = Literal["scrypt", "pbkdf2"]

DEFAULT_SCRYPT_N = 2**18
"""EIP-2335's and geth's standard scrypt cost (256 MiB with r = 8, about 1 s)."""
DEFAULT_PBKDF2_ITERATIONS = 2**18
_SCRYPT_R, _SCRYPT_P = 8, 1
_MAX_SCRYPT_MEMORY = 2**30  # refuse keystores that ask for more than 1 GiB
_MAX_PBKDF2_ITERATIONS = 2**24
_KEY_LENGTH = 32


def normalize_password(password: str) -> bytes:
    """EIP-2335 password bytes: NFKD, then drop C0 (0x00-0x1F), DEL (0x7F), C1 (0x80-0x9F)."""
    if not isinstance(password, str):
        raise KeystoreError("a keystore password is a str")
    decomposed = unicodedata.normalize("NFKD", password)
    kept = "".join(c for c in decomposed if not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F))
    return kept.encode("utf-8")


def encrypt_keystore(
    secret: bytes,
    password: str,
    *,
    pubkey: str = "",
    path: str = "",
    description: str = "",
    kdf: Kdf = "scrypt",
    iterations: int | None = None,
) -> dict[str, Any]:
    """An EIP-2335 keystore (a JSON-ready dict) holding ``secret`` under ``password``.

    ``iterations`` is scrypt's ``n`` or PBKDF2's ``c``; the default is the standard 2^18.
    Lower it only for tests.
    """
    salt = os.urandom(32)
    if kdf == "scrypt":
        params: dict[str, Any] = {
            "dklen": _KEY_LENGTH,
            "n": iterations or DEFAULT_SCRYPT_N,
            "r": _SCRYPT_R,
            "p": _SCRYPT_P,
            "salt": salt.hex(),
        }
    elif kdf == "pbkdf2":
        params = {
            "dklen": _KEY_LENGTH,
            "c": iterations or DEFAULT_PBKDF2_ITERATIONS,
            "prf": "hmac-sha256",
            "salt": salt.hex(),
        }
    else:
        raise KeystoreError(f"unsupported KDF {kdf!r}; use 'scrypt' or 'pbkdf2'")
    decryption_key = _derive_key(kdf, params, normalize_password(password))
    iv = os.urandom(16)
    ciphertext = _aes_128_ctr(decryption_key[:16], iv, secret)
    return {
        "crypto": {
            "kdf": {"function": kdf, "params": params, "message": ""},
            "checksum": {
                "function": "sha256",
                "params": {},
                "message": _checksum(decryption_key, ciphertext).hex(),
            },
            "cipher": {
                "function": "aes-128-ctr",
                "params": {"iv": iv.hex()},
                "message": ciphertext.hex(),
            },
        },
        "description": description,
        "pubkey": pubkey,
        "path": path,
        "uuid": str(uuid.uuid4()),
        "version": 4,
    }


def decrypt_keystore(keystore: Mapping[str, Any], password: str) -> bytes:
    """The secret inside an EIP-2335 keystore; :class:`WrongPassword` if the checksum fails."""
    try:
        if keystore["version"] != 4:
            raise KeystoreError(f"unsupported keystore version {keystore['version']!r}")
        crypto = keystore["crypto"]
        kdf, params = crypto["kdf"]["function"], crypto["kdf"]["params"]
        if crypto["checksum"]["function"] != "sha256":
            raise KeystoreError("unsupported checksum function")
        if crypto["cipher"]["function"] != "aes-128-ctr":
            raise KeystoreError("unsupported cipher")
        ciphertext = bytes.fromhex(crypto["cipher"]["message"])
        iv = bytes.fromhex(crypto["cipher"]["params"]["iv"])
        expected_checksum = bytes.fromhex(crypto["checksum"]["message"])
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreError(f"malformed EIP-2335 keystore: {exc!r}") from exc
    if len(iv) != 16:
        raise KeystoreError("malformed EIP-2335 keystore: the IV must be 16 bytes")
    decryption_key = _derive_key(kdf, params, normalize_password(password))
    if not hmac.compare_digest(_checksum(decryption_key, ciphertext), expected_checksum):
        raise WrongPassword("wrong password for this keystore")
    return _aes_128_ctr(decryption_key[:16], iv, ciphertext)


def _derive_key(kdf: str, params: Mapping[str, Any], password: bytes) -> bytes:
    """Run the keystore's KDF, refusing parameters too weak to use or too costly to attempt."""
    try:
        salt = bytes.fromhex(params["salt"])
        dklen = int(params["dklen"])
        if dklen < _KEY_LENGTH:
            raise KeystoreError("the KDF must yield at least 32 bytes")
        if kdf == "scrypt":
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
            memory = 128 * r * (n + p + 2)
            if n < 2 or n & (n - 1) or r < 1 or p < 1 or memory > _MAX_SCRYPT_MEMORY:
                raise KeystoreError("unsupported scrypt parameters")
            key = hashlib.scrypt(
                password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=memory + 2**20
            )
        elif kdf == "pbkdf2":
            iterations = int(params["c"])
            if params["prf"] != "hmac-sha256" or not 1 <= iterations <= _MAX_PBKDF2_ITERATIONS:
                raise KeystoreError("unsupported PBKDF2 parameters")
            key = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, dklen)
        else:
            raise KeystoreError(f"unsupported KDF {kdf!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreError(f"malformed KDF parameters: {exc!r}") from exc
    return key


def _checksum(decryption_key: bytes, ciphertext: bytes) -> bytes:
    return hashlib.sha256(decryption_key[16:32] + ciphertext).digest()


def _aes_128_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CTR with the whole 16-byte IV as the initial big-endian counter block."""
    cipher = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=iv)
    return cipher.encrypt(data)


def encrypt_bls_key(
    secret_key: SecretKey,
    password: str,
    *,
    description: str = "Flare BLS12-381 key (min-sig: public key in G2)",
    kdf: Kdf = "scrypt",
    iterations: int | None = None,
) -> dict[str, Any]:
    """An EIP-2335 keystore for a Flare BLS key; ``pubkey`` is its 96-byte compressed G2 form."""
    return encrypt_keystore(
        secret_key.to_bytes(),
        password,
        pubkey=_compressed_public_key(secret_key).hex(),
        description=description,
        kdf=kdf,
        iterations=iterations,
    )


def decrypt_bls_key(keystore: Mapping[str, Any], password: str) -> SecretKey:
    """Open a keystore written by :func:`encrypt_bls_key` and check its ``pubkey`` field."""
    try:
        secret_key = SecretKey.from_bytes(decrypt_keystore(keystore, password))
    except InvalidSecretKey as exc:
        raise KeystoreError(f"the keystore does not hold a BLS secret key: {exc}") from exc
    recorded = keystore.get("pubkey", "")
    if recorded and recorded != _compressed_public_key(secret_key).hex():
        raise KeystoreError("the keystore's pubkey does not match its secret key")
    return secret_key


def _compressed_public_key(secret_key: SecretKey) -> bytes:
    """The ZCash-style compressed G2 key that EIP-2335 tools expect in ``pubkey``."""
    point: G2Point = decode_g2(secret_key.public_key())
    return point.to_compressed_bytes()


def encrypt_eth_account(
    account: LocalAccount, password: str, *, kdf: Kdf = "scrypt", iterations: int | None = None
) -> dict[str, Any]:
    """A Web3 Secret Storage (v3) keyfile for an Ethereum account, via eth-account."""
    return Account.encrypt(account.key, password, kdf=kdf, iterations=iterations)


def decrypt_eth_account(keyfile: Mapping[str, Any], password: str) -> LocalAccount:
    """Open a Web3 Secret Storage keyfile; :class:`WrongPassword` if its MAC fails."""
    try:
        private_key = Account.decrypt(dict(keyfile), password)
    except EthKeyfileException as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPassword("wrong password for this Ethereum keyfile") from exc
        raise KeystoreError(f"unsupported Ethereum keyfile: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreError(f"malformed Ethereum keyfile: {exc!r}") from exc
    return Account.from_key(private_key)

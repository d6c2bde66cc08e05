"""Keys at rest: EIP-2335 keystores for BLS keys, and the bounds and checks that Web3 Secret
Storage keyfiles for Ethereum accounts share with them (:mod:`flare.crypto.account_keyfile`).

Both formats are password-encrypted JSON that other Ethereum tools already read, so a
participant's keys can be inspected or moved with standard tooling. Nothing here writes a
key in plaintext.

EIP-2335 (version 4): ``decryption_key = KDF(normalised password)`` (scrypt or
PBKDF2-HMAC-SHA256, 32 bytes); ``checksum = SHA256(decryption_key[16:32] || ciphertext)``;
``ciphertext = AES-128-CTR(key=decryption_key[0:16], iv=16-byte initial counter, secret)``.

A keystore is a file anyone may have edited, and its KDF parameters set how much memory
and time opening it costs. So every field is checked, type and range, before the KDF runs:
a hostile file costs at most what a standard one does, and fails with :class:`KeystoreError`.
"""

import hashlib
import hmac
import json
import os
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from Crypto.Cipher import AES

from flare.crypto.bls import SecretKey
from flare.crypto.errors import InvalidSecretKey, KeystoreError, WeakPassword, WrongPassword
from flare.crypto.keystore_fields import (
    exactly,
    hex_field,
    integer_field,
    json_object,
    member,
    string_field,
    uuid_field,
)

Kdf = Literal["scrypt", "pbkdf2"]

DEFAULT_SCRYPT_N = 2**18
"""EIP-2335's and geth's standard scrypt cost (256 MiB with r = 8, about 1 s)."""
DEFAULT_PBKDF2_ITERATIONS = 2**18
_SCRYPT_R, _SCRYPT_P = 8, 1

MAX_SCRYPT_N = 2**18
"""The standard cost that geth, eth-account and EIP-2335 tools write; no genuine file asks more."""
MAX_SCRYPT_MEMORY = 2**28
"""Bytes of scrypt's large array, ``128·n·r``: 256 MiB, exactly what the standard file needs."""
MAX_SCRYPT_BLOCK_MEMORY = 2**20
"""Bytes of scrypt's per-lane blocks, ``128·r·p`` (the standard file needs 1 KiB)."""
MAX_SCRYPT_WORK = 2**22
"""``n·r·p``: twice the standard file's 2^21 (about 2 s); bounds the time a hostile ``p`` costs."""
MAX_PBKDF2_ITERATIONS = 2**22
"""About 2.5 s; four times eth-account's 10^6 and sixteen times EIP-2335's 2^18."""
MAX_KEYSTORE_BYTES = 64 * 1024
"""Keystore files are about 1 KiB; a larger file is not one, and is not read whole."""
MIN_PASSWORD_LENGTH = 8
"""Characters a new key's password needs unless the caller allows a weak one."""

KEY_LENGTH = 32
SECRET_LENGTH = 32  # a BLS12-381 or secp256k1 secret key
IV_LENGTH = 16
_SALT_LENGTHS = range(16, 65)  # eth-account writes 16 bytes, geth and EIP-2335 tools 32
# The code points EIP-2335 drops from passwords: C0, DEL and C1.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def normalize_password(password: str) -> bytes:
    """EIP-2335 password bytes: NFKD, then drop C0 (0x00-0x1F), DEL (0x7F), C1 (0x80-0x9F)."""
    decomposed = unicodedata.normalize("NFKD", text_password(password))
    return _CONTROL_CHARACTERS.sub("", decomposed).encode("utf-8")


def check_password_strength(password: str) -> None:
    """Refuse a password for a new key: :class:`WeakPassword` if it is shorter than
    :data:`MIN_PASSWORD_LENGTH` characters, only white space, or holds a control character
    (EIP-2335 would silently drop it, so the key would open without it)."""
    if _CONTROL_CHARACTERS.search(text_password(password)):
        raise WeakPassword("the password holds a control character (a stray line break?)")
    if len(password) < MIN_PASSWORD_LENGTH or not password.strip():
        raise WeakPassword(
            f"the password is too weak: use at least {MIN_PASSWORD_LENGTH} characters, "
            "not all white space"
        )


def text_password(password: object) -> str:
    """``password`` if it is text that UTF-8 can encode (an environment variable holding
    invalid UTF-8 arrives with lone surrogates, which cannot be)."""
    if not isinstance(password, str):
        raise KeystoreError("a keystore password is a str")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise KeystoreError("the password is not valid Unicode text") from exc
    return password


def read_keystore_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in a keystore file, read only if it is of a keystore's size."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEYSTORE_BYTES + 1)
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from exc
    if len(data) > MAX_KEYSTORE_BYTES:
        raise KeystoreError(f"{path} is over {MAX_KEYSTORE_BYTES} bytes: not a keystore")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise KeystoreError(f"keystore {path} is not JSON") from exc
    if not isinstance(document, dict):
        raise KeystoreError(f"{path} is not a keystore object")
    return document


def encrypt_keystore(
    secret: bytes,
    password: str,
    *,
    pubkey: str = "",
    path: str = "",
    description: str = "",
    kdf: Kdf = "scrypt",
    iterations: int | None = None,
    allow_weak_password: bool = False,
) -> dict[str, Any]:
    """An EIP-2335 keystore (a JSON-ready dict) holding the 32-byte ``secret`` under ``password``.

    ``iterations`` is scrypt's ``n`` or PBKDF2's ``c``; the default is the standard 2^18.
    Lower it only for tests. :class:`WeakPassword` unless the password passes
    :func:`check_password_strength` or ``allow_weak_password`` is set.
    """
    if not allow_weak_password:
        check_password_strength(password)
    if len(secret) != SECRET_LENGTH:
        raise KeystoreError(f"a keystore holds a {SECRET_LENGTH}-byte secret key")
    salt = os.urandom(32)
    if kdf == "scrypt":
        params: dict[str, Any] = {
            "dklen": KEY_LENGTH,
            "n": iterations or DEFAULT_SCRYPT_N,
            "r": _SCRYPT_R,
            "p": _SCRYPT_P,
            "salt": salt.hex(),
        }
    elif kdf == "pbkdf2":
        params = {
            "dklen": KEY_LENGTH,
            "c": iterations or DEFAULT_PBKDF2_ITERATIONS,
            "prf": "hmac-sha256",
            "salt": salt.hex(),
        }
    else:
        raise KeystoreError(f"unsupported KDF {kdf!r}; use 'scrypt' or 'pbkdf2'")
    decryption_key = _derive_key(kdf_params(kdf, params, "kdf"), normalize_password(password))
    iv = os.urandom(IV_LENGTH)
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
    """The secret inside an EIP-2335 keystore; :class:`WrongPassword` if the checksum fails.

    Every field is checked before the KDF runs; anything malformed, unsupported or beyond
    the bounds above is a :class:`KeystoreError`.
    """
    document = json_object(keystore, "keystore")
    if integer_field(document, "version", "keystore") != 4:
        raise KeystoreError("unsupported keystore version: EIP-2335 keystores are version 4")
    uuid_field(document, "uuid", "keystore")
    string_field(document, "path", "keystore")
    for optional in ("description", "pubkey"):
        if optional in document:
            string_field(document, optional, "keystore")
    crypto = json_object(member(document, "crypto", "keystore"), "crypto")
    kdf = json_object(member(crypto, "kdf", "crypto"), "crypto.kdf")
    checksum = json_object(member(crypto, "checksum", "crypto"), "crypto.checksum")
    cipher = json_object(member(crypto, "cipher", "crypto"), "crypto.cipher")
    if string_field(checksum, "function", "crypto.checksum") != "sha256":
        raise KeystoreError("unsupported keystore checksum function: only sha256")
    json_object(member(checksum, "params", "crypto.checksum"), "crypto.checksum.params")
    if string_field(cipher, "function", "crypto.cipher") != "aes-128-ctr":
        raise KeystoreError("unsupported keystore cipher: only aes-128-ctr")
    cipher_params = json_object(member(cipher, "params", "crypto.cipher"), "crypto.cipher.params")
    iv = hex_field(cipher_params, "iv", "crypto.cipher.params", exactly(IV_LENGTH))
    ciphertext = hex_field(cipher, "message", "crypto.cipher", exactly(SECRET_LENGTH))
    expected_checksum = hex_field(checksum, "message", "crypto.checksum", exactly(32))
    params = kdf_params(
        string_field(kdf, "function", "crypto.kdf"),
        member(kdf, "params", "crypto.kdf"),
        "crypto.kdf.params",
    )
    decryption_key = _derive_key(params, normalize_password(password))
    if not hmac.compare_digest(_checksum(decryption_key, ciphertext), expected_checksum):
        raise WrongPassword("wrong password for this keystore")
    return _aes_128_ctr(decryption_key[:16], iv, ciphertext)


@dataclass(frozen=True)
class Scrypt:
    salt: bytes
    n: int
    r: int
    p: int


@dataclass(frozen=True)
class Pbkdf2:
    salt: bytes
    iterations: int


def kdf_params(function: str, params: object, where: str) -> Scrypt | Pbkdf2:
    """Checked KDF parameters, refusing any that yield the wrong key size or cost more than
    the bounds above, before any derivation work."""
    fields = json_object(params, where)
    salt = hex_field(fields, "salt", where, _SALT_LENGTHS)
    if integer_field(fields, "dklen", where) != KEY_LENGTH:
        raise KeystoreError(f"malformed keystore: {where}.dklen must be {KEY_LENGTH}")
    if function == "scrypt":
        n, r, p = (integer_field(fields, name, where) for name in ("n", "r", "p"))
        if not 2 <= n <= MAX_SCRYPT_N or n & (n - 1):
            raise KeystoreError(
                f"unsupported scrypt parameters: n must be a power of two from 2 to {MAX_SCRYPT_N}"
            )
        if r < 1 or p < 1:
            raise KeystoreError("unsupported scrypt parameters: r and p must be at least 1")
        if 128 * n * r > MAX_SCRYPT_MEMORY or 128 * r * p > MAX_SCRYPT_BLOCK_MEMORY:
            raise KeystoreError(
                f"unsupported scrypt parameters: 128·n·r must be at most {MAX_SCRYPT_MEMORY} "
                f"bytes and 128·r·p at most {MAX_SCRYPT_BLOCK_MEMORY}"
            )
        if n * r * p > MAX_SCRYPT_WORK:
            raise KeystoreError(f"unsupported scrypt parameters: n·r·p is over {MAX_SCRYPT_WORK}")
        return Scrypt(salt, n, r, p)
    if function == "pbkdf2":
        if string_field(fields, "prf", where) != "hmac-sha256":
            raise KeystoreError("unsupported PBKDF2 parameters: prf must be hmac-sha256")
        iterations = integer_field(fields, "c", where)
        if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
            raise KeystoreError(
                f"unsupported PBKDF2 parameters: c must be from 1 to {MAX_PBKDF2_ITERATIONS}"
            )
        return Pbkdf2(salt, iterations)
    raise KeystoreError("unsupported KDF: use scrypt or pbkdf2")


def _derive_key(params: Scrypt | Pbkdf2, password: bytes) -> bytes:
    if isinstance(params, Scrypt):
        needed = 128 * params.r * (params.n + params.p + 2)  # what OpenSSL checks maxmem against
        return hashlib.scrypt(
            password,
            salt=params.salt,
            n=params.n,
            r=params.r,
            p=params.p,
            dklen=KEY_LENGTH,
            maxmem=needed + 2**20,
        )
    return hashlib.pbkdf2_hmac("sha256", password, params.salt, params.iterations, KEY_LENGTH)


def eth_work_factor(kdf: str, iterations: int | None) -> int:
    """The work factor to have eth-account write with (this module's defaults, so both files
    of a participant cost the same), refused if :func:`decrypt_eth_account` would refuse it."""
    params: dict[str, Any] = {"salt": "00" * 16, "dklen": KEY_LENGTH}
    if kdf == "scrypt":  # eth-keyfile writes r = 8, p = 1
        work_factor = iterations or DEFAULT_SCRYPT_N
        params |= {"n": work_factor, "r": 8, "p": 1}
    elif kdf == "pbkdf2":
        work_factor = iterations or DEFAULT_PBKDF2_ITERATIONS
        params |= {"c": work_factor, "prf": "hmac-sha256"}
    else:
        raise KeystoreError(f"unsupported KDF {kdf!r}; use 'scrypt' or 'pbkdf2'")
    kdf_params(kdf, params, "kdf")
    return work_factor


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
    allow_weak_password: bool = False,
) -> dict[str, Any]:
    """An EIP-2335 keystore for a Flare BLS key; ``pubkey`` is its 96-byte compressed G2 form."""
    return encrypt_keystore(
        secret_key.to_bytes(),
        password,
        pubkey=secret_key.compressed_public_key().hex(),
        description=description,
        kdf=kdf,
        iterations=iterations,
        allow_weak_password=allow_weak_password,
    )


def decrypt_bls_key(keystore: Mapping[str, Any], password: str) -> SecretKey:
    """Open a keystore written by :func:`encrypt_bls_key`; its ``pubkey`` must be present and
    be the decrypted key's, so an edited keystore never passes for another key."""
    document = json_object(keystore, "keystore")
    recorded = hex_field(document, "pubkey", "keystore", exactly(96))
    try:
        secret_key = SecretKey.from_bytes(decrypt_keystore(document, password))
    except InvalidSecretKey as exc:
        raise KeystoreError(f"the keystore does not hold a BLS secret key: {exc}") from exc
    if recorded != secret_key.compressed_public_key():
        raise KeystoreError("the keystore's pubkey does not match its secret key")
    return secret_key

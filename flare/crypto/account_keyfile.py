"""Ethereum accounts at rest: Web3 Secret Storage (v3) keyfiles, written and read through
eth-account, with every field checked first by the same bounds as the BLS keystores
(:mod:`flare.crypto.keystore`)."""

from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keyfile.exceptions import EthKeyfileException

from flare.crypto.errors import KeystoreError, WrongPassword
from flare.crypto.keystore import (
    IV_LENGTH,
    KEY_LENGTH,
    SECRET_LENGTH,
    Kdf,
    Scrypt,
    check_password_strength,
    eth_work_factor,
    kdf_params,
    text_password,
)
from flare.crypto.keystore_fields import (
    exactly,
    hex_field,
    integer_field,
    json_object,
    lowercase_keys,
    member,
    string_field,
    uuid_field,
)


def encrypt_eth_account(
    account: LocalAccount,
    password: str,
    *,
    kdf: Kdf = "scrypt",
    iterations: int | None = None,
    allow_weak_password: bool = False,
) -> dict[str, Any]:
    """A Web3 Secret Storage (v3) keyfile for an Ethereum account, via eth-account.

    :class:`WeakPassword` unless the password passes :func:`check_password_strength` or
    ``allow_weak_password`` is set.
    """
    if not allow_weak_password:
        check_password_strength(password)
    text_password(password)
    work_factor = eth_work_factor(kdf, iterations)
    return Account.encrypt(account.key, password, kdf=kdf, iterations=work_factor)


def decrypt_eth_account(keyfile: Mapping[str, Any], password: str) -> LocalAccount:
    """Open a Web3 Secret Storage keyfile; :class:`WrongPassword` if its MAC fails.

    The file is checked before eth-account runs its KDF (which has no bounds of its own),
    and eth-account is handed only the checked fields. An ``address`` field, when present,
    must be the decrypted key's address.
    """
    text_password(password)
    # Keys are case-insensitive as eth-keyfile reads them (geth once wrote "Crypto").
    document = lowercase_keys(json_object(keyfile, "keyfile"))
    if integer_field(document, "version", "keyfile") != 3:
        raise KeystoreError("unsupported Ethereum keyfile version: Web3 Secret Storage is 3")
    if "id" in document:
        uuid_field(document, "id", "keyfile")
    recorded_address = (
        hex_field(document, "address", "keyfile", range(20, 21)) if "address" in document else None
    )
    crypto = lowercase_keys(json_object(member(document, "crypto", "keyfile"), "crypto"))
    if string_field(crypto, "cipher", "crypto") != "aes-128-ctr":
        raise KeystoreError("unsupported Ethereum keyfile cipher: only aes-128-ctr")
    cipher_params = lowercase_keys(
        json_object(member(crypto, "cipherparams", "crypto"), "crypto.cipherparams")
    )
    kdf = string_field(crypto, "kdf", "crypto")
    kdf_fields = lowercase_keys(
        json_object(member(crypto, "kdfparams", "crypto"), "crypto.kdfparams")
    )
    params = kdf_params(kdf, kdf_fields, "crypto.kdfparams")
    checked = {
        "version": 3,
        "crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": {
                "iv": hex_field(
                    cipher_params, "iv", "crypto.cipherparams", exactly(IV_LENGTH)
                ).hex()
            },
            "ciphertext": hex_field(crypto, "ciphertext", "crypto", exactly(SECRET_LENGTH)).hex(),
            "mac": hex_field(crypto, "mac", "crypto", exactly(32)).hex(),
            "kdf": kdf,
            "kdfparams": {"salt": params.salt.hex(), "dklen": KEY_LENGTH}
            | (
                {"n": params.n, "r": params.r, "p": params.p}
                if isinstance(params, Scrypt)
                else {"c": params.iterations, "prf": "hmac-sha256"}
            ),
        },
    }
    try:
        private_key = Account.decrypt(checked, password)
    except EthKeyfileException as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPassword("wrong password for this Ethereum keyfile") from exc
        raise KeystoreError(f"unsupported Ethereum keyfile: {exc}") from exc
    try:
        account: LocalAccount = Account.from_key(private_key)
    except ValueError as exc:
        raise KeystoreError("the keyfile does not hold a secp256k1 private key") from exc
    if recorded_address is not None and recorded_address != bytes.fromhex(account.address[2:]):
        raise KeystoreError("the keyfile's address does not match its private key")
    return account

"""A participant's keys: the Ethereum account that sends transactions and the BLS key that
proves possession at registration and draws committee seats.

Saved as a directory of two password-encrypted keystores that standard tools can open:
``eth-account.json`` (Web3 Secret Storage v3) and ``bls-keystore.json`` (EIP-2335).
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from flare.crypto.bls import SecretKey, prove_possession
from flare.crypto.errors import KeystoreError
from flare.crypto.keystore import (
    Kdf,
    check_password_strength,
    decrypt_bls_key,
    decrypt_eth_account,
    encrypt_bls_key,
    encrypt_eth_account,
    read_keystore_json,
)

ETH_KEYFILE_NAME = "eth-account.json"
BLS_KEYSTORE_NAME = "bls-keystore.json"


@dataclass(frozen=True, repr=False)
class ParticipantKeys:
    """An Ethereum account bundled with the BLS key it registers on chain."""

    account: LocalAccount
    bls_key: SecretKey

    @classmethod
    def generate(cls) -> "ParticipantKeys":
        """Fresh keys from the operating system's CSPRNG."""
        return cls(Account.create(), SecretKey.generate())

    @property
    def address(self) -> bytes:
        """The account's 20-byte address, as the contract sees ``msg.sender``."""
        return bytes.fromhex(self.account.address[2:])

    @property
    def bls_public_key(self) -> bytes:
        """The 256-byte EIP-2537 G2 public key registered on chain."""
        return self.bls_key.public_key()

    def proof_of_possession(self) -> bytes:
        """The 128-byte proof of possession over :attr:`address` that registration needs."""
        return prove_possession(self.bls_key, self.address)

    def save(
        self,
        directory: str | os.PathLike[str],
        password: str,
        *,
        kdf: Kdf = "scrypt",
        iterations: int | None = None,
        overwrite: bool = False,
        allow_weak_password: bool = False,
    ) -> Path:
        """Write both keystores into ``directory`` (created 0700, files 0600); return it.

        Refuses to replace existing keystores unless ``overwrite`` is set, since that would
        destroy the only copy of a key, and refuses a weak password (see
        :func:`~flare.crypto.keystore.check_password_strength`) unless
        ``allow_weak_password`` is set. Both checks come before the slow encryption.
        """
        if not allow_weak_password:
            check_password_strength(password)
        target = Path(directory)
        try:
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError as exc:
            raise KeystoreError(f"{target} exists and is not a directory") from exc
        except OSError as exc:
            raise KeystoreError(f"cannot create key directory {target}: {exc.strerror}") from exc
        if not overwrite:
            for name in (ETH_KEYFILE_NAME, BLS_KEYSTORE_NAME):
                if (target / name).exists():
                    raise KeystoreError(f"{target / name} exists; pass overwrite=True to replace")
        documents = {
            ETH_KEYFILE_NAME: encrypt_eth_account(
                self.account,
                password,
                kdf=kdf,
                iterations=iterations,
                allow_weak_password=allow_weak_password,
            ),
            BLS_KEYSTORE_NAME: encrypt_bls_key(
                self.bls_key,
                password,
                kdf=kdf,
                iterations=iterations,
                allow_weak_password=allow_weak_password,
            ),
        }
        for name, document in documents.items():
            _write_private_json(target / name, document, overwrite=overwrite)
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str], password: str) -> "ParticipantKeys":
        """Read keys written by :meth:`save`; :class:`WrongPassword` if the password is wrong."""
        source = Path(directory)
        account = decrypt_eth_account(read_keystore_json(source / ETH_KEYFILE_NAME), password)
        bls_key = decrypt_bls_key(read_keystore_json(source / BLS_KEYSTORE_NAME), password)
        return cls(account, bls_key)

    def __repr__(self) -> str:
        return f"ParticipantKeys(address={self.account.address}, bls_key=<redacted>)"


def _write_private_json(path: Path, document: dict[str, Any], *, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            # A file being overwritten keeps its old mode through O_TRUNC; the key must not.
            os.fchmod(descriptor, 0o600)
            json.dump(document, handle, indent=2)
            handle.write("\n")
    except FileExistsError as exc:
        raise KeystoreError(f"{path} exists; pass overwrite=True to replace it") from exc
    except OSError as exc:
        raise KeystoreError(f"cannot write {path}: {exc.strerror}") from exc

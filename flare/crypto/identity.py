"""A participant's keys: the Ethereum account that sends transactions and the BLS key that
proves possession at registration and draws committee seats.

Saved as a directory of two password-encrypted keystores that standard tools can open:
``eth-account.json`` (Web3 Secret Storage v3) and ``bls-keystore.json`` (EIP-2335).

The proof of possession that registration needs signs :func:`possession_message`: the
chain, the contract, the task and the registering account, so that a proof made for one
task is worthless in any other task, deployment or chain (docs/protocol.md §2.4).
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from flare.crypto.account_keyfile import decrypt_eth_account, encrypt_eth_account
from flare.crypto.bls import POP_DST, SecretKey, sign, verify
from flare.crypto.errors import KeystoreError
from flare.crypto.keystore import (
    Kdf,
    check_password_strength,
    decrypt_bls_key,
    encrypt_bls_key,
    read_keystore_json,
)
from flare.errors import ConfigError

ETH_KEYFILE_NAME = "eth-account.json"
BLS_KEYSTORE_NAME = "bls-keystore.json"
POSSESSION_MESSAGE_LENGTH = 32 + 20 + 32 + 20
_UINT256_LIMIT = 1 << 256


def possession_message(chain_id: int, contract: bytes, task_id: int, account: bytes) -> bytes:
    """The 104-byte message whose signature proves possession of a key for one registration.

    Exactly Solidity's ``abi.encodePacked(uint256 chainid, address contract, uint256 taskId,
    address account)`` (``ProofOfPossession.message``); ``contract`` and ``account`` are raw
    20-byte addresses.
    """
    for name, number in (("chain_id", chain_id), ("task_id", task_id)):
        if isinstance(number, bool) or not isinstance(number, int):
            raise ConfigError(f"{name} must be an integer in [0, 2**256)")
        if not 0 <= number < _UINT256_LIMIT:
            raise ConfigError(f"{name} must be an integer in [0, 2**256)")
    for name, address in (("contract", contract), ("account", account)):
        if not isinstance(address, bytes) or len(address) != 20:
            raise ConfigError(f"{name} must be a 20-byte address")
    return chain_id.to_bytes(32, "big") + contract + task_id.to_bytes(32, "big") + account


def prove_task_possession(secret_key: SecretKey, message: bytes) -> bytes:
    """The 128-byte proof of possession over ``message`` (from :func:`possession_message`)."""
    return sign(secret_key, _check_possession_message(message), POP_DST)


def verify_task_possession(public_key: bytes, message: bytes, proof: bytes) -> bool:
    """True iff ``proof`` proves possession of ``public_key`` for ``message``.

    A malformed proof is ``False``; a malformed key raises
    :class:`~flare.crypto.errors.InvalidPointEncoding` (see :func:`flare.crypto.bls.verify`).
    """
    return verify(public_key, _check_possession_message(message), proof, POP_DST)


def _check_possession_message(message: bytes) -> bytes:
    if not isinstance(message, bytes) or len(message) != POSSESSION_MESSAGE_LENGTH:
        raise ConfigError(f"a possession message is exactly {POSSESSION_MESSAGE_LENGTH} bytes")
    return message


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

    def proof_of_possession(self, chain_id: int, contract: bytes, task_id: int) -> bytes:
        """The 128-byte proof of possession that registering in task ``task_id`` needs."""
        message = possession_message(chain_id, contract, task_id, self.address)
        return prove_task_possession(self.bls_key, message)

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
    """Write ``document`` to ``path`` (mode 0600) all at once or not at all.

    The text goes to a private temporary file beside ``path`` that is flushed to disk and
    then renamed over it, so a crash or a full disk never leaves a truncated keystore in
    place of the only copy of a key. Without ``overwrite`` the rename is a hard link,
    which fails if ``path`` appeared in the meantime.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError as exc:
        raise KeystoreError(f"{path} exists; pass overwrite=True to replace it") from exc
    except OSError as exc:
        raise KeystoreError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        temporary.unlink(missing_ok=True)

"""Where a process's Ethereum key comes from: a key file, a keystore, or Anvil's dev key.

Keys are only ever held as eth-account ``LocalAccount`` objects that sign in process;
nothing here prints or logs key material, and error messages name the file, never its
content.
"""

from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from flare.crypto.account_keyfile import decrypt_eth_account
from flare.crypto.errors import KeystoreError
from flare.crypto.keystore import read_keystore_json
from flare.errors import ConfigError

ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
"""Anvil's first dev account (mnemonic ``test test … junk``, index 0).

Public knowledge: anything it holds on a public chain is taken within seconds, which is
why only an explicit ``--dev-account`` selects it. Deploying from it with nonce 0 gives
the address the in-memory chain uses, ``0x5FbDB2315678afecb367f032d93F642f64180aa3``.
"""

_MAX_KEY_FILE_BYTES = 1024  # 66 characters of hex and white space; never read a large file whole


def dev_account() -> LocalAccount:
    """Anvil's first dev account."""
    return Account.from_key(ANVIL_DEV_KEY)


def account_from_key_file(path: Path) -> LocalAccount:
    """An account from a file holding one hex private key (``0x`` optional)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from exc
    refusal = f"{path} does not hold a 32-byte hex private key"
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(refusal)
    try:
        text = data.decode("ascii").strip()
        return Account.from_key(text if text.startswith("0x") else "0x" + text)
    except (ValueError, TypeError) as exc:
        raise ConfigError(refusal) from exc


def account_from_keystore(path: Path, password: str) -> LocalAccount:
    """An account from a Web3 Secret Storage (v3) keyfile, as geth and Foundry write."""
    try:
        keyfile = read_keystore_json(path)
    except KeystoreError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        return decrypt_eth_account(keyfile, password)
    except KeystoreError as exc:
        raise ConfigError(f"keystore {path}: {exc}") from exc

"""Keys at rest: EIP-2335 BLS keystores, Web3 Secret Storage accounts, participant key dirs."""

import copy
import json
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account
from py_arkworks_bls12381 import G1Point, Scalar

from flare.crypto import (
    KeystoreError,
    ParticipantKeys,
    SecretKey,
    WrongPassword,
    decrypt_bls_key,
    decrypt_eth_account,
    decrypt_keystore,
    encrypt_bls_key,
    encrypt_eth_account,
    encrypt_keystore,
    normalize_password,
)
from flare.crypto.identity import possession_message, verify_task_possession

EIP2335 = json.loads((Path(__file__).parents[1] / "vectors" / "eip2335_keystores.json").read_text())
FAST = {"iterations": 2**10}  # test-only KDF cost; real keystores use the 2^18 default
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return SecretKey.from_seed(b"flare-keystore-tests".ljust(32, b"\x00"))


def test_eip2335_password_normalisation() -> None:
    """NFKD folds the mathematical letters to ASCII; the emoji stays as UTF-8."""
    assert normalize_password(EIP2335["password"]).hex() == EIP2335["encoded_password"]


def test_control_codes_are_stripped_but_space_kept() -> None:
    assert normalize_password("a\x00b\x1fc\x7fd\x80e\x9ff g") == b"abcdef g"


@pytest.mark.parametrize("keystore", EIP2335["keystores"], ids=["scrypt", "pbkdf2"])
def test_eip2335_vectors_decrypt(keystore: dict) -> None:
    secret = decrypt_keystore(keystore, EIP2335["password"])
    assert secret.hex() == EIP2335["secret"]
    # The vector's pubkey is the min-pk G1 key of that secret: a check on both sides.
    public = G1Point() * Scalar(int.from_bytes(secret, "big"))
    assert public.to_compressed_bytes().hex() == keystore["pubkey"]


def test_eip2335_vector_rejects_wrong_password() -> None:
    with pytest.raises(WrongPassword):
        decrypt_keystore(EIP2335["keystores"][1], "testpassword")


@pytest.mark.parametrize("kdf", ["scrypt", "pbkdf2"])
def test_bls_keystore_round_trip(key: SecretKey, kdf: str) -> None:
    keystore = encrypt_bls_key(key, PASSWORD, kdf=kdf, **FAST)  # type: ignore[arg-type]
    assert keystore["version"] == 4
    assert keystore["path"] == ""
    assert keystore["crypto"]["kdf"]["function"] == kdf
    assert keystore["crypto"]["cipher"]["function"] == "aes-128-ctr"
    assert keystore["crypto"]["checksum"]["function"] == "sha256"
    assert len(bytes.fromhex(keystore["pubkey"])) == 96
    assert key.to_bytes().hex() not in json.dumps(keystore)
    assert decrypt_bls_key(json.loads(json.dumps(keystore)), PASSWORD) == key


def test_bls_keystore_wrong_password(key: SecretKey) -> None:
    keystore = encrypt_bls_key(key, PASSWORD, **FAST)
    with pytest.raises(WrongPassword):
        decrypt_bls_key(keystore, PASSWORD + "!")


def test_tampered_ciphertext_fails_the_checksum(key: SecretKey) -> None:
    keystore = encrypt_bls_key(key, PASSWORD, **FAST)
    message = bytearray.fromhex(keystore["crypto"]["cipher"]["message"])
    message[0] ^= 1
    keystore["crypto"]["cipher"]["message"] = message.hex()
    with pytest.raises(WrongPassword):
        decrypt_bls_key(keystore, PASSWORD)


def test_pubkey_mismatch_rejected(key: SecretKey) -> None:
    keystore = encrypt_bls_key(key, PASSWORD, **FAST)
    other = encrypt_bls_key(SecretKey.generate(), PASSWORD, **FAST)
    keystore["pubkey"] = other["pubkey"]
    with pytest.raises(KeystoreError, match="pubkey"):
        decrypt_bls_key(keystore, PASSWORD)


def test_secret_that_is_no_bls_key_rejected() -> None:
    keystore = encrypt_keystore(bytes(32), PASSWORD, pubkey="00" * 96, **FAST)
    with pytest.raises(KeystoreError, match="BLS secret key"):
        decrypt_bls_key(keystore, PASSWORD)


def _mutated(keystore: dict, dotted: str, value: object) -> dict:
    result = copy.deepcopy(keystore)
    *parents, leaf = dotted.split(".")
    node = result
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value
    return result


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("version", 3),
        ("crypto", KeyError),
        ("crypto.cipher.function", "aes-256-gcm"),
        ("crypto.checksum.function", "keccak256"),
        ("crypto.kdf.function", "argon2"),
        ("crypto.kdf.params.n", 2**30),
        ("crypto.kdf.params.n", 1000),
        ("crypto.kdf.params.dklen", 16),
        ("crypto.kdf.params.salt", "not hex"),
        ("crypto.cipher.params.iv", "00"),
        ("crypto.cipher.message", 5),
    ],
)
def test_malformed_keystores_rejected(key: SecretKey, dotted: str, value: object) -> None:
    keystore = encrypt_bls_key(key, PASSWORD, **FAST)
    with pytest.raises(KeystoreError):
        decrypt_bls_key(_mutated(keystore, dotted, value), PASSWORD)


def test_unknown_kdf_cannot_be_written(key: SecretKey) -> None:
    with pytest.raises(KeystoreError):
        encrypt_bls_key(key, PASSWORD, kdf="argon2")  # type: ignore[arg-type]


def test_eth_account_round_trip_and_wrong_password() -> None:
    account = Account.create()
    keyfile = encrypt_eth_account(account, PASSWORD, **FAST)
    assert keyfile["version"] == 3
    assert decrypt_eth_account(keyfile, PASSWORD).address == account.address
    with pytest.raises(WrongPassword):
        decrypt_eth_account(keyfile, "nope")
    with pytest.raises(KeystoreError):
        decrypt_eth_account({"version": 3}, PASSWORD)


def test_participant_keys_save_and_load(tmp_path: Path) -> None:
    keys = ParticipantKeys.generate()
    directory = keys.save(tmp_path / "alice", PASSWORD, **FAST)
    for name in ("eth-account.json", "bls-keystore.json"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    loaded = ParticipantKeys.load(directory, PASSWORD)
    assert loaded.account.address == keys.account.address
    assert loaded.bls_key == keys.bls_key
    assert len(loaded.address) == 20
    contract = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")
    message = possession_message(31337, contract, 1, loaded.address)
    proof = keys.proof_of_possession(31337, contract, 1)
    assert verify_task_possession(loaded.bls_public_key, message, proof)


def test_participant_keys_wrong_password_and_no_overwrite(tmp_path: Path) -> None:
    keys = ParticipantKeys.generate()
    keys.save(tmp_path, PASSWORD, **FAST)
    with pytest.raises(WrongPassword):
        ParticipantKeys.load(tmp_path, "wrong")
    with pytest.raises(KeystoreError, match="exists"):
        ParticipantKeys.generate().save(tmp_path, PASSWORD, **FAST)
    assert ParticipantKeys.load(tmp_path, PASSWORD).bls_key == keys.bls_key
    replacement = ParticipantKeys.generate()
    replacement.save(tmp_path, PASSWORD, overwrite=True, **FAST)
    assert ParticipantKeys.load(tmp_path, PASSWORD).bls_key == replacement.bls_key


def test_participant_keys_failed_overwrite_keeps_the_old_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails half-way (a full disk) leaves the old keystores whole and no litter."""
    keys = ParticipantKeys.generate()
    keys.save(tmp_path, PASSWORD, **FAST)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def disk_full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(KeystoreError, match="No space left"):
        ParticipantKeys.generate().save(tmp_path, PASSWORD, overwrite=True, **FAST)
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    assert ParticipantKeys.load(tmp_path, PASSWORD).bls_key == keys.bls_key


def test_participant_keys_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="cannot read"):
        ParticipantKeys.load(tmp_path / "absent", PASSWORD)


def test_participant_keys_repr_is_redacted() -> None:
    keys = ParticipantKeys.generate()
    text = repr(keys)
    assert keys.account.key.hex().removeprefix("0x") not in text
    assert keys.bls_key.to_bytes().hex() not in text

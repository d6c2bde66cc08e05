"""Hostile and damaged key files (issue 8, point 4).

A tampered keystore could ask for minutes of KDF work or gigabytes of memory before any
password check; every parameter is now bounded before the KDF runs, in both formats, so
each refusal here returns at once. Edited ``address`` / ``pubkey`` fields, wrong versions
and odd types are refused with :class:`KeystoreError`; new keys refuse weak passwords
unless explicitly allowed; and a fuzz test plants arbitrary JSON at every place of valid
keystores, asserting nothing but the typed error ever escapes.
"""

import copy
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from Crypto.Cipher import AES
from eth_account import Account
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flare.chain.rpc.accounts import account_from_key_file, account_from_keystore
from flare.cli import main
from flare.crypto import (
    KeystoreError,
    ParticipantKeys,
    SecretKey,
    WeakPassword,
    WrongPassword,
    check_password_strength,
    decrypt_bls_key,
    decrypt_eth_account,
    encrypt_bls_key,
    encrypt_eth_account,
)
from flare.crypto import keystore as keystore_module
from flare.crypto.keystore import MAX_KEYSTORE_BYTES, read_keystore_json
from flare.errors import ConfigError

PASSWORD = "correct horse battery staple"
FAST = {"iterations": 2**10}  # test-only KDF cost
QUICK_SECONDS = 1.0  # a refusal before the KDF takes microseconds; the KDF attacks took minutes
KEY = SecretKey.from_seed(b"flare-hostile-keystores".ljust(32, b"\x00"))
ACCOUNT = Account.from_key(b"\x17" * 32)
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DELETE = object()


@pytest.fixture(scope="module")
def bls_keystores() -> dict[str, dict]:
    return {kdf: encrypt_bls_key(KEY, PASSWORD, kdf=kdf, **FAST) for kdf in ("scrypt", "pbkdf2")}


@pytest.fixture(scope="module")
def eth_keyfiles() -> dict[str, dict]:
    return {
        kdf: encrypt_eth_account(ACCOUNT, PASSWORD, kdf=kdf, **FAST) for kdf in ("scrypt", "pbkdf2")
    }


def edited(document: dict, path: tuple, value: object) -> dict:
    """A copy of ``document`` with the value at ``path`` replaced, or removed for DELETE."""
    result = copy.deepcopy(document)
    node = result
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return result


def refused_quickly(open_keystore: Callable[[], object], match: str) -> None:
    started = time.perf_counter()
    with pytest.raises(KeystoreError, match=match) as raised:
        open_keystore()
    assert not isinstance(raised.value, WrongPassword), "refused only after running the KDF"
    assert time.perf_counter() - started < QUICK_SECONDS


def open_bls(keystore: dict, password: str = PASSWORD) -> Callable[[], object]:
    return lambda: decrypt_bls_key(keystore, password)


def open_eth(keyfile: dict, password: str = PASSWORD) -> Callable[[], object]:
    return lambda: decrypt_eth_account(keyfile, password)


KDF_BOUNDS = [
    # The hostile parameters.
    ("scrypt", {"p": 100000}, "128·r·p"),
    ("scrypt", {"n": 2**21}, "power of two"),
    ("pbkdf2", {"c": 2**31 - 1}, "c must be"),
    ("pbkdf2", {"c": 10**10}, "c must be"),
    # Each scrypt bound: n ≤ 2^18, 128·n·r ≤ 256 MiB, 128·r·p ≤ 1 MiB, n·r·p ≤ 2^22.
    ("scrypt", {"n": 2**19}, "power of two"),
    ("scrypt", {"n": 3}, "power of two"),
    ("scrypt", {"n": 1}, "power of two"),
    ("scrypt", {"n": 0}, "power of two"),
    ("scrypt", {"n": -(2**18)}, "power of two"),
    ("scrypt", {"n": 10**400}, "power of two"),
    ("scrypt", {"n": 2**18, "r": 9}, "128·n·r"),
    ("scrypt", {"n": 2, "r": 2**13, "p": 2}, "128·r·p"),
    ("scrypt", {"n": 2**18, "r": 8, "p": 3}, "n·r·p"),
    ("scrypt", {"r": 0}, "at least 1"),
    ("scrypt", {"p": -1}, "at least 1"),
    # Types: integers only, never floats, strings, booleans or null.
    ("scrypt", {"n": 1024.0}, "integer"),
    ("scrypt", {"n": "1024"}, "integer"),
    ("scrypt", {"r": True}, "integer"),
    ("scrypt", {"p": None}, "integer"),
    ("scrypt", {"n": DELETE}, "no 'n'"),
    ("pbkdf2", {"c": 0}, "c must be"),
    ("pbkdf2", {"c": -1}, "c must be"),
    ("pbkdf2", {"c": 1e6}, "integer"),
    ("pbkdf2", {"c": "1000"}, "integer"),
    ("pbkdf2", {"prf": "hmac-sha512"}, "hmac-sha256"),
    ("pbkdf2", {"prf": None}, "string"),
    # The derived key and the salt.
    ("scrypt", {"dklen": 31}, "dklen must be 32"),
    ("pbkdf2", {"dklen": 64}, "dklen must be 32"),
    ("pbkdf2", {"dklen": 2**40}, "dklen must be 32"),
    ("scrypt", {"salt": ""}, "16 to 64 bytes"),
    ("scrypt", {"salt": "00" * 8}, "16 to 64 bytes"),
    ("pbkdf2", {"salt": "00" * 65}, "16 to 64 bytes"),
    ("scrypt", {"salt": "zz" * 16}, "hex"),
    ("scrypt", {"salt": "0 " * 16}, "hex"),
    ("pbkdf2", {"salt": ["00"]}, "string"),
]


@pytest.mark.parametrize(("kdf", "changes", "match"), KDF_BOUNDS)
def test_kdf_parameters_are_bounded_before_any_work_in_both_formats(
    bls_keystores: dict, eth_keyfiles: dict, kdf: str, changes: dict, match: str
) -> None:
    bls, eth = bls_keystores[kdf], eth_keyfiles[kdf]
    for name, value in changes.items():
        bls = edited(bls, ("crypto", "kdf", "params", name), value)
        eth = edited(eth, ("crypto", "kdfparams", name), value)
    refused_quickly(open_bls(bls), match)
    refused_quickly(open_eth(eth), match)


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("crypto", "kdf", "function"), "argon2id", "unsupported KDF"),
        (("crypto", "kdf", "function"), 5, "string"),
        (("crypto", "kdf", "params"), [], "JSON object"),
        (("crypto", "cipher", "function"), "aes-256-ctr", "aes-128-ctr"),
        (("crypto", "checksum", "function"), "keccak256", "sha256"),
        (("crypto", "cipher", "params", "iv"), "00" * 15, "must be 16 bytes"),
        (("crypto", "cipher", "params", "iv"), "00" * 17, "must be 16 bytes"),
        (("crypto", "cipher", "message"), "00" * 33, "must be 32 bytes"),
        (("crypto", "cipher", "message"), "00" * 2**20, "must be 32 bytes"),
        (("crypto", "checksum", "message"), "00" * 31, "must be 32 bytes"),
        (("crypto", "checksum", "params"), None, "JSON object"),
        (("crypto",), "crypto", "JSON object"),
    ],
)
def test_bls_keystore_cipher_fields_are_checked_first(
    bls_keystores: dict, path: tuple, value: object, match: str
) -> None:
    refused_quickly(open_bls(edited(bls_keystores["scrypt"], path, value)), match)


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("crypto", "kdf"), "argon2id", "unsupported KDF"),
        (("crypto", "cipher"), "aes-128-cbc", "aes-128-ctr"),
        (("crypto", "cipherparams", "iv"), "00" * 8, "must be 16 bytes"),
        (("crypto", "ciphertext"), "00" * 64, "must be 32 bytes"),
        (("crypto", "mac"), "00" * 31, "must be 32 bytes"),
        (("crypto", "mac"), 0, "string"),
        (("crypto", "kdfparams"), DELETE, "no 'kdfparams'"),
        (("crypto",), DELETE, "no 'crypto'"),
    ],
)
def test_eth_keyfile_cipher_fields_are_checked_first(
    eth_keyfiles: dict, path: tuple, value: object, match: str
) -> None:
    refused_quickly(open_eth(edited(eth_keyfiles["scrypt"], path, value)), match)


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("pubkey",), DELETE, "no 'pubkey'"),
        (("pubkey",), "", "96 bytes"),
        (("pubkey",), "00" * 48, "96 bytes"),  # a min-pk G1 key, as in EIP-2335's vectors
        (("pubkey",), 7, "string"),
        (("version",), 3, "version"),
        (("version",), "4", "integer"),
        (("version",), 4.0, "integer"),
        (("uuid",), "not-a-uuid", "UUID"),
        (("uuid",), 5, "string"),
        (("uuid",), DELETE, "no 'uuid'"),
        (("path",), ["m", 12381], "string"),
        (("path",), DELETE, "no 'path'"),
        (("description",), {"a": 1}, "string"),
    ],
)
def test_tampered_bls_keystore_fields(
    bls_keystores: dict, path: tuple, value: object, match: str
) -> None:
    refused_quickly(open_bls(edited(bls_keystores["pbkdf2"], path, value)), match)


def test_bls_pubkey_of_another_key_is_refused_after_decryption(bls_keystores: dict) -> None:
    other = encrypt_bls_key(SecretKey.generate(), PASSWORD, **FAST)["pubkey"]
    with pytest.raises(KeystoreError, match="pubkey does not match"):
        decrypt_bls_key(edited(bls_keystores["scrypt"], ("pubkey",), other), PASSWORD)


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("version",), 4, "version"),  # eth-keyfile would open it as EIP-2335, unbounded
        (("version",), "3", "integer"),
        (("version",), 3.0, "integer"),
        (("version",), True, "integer"),
        (("id",), "not-a-uuid", "UUID"),
        (("id",), 17, "string"),
        (("address",), "zz" * 20, "hex"),
        (("address",), "00" * 19, "20 bytes"),
        (("address",), None, "string"),
    ],
)
def test_tampered_eth_keyfile_fields(
    eth_keyfiles: dict, path: tuple, value: object, match: str
) -> None:
    refused_quickly(open_eth(edited(eth_keyfiles["pbkdf2"], path, value)), match)


def test_eth_keyfile_address_must_be_the_decrypted_keys(eth_keyfiles: dict) -> None:
    keyfile = eth_keyfiles["scrypt"]
    forged = edited(keyfile, ("address",), Account.create().address[2:].lower())
    with pytest.raises(KeystoreError, match="address does not match"):
        decrypt_eth_account(forged, PASSWORD)
    checksummed = edited(keyfile, ("address",), ACCOUNT.address)  # 0x and mixed case
    assert decrypt_eth_account(checksummed, PASSWORD).address == ACCOUNT.address
    # The field is optional in Web3 Secret Storage: without it the key is simply opened.
    assert decrypt_eth_account(edited(keyfile, ("address",), DELETE), PASSWORD) == ACCOUNT


def web3_keyfile(private_key: bytes, kdf: str, kdfparams: dict[str, Any]) -> dict:
    """A v3 keyfile built by hand the way geth builds it (``Crypto``, no address prefix)."""
    salt, password = bytes.fromhex(kdfparams["salt"]), PASSWORD.encode()
    if kdf == "scrypt":
        n, r, p = kdfparams["n"], kdfparams["r"], kdfparams["p"]
        derived = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=2**29)
    else:
        derived = hashlib.pbkdf2_hmac("sha256", password, salt, kdfparams["c"], 32)
    iv = os.urandom(16)
    ciphertext = AES.new(derived[:16], AES.MODE_CTR, nonce=b"", initial_value=iv).encrypt(
        private_key
    )
    return {
        "Crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": {"iv": iv.hex()},
            "ciphertext": ciphertext.hex(),
            "kdf": kdf,
            "kdfparams": kdfparams,
            "mac": keccak(derived[16:32] + ciphertext).hex(),
        },
        "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
        "version": 3,
    }


def test_geth_light_keyfile_with_capitalised_crypto_opens() -> None:
    """geth's light parameters (n = 2^12, p = 6) and its old ``Crypto`` spelling."""
    params = {"dklen": 32, "n": 4096, "r": 8, "p": 6, "salt": os.urandom(32).hex()}
    keyfile = web3_keyfile(ACCOUNT.key, "scrypt", params)
    keyfile["address"] = ACCOUNT.address[2:].lower()
    assert decrypt_eth_account(keyfile, PASSWORD) == ACCOUNT
    with pytest.raises(WrongPassword):
        decrypt_eth_account(keyfile, PASSWORD + "!")


@pytest.mark.parametrize("secret", [bytes(32), SECP256K1_ORDER.to_bytes(32, "big")])
def test_eth_keyfile_holding_no_secp256k1_key_is_refused(secret: bytes) -> None:
    params = {"dklen": 32, "c": 16, "prf": "hmac-sha256", "salt": os.urandom(16).hex()}
    with pytest.raises(KeystoreError, match="secp256k1"):
        decrypt_eth_account(web3_keyfile(secret, "pbkdf2", params), PASSWORD)


@pytest.mark.slow
@pytest.mark.parametrize("kdf", ["scrypt", "pbkdf2"])
def test_eth_account_default_keyfiles_are_within_the_bounds(kdf: str) -> None:
    """eth-account's own defaults (scrypt n = 2^18, r = 8, p = 1; PBKDF2 c = 10^6)."""
    keyfile = Account.encrypt(ACCOUNT.key, PASSWORD, kdf=kdf)  # type: ignore[arg-type]
    assert decrypt_eth_account(keyfile, PASSWORD) == ACCOUNT


def test_eth_keyfiles_get_the_same_default_cost_as_bls_keystores() -> None:
    keyfile = encrypt_eth_account(ACCOUNT, PASSWORD, kdf="pbkdf2")
    assert keyfile["crypto"]["kdfparams"]["c"] == 2**18


def test_writing_a_keyfile_the_reader_would_refuse_is_refused() -> None:
    for kdf, iterations in [("scrypt", 2**19), ("scrypt", 1000), ("pbkdf2", 2**23)]:
        with pytest.raises(KeystoreError):
            encrypt_eth_account(ACCOUNT, PASSWORD, kdf=kdf, iterations=iterations)  # type: ignore[arg-type]
        with pytest.raises(KeystoreError):
            encrypt_bls_key(KEY, PASSWORD, kdf=kdf, iterations=iterations)  # type: ignore[arg-type]


WEAK_PASSWORDS = [
    ("", "too weak"),
    ("short", "too weak"),
    ("1234567", "too weak"),
    (" " * 12, "too weak"),
    ("long enough\r", "control character"),  # a password file written on Windows
    ("tab\tin the middle", "control character"),
    ("nul\x00in the middle", "control character"),
    ("c1\x85in the middle", "control character"),
]


@pytest.mark.parametrize(("password", "reason"), WEAK_PASSWORDS)
def test_weak_passwords_are_refused_for_new_keys_unless_allowed(password: str, reason: str) -> None:
    with pytest.raises(WeakPassword, match=reason):
        encrypt_bls_key(KEY, password, **FAST)
    with pytest.raises(WeakPassword, match=reason):
        encrypt_eth_account(ACCOUNT, password, **FAST)
    keystore = encrypt_bls_key(KEY, password, allow_weak_password=True, **FAST)
    assert decrypt_bls_key(keystore, password) == KEY
    keyfile = encrypt_eth_account(ACCOUNT, password, allow_weak_password=True, **FAST)
    assert decrypt_eth_account(keyfile, password) == ACCOUNT


@pytest.mark.parametrize("password", ["abcdefgh", "пароль12", "correct horse"])
def test_passwords_of_eight_characters_are_accepted(password: str) -> None:
    check_password_strength(password)


def test_weak_password_refused_before_the_key_directory_is_made(tmp_path: Path) -> None:
    with pytest.raises(WeakPassword):
        ParticipantKeys.generate().save(tmp_path / "keys", "pw", **FAST)
    assert not (tmp_path / "keys").exists()
    keys = ParticipantKeys.generate()
    keys.save(tmp_path / "keys", "pw", allow_weak_password=True, **FAST)
    assert ParticipantKeys.load(tmp_path / "keys", "pw").bls_key == keys.bls_key


def test_password_that_is_not_unicode_text_is_a_keystore_error(
    bls_keystores: dict, eth_keyfiles: dict
) -> None:
    """An environment variable holding invalid UTF-8 reaches Python as lone surrogates."""
    password = "pass\udcffword"
    for attempt in (
        lambda: encrypt_bls_key(KEY, password, **FAST),
        lambda: encrypt_eth_account(ACCOUNT, password, allow_weak_password=True, **FAST),
        open_bls(bls_keystores["scrypt"], password),
        open_eth(eth_keyfiles["scrypt"], password),
    ):
        refused_quickly(attempt, "not valid Unicode")


def test_overwritten_key_files_become_private(tmp_path: Path) -> None:
    ParticipantKeys.generate().save(tmp_path, PASSWORD, **FAST)
    for name in ("eth-account.json", "bls-keystore.json"):
        (tmp_path / name).chmod(0o644)
    ParticipantKeys.generate().save(tmp_path, PASSWORD, overwrite=True, **FAST)
    for name in ("eth-account.json", "bls-keystore.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def keys_new(tmp_path: Path, keystore: Path, password: str, *extra: str) -> list[str]:
    (tmp_path / "pw").write_text(password + "\n")
    argv = ["participant", "keys", "new", "--keystore", str(keystore)]
    return [*argv, "--password-file", str(tmp_path / "pw"), *extra]


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and match in err, err


def test_cli_keys_new_refuses_a_weak_password_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keystore = tmp_path / "keys"
    one_line_error(capsys, keys_new(tmp_path, keystore, "pw"), "too weak")
    assert not keystore.exists()
    monkeypatch.setattr(keystore_module, "DEFAULT_SCRYPT_N", 2**10)  # keep the test fast
    assert main(keys_new(tmp_path, keystore, "pw", "--allow-weak-password")) == 0
    address = capsys.readouterr().out.split()[0]
    assert ParticipantKeys.load(keystore, "pw").account.address == address


def test_cli_keys_new_on_an_existing_file_or_unwritable_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "file"
    existing.write_text("precious")
    one_line_error(capsys, keys_new(tmp_path, existing, PASSWORD), "not a directory")
    assert existing.read_text() == "precious"
    one_line_error(capsys, keys_new(tmp_path, existing / "keys", PASSWORD), "cannot create")
    ParticipantKeys.generate().save(tmp_path / "made", PASSWORD, **FAST)
    one_line_error(capsys, keys_new(tmp_path, tmp_path / "made", PASSWORD), "exists")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        one_line_error(capsys, keys_new(tmp_path, locked / "keys", PASSWORD), "cannot create")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"9" * 5000, "not JSON"),  # over Python's integer-parsing limit
        (b"[" * 5000, "not JSON"),  # deeper than the parser's recursion limit
        (b"[]", "not a keystore object"),
        (b" " * (MAX_KEYSTORE_BYTES + 1), "not a keystore"),
    ],
)
def test_keystore_files_that_are_no_keystores(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "keystore.json"
    path.write_bytes(content)
    refused_quickly(lambda: read_keystore_json(path), match)
    with pytest.raises(ConfigError, match=match):
        account_from_keystore(path, PASSWORD)


def test_a_huge_keystore_or_key_file_is_not_read_whole(tmp_path: Path) -> None:
    huge = tmp_path / "huge"
    with huge.open("wb") as handle:
        handle.truncate(2**30)  # sparse: 1 GiB of zeros costs no disk
    refused_quickly(lambda: read_keystore_json(huge), "not a keystore")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="does not hold"):
        account_from_key_file(huge)
    assert time.perf_counter() - started < QUICK_SECONDS


def test_a_binary_key_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(ConfigError, match="does not hold"):
        account_from_key_file(path)


# Fuzzing: arbitrary JSON planted at each place of a valid keystore.

NEAR_VALID = [
    "scrypt", "pbkdf2", "hmac-sha256", "aes-128-ctr", "sha256", "", 3, 4, 32, 1024, 2**18,
    2**31 - 1, "00" * 16, "00" * 32, "00" * 96, "1d85ae20-35c5-4611-98e8-aa14a633906f",
]  # fmt: skip
ODD_JSON = [
    "1e400", "-1e400", "NaN", "Infinity", "-0", "9" * 5000, '"\\ud800"', '"\\u0000"',
    "[" * 300 + "]" * 300, '{"a":1,"a":2}', "{1:2}", "0x10",
]  # fmt: skip
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(NEAR_VALID),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
json_fragments = json_values.map(json.dumps) | st.sampled_from(ODD_JSON)

# Bounds low enough that any parameters the fuzzer gets accepted cost milliseconds; the
# real bounds are pinned one by one above.
CHEAP_BOUNDS = {
    "MAX_SCRYPT_N": 2**12,
    "MAX_SCRYPT_MEMORY": 2**22,
    "MAX_SCRYPT_BLOCK_MEMORY": 2**14,
    "MAX_SCRYPT_WORK": 2**15,
    "MAX_PBKDF2_ITERATIONS": 2**14,
}
HOLE = "\x00hole\x00"


def places(document: object, prefix: tuple = ()) -> list[tuple]:
    """Every value's path in ``document``, plus a new key in every object."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += places(value, (*prefix, key))
        found.append((*prefix, "extra"))
    return found


def planted(document: dict, path: tuple, fragment: str) -> str:
    if not path:
        return fragment
    text = json.dumps(edited(document, path, HOLE))
    return text.replace(json.dumps(HOLE), fragment)


def opens_or_refuses(
    directory: Path, text: str, password: str, decrypt: Callable[[dict, str], object]
) -> None:
    """Only the typed error may escape, and quickly."""
    path = directory / "keystore.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    started = time.perf_counter()
    try:
        with mock.patch.multiple(keystore_module, **CHEAP_BOUNDS):
            decrypt(read_keystore_json(path), password)
    except KeystoreError:
        pass
    assert time.perf_counter() - started < QUICK_SECONDS


FUZZ = settings(
    max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BLS_FUZZ_BASE = encrypt_bls_key(KEY, PASSWORD, kdf="scrypt", **FAST)
ETH_FUZZ_BASE = encrypt_eth_account(ACCOUNT, PASSWORD, kdf="pbkdf2", **FAST)


@FUZZ
@given(
    path=st.sampled_from(places(BLS_FUZZ_BASE)),
    fragment=json_fragments,
    password=st.just(PASSWORD) | st.text(max_size=10),
)
def test_fuzzed_bls_keystores_raise_only_keystore_error(
    tmp_path: Path, path: tuple, fragment: str, password: str
) -> None:
    opens_or_refuses(tmp_path, planted(BLS_FUZZ_BASE, path, fragment), password, decrypt_bls_key)


@FUZZ
@given(
    path=st.sampled_from(places(ETH_FUZZ_BASE)),
    fragment=json_fragments,
    password=st.just(PASSWORD) | st.text(max_size=10),
)
def test_fuzzed_eth_keyfiles_raise_only_keystore_error(
    tmp_path: Path, path: tuple, fragment: str, password: str
) -> None:
    text = planted(ETH_FUZZ_BASE, path, fragment)
    opens_or_refuses(tmp_path, text, password, decrypt_eth_account)

"""Ethereum keys are derived and signed by coincurve, with the pure-Python backend's bytes.

The expected values below were produced by eth-keys' pure-Python backend before coincurve
became a dependency: signatures are deterministic (RFC 6979), so the faster backend must
give every participant the same address and every transaction the same bytes.
"""

import hashlib

from eth_account import Account
from eth_keys import keys
from eth_keys.backends import CoinCurveECCBackend

PRIVATE_KEY = hashlib.sha256((3).to_bytes(4, "big")).digest()


def test_eth_keys_picks_coincurve_by_itself() -> None:
    assert isinstance(keys.PrivateKey(PRIVATE_KEY).backend, CoinCurveECCBackend)


def test_address_and_signatures_match_the_pure_python_backend() -> None:
    account = Account.from_key(PRIVATE_KEY)
    message_hash = hashlib.sha256(b"m" + PRIVATE_KEY).digest()
    transaction = account.sign_transaction(
        {
            "nonce": 3,
            "gasPrice": 10**9,
            "gas": 100_000,
            "to": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "value": 3,
            "data": b"\x12" * 3,
            "chainId": 31337,
        }
    )

    assert account.address == "0x9Eb66f217D465D09a79a13a818E86D1113608b68"
    assert keys.PrivateKey(PRIVATE_KEY).sign_msg_hash(message_hash).to_hex() == (
        "0x0b0a8fe89d6942b69c172ffe67fff8576976b2a2e70d673d5f6ce24a38a362d1"
        "551834b861c4f64f80a0b44fec726a3fbfb66f1e56467b806acbae8b037e1f3901"
    )
    assert transaction.raw_transaction.hex() == (
        "f86903843b9aca00830186a0945fbdb2315678afecb367f032d93f642f64180aa3038312121282f4f6"
        "a0a7d6a4949b2287a27faff3a0d7cde0d97c3b5154ab6bbf8e9c0aa79abc2490d8"
        "a04b3116e8c39e2692e536bfbec5577e1da9e6439264db563c209e5e73fc025bd4"
    )

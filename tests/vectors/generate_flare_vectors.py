"""Regenerate tests/vectors/flare_crypto_vectors.json (run from the repository root).

The file is Flare's own known-answer set for the Solidity side: keys, proofs of possession,
VRF inputs, proofs and outputs, with the intermediate hash-to-field values. tests/
test_crypto_vrf.py and test_crypto_bls.py re-derive every value with Flare's code and with
py_ecc independently, so a regenerated file is only accepted if both still agree.
"""

import json
from pathlib import Path

from flare.crypto import POP_DST, SecretKey, encode_g1, hash_to_field_fp, hash_to_g1, vrf
from flare.crypto.bls import prove_possession

OUT = Path(__file__).with_name("flare_crypto_vectors.json")
ANVIL_ACCOUNT_1 = bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8")
ANVIL_FIRST_CONTRACT = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")


def _hash_steps(message: bytes, dst: bytes) -> dict[str, str]:
    u0, u1 = hash_to_field_fp(message, dst)
    return {"u0": f"{u0:096x}", "u1": f"{u1:096x}", "H": encode_g1(hash_to_g1(message, dst)).hex()}


def main() -> None:
    keys = []
    for label in (b"flare-test-key-0", b"flare-test-key-1"):
        seed = label.ljust(32, b"\x00")
        key = SecretKey.from_seed(seed)
        keys.append(
            {
                "seed": seed.hex(),
                "secret_key": key.to_bytes().hex(),
                "public_key": key.public_key().hex(),
            }
        )
    first = SecretKey.from_seed(bytes.fromhex(keys[0]["seed"]))
    pops = [
        {
            "key": 0,
            "address": ANVIL_ACCOUNT_1.hex(),
            **_hash_steps(ANVIL_ACCOUNT_1, POP_DST),
            "proof": prove_possession(first, ANVIL_ACCOUNT_1).hex(),
        }
    ]
    draws = []
    for chain_id, task_id, round_, attempt in ((31337, 1, 0, 0), (31337, 1, 2, 1), (1, 7, 3, 0)):
        seed = bytes([round_ + 1]) * 32
        message = vrf.vrf_input(chain_id, ANVIL_FIRST_CONTRACT, task_id, round_, attempt, seed)
        proof = vrf.prove(first, message)
        draws.append(
            {
                "key": 0,
                "chain_id": chain_id,
                "contract": ANVIL_FIRST_CONTRACT.hex(),
                "task_id": task_id,
                "round": round_,
                "attempt": attempt,
                "seed": seed.hex(),
                "input": message.hex(),
                **_hash_steps(message, vrf.VRF_DST),
                "proof": proof.hex(),
                "output": vrf.output(proof).hex(),
            }
        )
    document = {
        "note": "Flare known-answer vectors; see tests/vectors/generate_flare_vectors.py",
        "pop_dst": POP_DST.decode(),
        "vrf_dst": vrf.VRF_DST.decode(),
        "keys": keys,
        "proofs_of_possession": pops,
        "vrf": draws,
    }
    OUT.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

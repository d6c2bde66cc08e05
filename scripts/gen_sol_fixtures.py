"""Write the Solidity tests' fixtures (contracts/test/fixtures/*.json) from Flare's Python side.

Run from the repository root: ``.venv/bin/python scripts/gen_sol_fixtures.py``. The output is
deterministic; ``--check`` exits 1 if the checked-in files differ from what it would write.

- ``rfc9380.json``: RFC 9380 J.9.1 (hash to G1) and K.1 (expand_message_xmd) vectors,
  re-encoded from tests/vectors/ in the EIP-2537 layout the contracts use (``0x`` hex).
- ``flare.json``: keys, proofs of possession, VRF draws (the known answers of
  tests/vectors/flare_crypto_vectors.json plus more), signatures over messages of many
  lengths and domain tags, and sortition cases, all computed by ``flare.crypto``.
"""

import argparse
import json
import sys
from pathlib import Path

from flare.crypto import POP_DST, SecretKey, encode_g1, hash_to_field_fp, hash_to_g1, sign, vrf
from flare.crypto.bls import verify
from flare.crypto.identity import (
    possession_message,
    prove_task_possession,
    verify_task_possession,
)

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors"
FIXTURES = ROOT / "contracts" / "test" / "fixtures"

SIGNATURE_DST = b"FLARE-SOLIDITY-FIXTURES_BLS12381G1_XMD:SHA-256_SSWU_RO_"
MESSAGE_LENGTHS = (0, 1, 31, 32, 33, 63, 64, 65, 136, 192, 255, 256, 1000)
ACCOUNTS = (
    bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8"),
    bytes.fromhex("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
    bytes.fromhex("90F79bf6EB2c4f870365E785982E1f101E93b906"),
)
CONTRACTS = (
    bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3"),
    bytes.fromhex("e7f1725E7734CE288F8367e1Bb143E90bb3F0512"),
)
UINT256_MAX = (1 << 256) - 1


def hexed(data: bytes) -> str:
    return "0x" + data.hex()


def fp(value: int) -> bytes:
    """The 64-byte EIP-2537 encoding of a field element."""
    return value.to_bytes(64, "big")


def hash_fields(message: bytes, dst: bytes) -> bytes:
    u0, u1 = hash_to_field_fp(message, dst)
    return fp(u0) + fp(u1)


def rfc9380() -> dict:
    j91 = json.loads((VECTORS / "rfc9380_j91_bls12381g1_xmd_sha256_sswu_ro.json").read_text())
    k1 = json.loads((VECTORS / "rfc9380_k1_expand_message_xmd_sha256.json").read_text())
    hash_vectors = []
    for vector in j91["vectors"]:
        u = fp(int(vector["u[0]"], 16)) + fp(int(vector["u[1]"], 16))
        point = fp(int(vector["P.x"], 16)) + fp(int(vector["P.y"], 16))
        hash_vectors.append(
            {"msg": hexed(vector["msg"].encode()), "u": hexed(u), "point": hexed(point)}
        )
    expand_vectors = [
        {
            "msg": hexed(vector["msg"].encode()),
            "length": vector["len_in_bytes"],
            "uniform": "0x" + vector["uniform_bytes"],
        }
        for vector in k1["vectors"]
    ]
    return {
        "source": "tests/vectors/rfc9380_*.json (RFC 9380 J.9.1 and K.1), EIP-2537 layout",
        "hashToG1": {"dst": hexed(j91["dst"].encode()), "vectors": hash_vectors},
        "expand": {"dst": hexed(k1["dst"].encode()), "vectors": expand_vectors},
    }


def key(index: int) -> SecretKey:
    return SecretKey.from_seed(f"flare-test-key-{index}".encode().ljust(32, b"\x00"))


def draw(
    key_index: int,
    chain_id: int,
    contract: bytes,
    task_id: int,
    round_: int,
    attempt: int,
    seed: bytes,
) -> dict:
    message = vrf.vrf_input(chain_id, contract, task_id, round_, attempt, seed)
    proof = vrf.prove(key(key_index), message)
    output = vrf.verify(key(key_index).public_key(), message, proof)
    return {
        "key": key_index,
        "chainId": chain_id,
        "verifier": hexed(contract),
        "taskId": task_id,
        "round": round_,
        "attempt": attempt,
        "seed": hexed(seed),
        "input": hexed(message),
        "point": hexed(encode_g1(hash_to_g1(message, vrf.VRF_DST))),
        "proof": hexed(proof),
        "output": hexed(output),
    }


def flare() -> dict:
    known = json.loads((VECTORS / "flare_crypto_vectors.json").read_text())
    keys = [key(index) for index in range(4)]
    for index, vector in enumerate(known["keys"]):
        assert keys[index].public_key().hex() == vector["public_key"], "key derivation drifted"

    possession = []
    for index, account in enumerate(ACCOUNTS):
        chain_id = 31337 if index % 2 == 0 else 11155111
        contract = CONTRACTS[index % 2]
        task_id = index + 1
        message = possession_message(chain_id, contract, task_id, account)
        proof = prove_task_possession(keys[index], message)
        assert verify_task_possession(keys[index].public_key(), message, proof)
        possession.append(
            {
                "key": index,
                "chainId": chain_id,
                "verifier": hexed(contract),
                "taskId": task_id,
                "account": hexed(account),
                "message": hexed(message),
                "point": hexed(encode_g1(hash_to_g1(message, POP_DST))),
                "proof": hexed(proof),
            }
        )

    draws = [
        draw(
            v["key"],
            v["chain_id"],
            bytes.fromhex(v["contract"]),
            v["task_id"],
            v["round"],
            v["attempt"],
            bytes.fromhex(v["seed"]),
        )
        for v in known["vrf"]
    ]
    for ours, theirs in zip(draws, known["vrf"], strict=True):
        assert ours["proof"][2:] == theirs["proof"] and ours["output"][2:] == theirs["output"]
    for index in range(6):
        draws.append(
            draw(
                index % 4,
                31337 if index % 2 else 11155111,
                CONTRACTS[index % 2],
                index + 2,
                index * 3 + 1,
                index % 3,
                bytes([0xA0 + index]) * 32,
            )
        )

    signatures = []
    for index, length in enumerate(MESSAGE_LENGTHS):
        message = bytes((7 * i + length) % 256 for i in range(length))
        dst = SIGNATURE_DST
        if index == 1:
            dst = b"D"
        elif index == 2:
            dst = bytes(range(1, 256))
        signature = sign(keys[index % 4], message, dst)
        assert verify(keys[index % 4].public_key(), message, signature, dst)
        signatures.append(
            {
                "key": index % 4,
                "dst": hexed(dst),
                "msg": hexed(message),
                "point": hexed(encode_g1(hash_to_g1(message, dst))),
                "u": hexed(hash_fields(message, dst)),
                "signature": hexed(signature),
            }
        )

    sortition = []
    outputs = [0, 1, UINT256_MAX, 1 << 255, (1 << 255) - 1]
    outputs += [int(d["output"], 16) for d in draws[:3]]
    for k, n in (
        (1, 1),
        (1, 2),
        (3, 10),
        (10, 3),
        (0, 5),
        (7, 1000),
        (1, UINT256_MAX),
        (UINT256_MAX, UINT256_MAX),
        (UINT256_MAX - 1, UINT256_MAX),
    ):
        threshold = vrf.seat_threshold(k, n)
        for output in [*outputs, threshold - 1, threshold, threshold + 1]:
            if 0 <= output <= UINT256_MAX:
                granted = vrf.seat_granted(output.to_bytes(32, "big"), k, n)
                sortition.append(
                    {
                        "output": hexed(output.to_bytes(32, "big")),
                        "k": str(k),
                        "n": str(n),
                        "granted": granted,
                    }
                )

    return {
        "source": "scripts/gen_sol_fixtures.py (flare.crypto)",
        "popDst": hexed(POP_DST),
        "vrfDst": hexed(vrf.VRF_DST),
        "keys": [hexed(k.public_key()) for k in keys],
        "possession": possession,
        "vrf": draws,
        "signatures": signatures,
        "sortition": sortition,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the fixtures are stale")
    args = parser.parse_args()
    stale = []
    for name, document in (("rfc9380.json", rfc9380()), ("flare.json", flare())):
        path = FIXTURES / name
        text = json.dumps(document, indent=2) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale fixtures (rerun scripts/gen_sol_fixtures.py):", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pairings: arkworks (py-arkworks-bls12381) against blst (pyblst), side by side, one process.

Why: every registration verifies a proof of possession and every seat claim a VRF proof,
both ``e(sig, g2) == e(H(m), pk)`` with signatures in G1 and keys in G2; a 1,000-client
protocol run spent seconds on them, and as long again deriving keys and signing. Flare moved
verifying, then signing and key derivation, to blst (``flare/crypto/pairing.py``,
``flare/crypto/bls.py``); this measures that step by step on identical inputs.

Each row runs its two sides in alternating turns (arkworks first on even turns, blst first on
odd ones) so the machine's load hits both alike; a turn times ``--calls`` calls on distinct
inputs, and the table gives each side's median microseconds per call over ``--turns`` turns
and their ratio. The end-to-end rows are bytes in, answer out: "before" is the arkworks code
the verifier used (``decode_g2``, ``decode_g1``, arkworks' hash to G1, cached, a two-pair
``pairing_check``), "after" is ``flare.crypto.bls.verify`` and ``flare.crypto.vrf.verify``;
for signing and keys, "before" is arkworks' hash, scalar multiplication and EIP-2537 encoding,
"after" is ``flare.crypto.bls.sign`` and ``SecretKey.public_key`` (blst's point, its ``y``
rebuilt by arkworks from the compressed form), the same bytes.

The batched row checks ``n`` proofs of possession at once: with coefficients ``c_i`` it tests
``e(sum c_i sig_i, g2) == prod e(c_i H(m_i), pk_i)``, one Miller loop per proof plus one and a
single final exponentiation for the batch. The ``c_i`` are 128-bit, taken from SHA-256 over all
the batch's keys, messages and proofs: the submitter fixes its inputs before the coefficients
exist, so a batch holding a bad proof (each signature already decoded into the prime-order
subgroup) passes only if its error terms cancel under coefficients it cannot choose, with
probability about 2^-128 per attempt. A verifier that needs per-proof answers checks a failed
batch proof by proof.

Run::

    .venv/bin/python benchmarks/bench_pairing.py     # writes docs/bench/pairing.{md,json}
"""

import argparse
import functools
import hashlib
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyblst
from common import OUTPUT_DIR, environment, environment_line, write_results
from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

from flare.crypto import (
    SecretKey,
    decode_g1,
    decode_g2,
    encode_g1,
    encode_g2,
    sign,
    vrf,
)
from flare.crypto.bls import POP_DST, verify
from flare.crypto.pairing import (
    PairingCheck,
    _blst_g1,
    _blst_g2,
    _native_check,
    _recent_hashed_message,
    _recent_public_key_point,
    public_key_point,
    signature_point,
)
from flare.crypto.vrf import VRF_DST

COEFFICIENT_BYTES = 16

arkworks_hash = functools.lru_cache(maxsize=256)(G1Point.hash_to_curve)
"""arkworks' hash to G1 with the cache the code before blst kept (the blst side keeps one)."""


class Inputs:
    """``count`` keys with a proof of possession each (distinct messages) and a VRF proof each
    (one shared round input), as bytes and as each library's decoded points."""

    def __init__(self, count: int) -> None:
        keys = [SecretKey.from_seed(hashlib.sha256(b"bench %d" % i).digest()) for i in range(count)]
        self.secret_keys = [key.to_int() for key in keys]
        self.public_keys = [key.public_key() for key in keys]
        self.messages = [hashlib.sha256(b"registrant %d" % i).digest()[:20] for i in range(count)]
        self.proofs = [sign(key, m, POP_DST) for key, m in zip(keys, self.messages, strict=True)]
        self.round_input = vrf.vrf_input(1, bytes(20), 1, 1, 0, bytes(32))
        self.vrf_proofs = [vrf.prove(key, self.round_input) for key in keys]
        self.compressed_keys = [decode_g2(pk).to_compressed_bytes() for pk in self.public_keys]
        self.compressed_proofs = [decode_g1(p).to_compressed_bytes() for p in self.proofs]
        self.arkworks_keys = [decode_g2(pk) for pk in self.public_keys]
        self.arkworks_proofs = [decode_g1(p) for p in self.proofs]
        self.arkworks_hashes = [G1Point.hash_to_curve(m, POP_DST) for m in self.messages]
        self.blst_keys = [public_key_point(pk) for pk in self.public_keys]
        self.blst_proofs = [signature_point(p) for p in self.proofs]
        self.blst_hashes = [pyblst.BlstP1Element.hash_to_group(m, POP_DST) for m in self.messages]
        self.scalars = [int.from_bytes(hashlib.sha256(m).digest(), "big") for m in self.messages]
        self.arkworks_vrf_proofs = [decode_g1(p) for p in self.vrf_proofs]
        self.arkworks_round_hash = G1Point.hash_to_curve(self.round_input, vrf.VRF_DST)
        self.native_keys = [_blst_g2(pk) for pk in self.public_keys]
        self.native_vrf_proofs = [_blst_g1(p) for p in self.vrf_proofs]


def arkworks_verify(public_key: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
    """The verifier before blst, step for step."""
    key = decode_g2(public_key)
    point = decode_g1(signature)
    return GT.pairing_check([point, arkworks_hash(message, dst)], [-G2Point(), key])


def arkworks_sign(scalar: int, message: bytes, dst: bytes) -> bytes:
    """Signing before blst: arkworks' hash to G1, multiplication and encoding."""
    return encode_g1(arkworks_hash(message, dst) * Scalar(scalar))


def arkworks_public_key(scalar: int) -> bytes:
    """Key derivation before blst."""
    return encode_g2(G2Point() * Scalar(scalar))


def batch_coefficients(inputs: Inputs, indices: range) -> list[int]:
    transcript = hashlib.sha256()
    for i in indices:
        transcript.update(inputs.public_keys[i] + inputs.messages[i] + inputs.proofs[i])
    seed = transcript.digest()
    return [
        int.from_bytes(
            hashlib.sha256(seed + i.to_bytes(4, "big")).digest()[:COEFFICIENT_BYTES], "big"
        )
        for i in range(len(indices))
    ]


def arkworks_batch(inputs: Inputs, indices: range) -> bool:
    coefficients = [Scalar(c) for c in batch_coefficients(inputs, indices)]
    combined = G1Point.identity()
    left, right = [], []
    for c, i in zip(coefficients, indices, strict=True):
        combined = combined + inputs.arkworks_proofs[i] * c
        left.append(inputs.arkworks_hashes[i] * c)
        right.append(inputs.arkworks_keys[i])
    return GT.pairing_check([combined, *left], [-G2Point(), *right])


def blst_batch(inputs: Inputs, indices: range, generator: pyblst.BlstP2Element) -> bool:
    coefficients = batch_coefficients(inputs, indices)
    combined = None
    product = None
    for c, i in zip(coefficients, indices, strict=True):
        weighted = inputs.blst_proofs[i].scalar_mul(c)
        combined = weighted if combined is None else combined + weighted
        loop = pyblst.miller_loop(inputs.blst_hashes[i].scalar_mul(c), inputs.blst_keys[i])
        product = loop if product is None else product * loop
    return pyblst.final_verify(pyblst.miller_loop(combined, generator), product)


REGISTERED_VRF_ROW = "VRF verify, keys seen before (a seat claim after registration)"
"""The one row that starts with the previous row's keys known: parsed, their lines kept."""

Row = tuple[str, Callable[[int], object], Callable[[int], object]]
"""A measurement: its label, then the arkworks and blst call on input ``i``."""


def rows(inputs: Inputs, batch: int) -> list[Row]:
    g2 = pyblst.BlstP2Element.uncompress(G2Point().to_compressed_bytes())
    neg_g2 = -G2Point()
    count = len(inputs.public_keys)
    batches = [range(start, start + batch) for start in range(0, count - batch + 1, batch)]
    return [
        (
            "pairing check, decoded points",
            lambda i: GT.pairing_check(
                [inputs.arkworks_proofs[i], inputs.arkworks_hashes[i]],
                [neg_g2, inputs.arkworks_keys[i]],
            ),
            lambda i: pyblst.final_verify(
                pyblst.miller_loop(inputs.blst_proofs[i], g2),
                pyblst.miller_loop(inputs.blst_hashes[i], inputs.blst_keys[i]),
            ),
        ),
        *native_rows(inputs),
        (
            "G1 decompress + subgroup check",
            lambda i: G1Point.from_compressed_bytes(inputs.compressed_proofs[i]),
            lambda i: pyblst.BlstP1Element.uncompress(inputs.compressed_proofs[i]),
        ),
        (
            "G2 decompress + subgroup check",
            lambda i: G2Point.from_compressed_bytes(inputs.compressed_keys[i]),
            lambda i: pyblst.BlstP2Element.uncompress(inputs.compressed_keys[i]),
        ),
        (
            "G1 from EIP-2537 bytes (Flare's strict decode)",
            lambda i: decode_g1(inputs.proofs[i]),
            lambda i: signature_point(inputs.proofs[i]),
        ),
        (
            "G2 from EIP-2537 bytes (Flare's strict decode)",
            lambda i: decode_g2(inputs.public_keys[i]),
            lambda i: public_key_point(inputs.public_keys[i]),
        ),
        (
            "G1 scalar multiplication (256-bit)",
            lambda i: inputs.arkworks_hashes[i] * Scalar(inputs.scalars[i]),
            lambda i: inputs.blst_hashes[i].scalar_mul(inputs.scalars[i]),
        ),
        (
            "G2 scalar multiplication (256-bit)",
            lambda i: inputs.arkworks_keys[i] * Scalar(inputs.scalars[i]),
            lambda i: inputs.blst_keys[i].scalar_mul(inputs.scalars[i]),
        ),
        (
            "hash to G1 (RFC 9380, Flare's PoP tag)",
            lambda i: G1Point.hash_to_curve(inputs.messages[i], POP_DST),
            lambda i: pyblst.BlstP1Element.hash_to_group(inputs.messages[i], POP_DST),
        ),
        (
            "PoP sign, bytes out (distinct messages)",
            lambda i: arkworks_sign(inputs.secret_keys[i], inputs.messages[i], POP_DST),
            lambda i: sign(SecretKey(inputs.secret_keys[i]), inputs.messages[i], POP_DST),
        ),
        (
            "VRF prove, bytes out (one round input)",
            lambda i: arkworks_sign(inputs.secret_keys[i], inputs.round_input, vrf.VRF_DST),
            lambda i: vrf.prove(SecretKey(inputs.secret_keys[i]), inputs.round_input),
        ),
        (
            "public key from secret key, bytes out",
            lambda i: arkworks_public_key(inputs.secret_keys[i]),
            lambda i: SecretKey(inputs.secret_keys[i]).public_key(),
        ),
        (
            "PoP verify, bytes to answer (distinct messages)",
            lambda i: arkworks_verify(
                inputs.public_keys[i], inputs.messages[i], inputs.proofs[i], POP_DST
            ),
            lambda i: verify(inputs.public_keys[i], inputs.messages[i], inputs.proofs[i], POP_DST),
        ),
        (
            "VRF verify, bytes to answer (one round input)",
            lambda i: arkworks_verify(
                inputs.public_keys[i], inputs.round_input, inputs.vrf_proofs[i], vrf.VRF_DST
            ),
            lambda i: vrf.verify(inputs.public_keys[i], inputs.round_input, inputs.vrf_proofs[i]),
        ),
        (
            REGISTERED_VRF_ROW,
            lambda i: arkworks_verify(
                inputs.public_keys[i], inputs.round_input, inputs.vrf_proofs[i], vrf.VRF_DST
            ),
            lambda i: vrf.verify(inputs.public_keys[i], inputs.round_input, inputs.vrf_proofs[i]),
        ),
        (
            f"PoP pairing part, batched by {batch} (per proof)",
            lambda i: arkworks_batch(inputs, batches[i % len(batches)]),
            lambda i: blst_batch(inputs, batches[i % len(batches)], g2),
        ),
    ]


def native_rows(inputs: Inputs) -> list[Row]:
    """The pairing check of a seat claim by a registered key, its lines kept (``native/``),
    where the native check is built: arkworks' check of the same decoded points beside it."""
    if PairingCheck is None:
        return []
    check = PairingCheck(len(inputs.public_keys))
    for i in range(len(inputs.public_keys)):  # every key's lines computed, as after registration
        check.verify(
            inputs.native_keys[i], inputs.round_input, VRF_DST, inputs.native_vrf_proofs[i]
        )
    neg_g2 = -G2Point()
    return [
        (
            "pairing check, VRF proof of a registered key (native/, lines kept)",
            lambda i: GT.pairing_check(
                [inputs.arkworks_vrf_proofs[i], inputs.arkworks_round_hash],
                [neg_g2, inputs.arkworks_keys[i]],
            ),
            lambda i: check.verify(
                inputs.native_keys[i], inputs.round_input, VRF_DST, inputs.native_vrf_proofs[i]
            ),
        )
    ]


def timed_turn(call: Callable[[int], object], indices: Sequence[int]) -> float:
    start = time.perf_counter()
    for i in indices:
        call(i)
    return (time.perf_counter() - start) / len(indices)


def measure(row: Row, count: int, turns: int, calls: int, batch: int) -> dict[str, Any]:
    label, arkworks_call, blst_call = row
    batched = "batched" in label
    per_turn = max(1, calls // batch) if batched else calls
    seconds: dict[str, list[float]] = {"arkworks": [], "blst": []}
    for turn in range(turns):
        # Distinct inputs per turn, so no cache serves a later turn what an earlier one hashed.
        indices = [(turn * per_turn + k) % count for k in range(per_turn)]
        order = [("arkworks", arkworks_call), ("blst", blst_call)]
        for side, call in order if turn % 2 == 0 else order[::-1]:
            elapsed = timed_turn(call, indices)
            seconds[side].append(elapsed / batch if batched else elapsed)
    arkworks_us = statistics.median(seconds["arkworks"]) * 1e6
    blst_us = statistics.median(seconds["blst"]) * 1e6
    return {
        "operation": label,
        "arkworks_us": arkworks_us,
        "blst_us": blst_us,
        "speedup": arkworks_us / blst_us,
    }


def check_batches_agree(inputs: Inputs, batch: int) -> None:
    """Both batched checks accept the valid batch and refuse it with one proof swapped."""
    g2 = pyblst.BlstP2Element.uncompress(G2Point().to_compressed_bytes())
    indices = range(batch)
    assert arkworks_batch(inputs, indices) and blst_batch(inputs, indices, g2)
    swapped = Inputs.__new__(Inputs)
    swapped.__dict__.update(inputs.__dict__)
    for name in ("proofs", "arkworks_proofs", "blst_proofs"):
        points = list(getattr(inputs, name))
        points[0], points[1] = points[1], points[0]
        setattr(swapped, name, points)
    assert not arkworks_batch(swapped, indices) and not blst_batch(swapped, indices, g2)


def markdown(results: list[dict[str, Any]], env: dict[str, Any], args: argparse.Namespace) -> str:
    by_label = {r["operation"]: r for r in results}
    pop = by_label["PoP verify, bytes to answer (distinct messages)"]
    vrf_row = by_label["VRF verify, bytes to answer (one round input)"]
    pop_sign = by_label["PoP sign, bytes out (distinct messages)"]
    lines = [
        "# Pairings: arkworks against blst",
        "",
        "Produced by `.venv/bin/python benchmarks/bench_pairing.py`. " + environment_line(env),
        "",
        f"Each row ran {args.turns} alternating turns of {args.calls} calls per side on "
        f"distinct inputs ({args.inputs} keys); microseconds per call are medians over turns. "
        "py-arkworks-bls12381 0.5.0 against pyblst 0.3.15, both single-threaded. "
        + (
            "The blst column's verify rows check the pairing through `native/` (Rust, blst; "
            "the Miller-loop lines of `g2` and of each key kept), built here; the others are "
            "pyblst's."
            if env.get("native_pairing")
            else "`native/` is not built here: every blst row is pyblst's."
        ),
        "",
        "| operation | arkworks µs | blst µs | arkworks / blst |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['operation']} | {r['arkworks_us']:.0f} | {r['blst_us']:.0f} "
            f"| {r['speedup']:.2f}× |"
        )
    lines += [
        "",
        f"Verifications per second, bytes to answer: PoP {1e6 / pop['arkworks_us']:.0f} → "
        f"{1e6 / pop['blst_us']:.0f}, VRF {1e6 / vrf_row['arkworks_us']:.0f} → "
        f"{1e6 / vrf_row['blst_us']:.0f}; signatures per second, bytes out: PoP "
        f"{1e6 / pop_sign['arkworks_us']:.0f} → {1e6 / pop_sign['blst_us']:.0f}. "
        "Every row starts with the caches empty and no input "
        "repeats, so keys are parsed afresh; the VRF rows' hash to G1 is cached on both sides "
        "after its first call (every claim of a round attempt signs the same input), the PoP "
        "rows hash every message afresh. A key checked again (a seat claim after "
        "registration) is not parsed again on the blst side, nor are its lines computed "
        "again in `native/`: the row of keys seen before measures that.",
        "",
        "The batched row is the pairing part only, on decoded points and hashes: it is what "
        "a verifier with many proofs at hand (registrations arriving in one block) could save. "
        "The chains verify one registration per transaction, so Flare does not batch today; "
        "the coefficients and their soundness are in the script's docstring.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=320, help="distinct keys and proofs")
    parser.add_argument("--turns", type=int, default=9, help="alternating turns per side")
    parser.add_argument("--calls", type=int, default=30, help="calls per turn")
    parser.add_argument("--batch", type=int, default=32, help="proofs per batched check")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args()
    env = environment() | {"native_pairing": _native_check() is not None}
    inputs = Inputs(args.inputs)
    check_batches_agree(inputs, args.batch)
    results = []
    for row in rows(inputs, args.batch):
        # Building the inputs filled the caches of both sides; every row starts cold but
        # the one that measures keys already seen.
        if row[0] != REGISTERED_VRF_ROW:
            for cache in (arkworks_hash, _recent_hashed_message, _recent_public_key_point):
                cache.cache_clear()
            _native_check.cache_clear()  # and the native check's kept lines with it
        result = measure(row, args.inputs, args.turns, args.calls, args.batch)
        print(
            f"{result['operation']:52s} {result['arkworks_us']:8.0f} µs {result['blst_us']:8.0f}"
            f" µs {result['speedup']:6.2f}×",
            flush=True,
        )
        results.append(result)
    data = {"environment": env, "arguments": vars(args) | {"output_dir": None}, "rows": results}
    write_results("pairing", markdown(results, env, args), data, args.output_dir)


if __name__ == "__main__":
    main()

"""``bench_pairing.py``: its two batched checks agree with each other and with one-by-one
verification, and every verifying row accepts valid inputs on both sides."""

import argparse

import pytest
from bench_pairing import Inputs, arkworks_batch, check_batches_agree, markdown, measure, rows

from flare.crypto.bls import POP_DST, verify

INPUTS, BATCH = 8, 4


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return Inputs(INPUTS)


def test_batched_checks_accept_a_valid_batch_and_refuse_a_swapped_proof(inputs: Inputs) -> None:
    check_batches_agree(inputs, BATCH)
    assert all(
        verify(inputs.public_keys[i], inputs.messages[i], inputs.proofs[i], POP_DST)
        for i in range(INPUTS)
    )
    assert arkworks_batch(inputs, range(BATCH, 2 * BATCH))


def test_every_verifying_row_accepts_valid_inputs_on_both_sides(inputs: Inputs) -> None:
    for label, arkworks_call, blst_call in rows(inputs, BATCH):
        if "pairing" in label or "verify" in label:
            # vrf.verify answers with the output, the others with True
            assert arkworks_call(1) is True and blst_call(1), label


def test_every_signing_row_gives_the_same_bytes_on_both_sides(inputs: Inputs) -> None:
    signing = [row for row in rows(inputs, BATCH) if "bytes out" in row[0]]
    assert len(signing) == 3
    for label, arkworks_call, blst_call in signing:
        for i in range(INPUTS):
            assert arkworks_call(i) == blst_call(i), label


def test_the_report_gives_both_rates(inputs: Inputs) -> None:
    results = [measure(row, INPUTS, turns=2, calls=2, batch=BATCH) for row in rows(inputs, BATCH)]
    assert all(r["arkworks_us"] > 0 and r["blst_us"] > 0 for r in results)
    environment = {
        "date": "today",
        "revision": "abc",
        "python": "3.11",
        "torch": "-",
        "numpy": "-",
        "cpus": 2,
        "machine": "x86_64",
        "load_average_1min": 0.0,
    }
    arguments = argparse.Namespace(turns=2, calls=2, inputs=INPUTS)
    report = markdown(results, environment, arguments)
    assert "PoP" in report and "VRF" in report and report.count("\n| ") == len(results) + 1

"""The low-rank rebuild is the exact product rounded once: factors on their grid, or refused.

Every committee member must rebuild a stranger's update to the same bits. The rebuild is
one BLAS product, which may sum in any order; it is exact because the factors lie on a
fixed-point grid (``lowrank``) or are int8 codes times scale products on one grid
(``lowrank-q8``). These tests hold the rebuild to the exact rational value computed in
Python integers, refuse factors off their grid, and compare thread counts.
"""

import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from threadpoolctl import threadpool_limits

from flare.compression import MalformedUpdateError, UpdateBinding, decode_update, make_codec
from flare.compression.decode import UPDATE_DTYPES
from flare.compression.rebuild import (
    factor_bits,
    grid_step,
    low_rank_matrix,
    onto_grid,
    quantised_matrix,
)
from flare.compression.wire import load_container_tensors, read_container_header, write_container

BINDING = UpdateBinding("0xc1", "task-7", 3, 1, "bafkreigh2akiscaildc", 120)


def exactly_rounded(p: np.ndarray, q: np.ndarray, weights=None) -> np.ndarray:
    """``sum_k p[:,k] q[:,k] weights[k]`` in exact rationals, rounded once to float32.

    Each exact sum here is an integer multiple of a power of two below 2^53 of them, so
    float64 holds it exactly and one rounding to float32 follows."""
    rank = p.shape[1]
    weights = [Fraction(1)] * rank if weights is None else [Fraction(w) for w in weights]
    result = np.empty((p.shape[0], q.shape[0]), dtype=np.float32)
    for i in range(p.shape[0]):
        for j in range(q.shape[0]):
            total = sum(
                Fraction(float(p[i, k])) * Fraction(float(q[j, k])) * weights[k]
                for k in range(rank)
            )
            assert Fraction(float(total)) == total  # float64 holds it exactly
            result[i, j] = np.float32(float(total))
    return result


finite_factors = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 40)).flatmap(
    lambda shape: st.tuples(
        hnp.arrays(np.float64, (shape[0], shape[2]), elements=st.floats(-1e6, 1e6)),
        hnp.arrays(np.float64, (shape[1], shape[2]), elements=st.floats(-1e-3, 1e-3)),
    )
)


@settings(max_examples=60, deadline=None)
@given(finite_factors)
def test_factors_rounded_onto_their_grid_rebuild_to_the_exact_product(factors):
    p, q = factors
    bits = factor_bits(p.shape[1])
    p_grid, q_grid = onto_grid(p, bits).stored, onto_grid(q, bits).stored
    for original, snapped in ((p, p_grid), (q, q_grid)):
        if np.abs(original).max() >= np.finfo(np.float32).tiny:
            # half a step at most, of the grid the decoder derives from what travels
            step = grid_step(float(np.abs(snapped).max()), bits)
            assert np.abs(snapped - original).max() <= step / 2
    assert low_rank_matrix(p_grid, q_grid).tobytes() == exactly_rounded(p_grid, q_grid).tobytes()


def test_the_grid_narrows_past_rank_32_so_every_partial_sum_stays_exact():
    assert [factor_bits(rank) for rank in (1, 2, 32, 33, 64, 1024)] == [24, 24, 24, 23, 23, 21]
    for rank in (1, 32, 33, 1024):
        assert rank * 2 ** (2 * factor_bits(rank)) <= 2**53


def test_a_carried_maximum_moves_the_factor_onto_the_coarser_grid():
    # 2^24 - 0.5 steps rounds up to 2^24: the decoder would then derive a doubled step
    factor = np.array([[1.0 - 2.0**-25], [2.0**-24 * 3]])
    snapped = onto_grid(factor, 24).stored
    assert snapped[:, 0].tolist() == [1.0, 2.0**-22]  # 1.5 steps of 2^-23 round to 2
    assert (
        low_rank_matrix(snapped, snapped).tobytes() == exactly_rounded(snapped, snapped).tobytes()
    )


def test_a_factor_below_float32s_normal_range_travels_as_zeros():
    assert not onto_grid(np.full((3, 1), 1e-39), 24).stored.any()


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda rank: st.tuples(
            hnp.arrays(np.int8, (5, rank), elements=st.integers(-127, 127)),
            hnp.arrays(np.int8, (4, rank), elements=st.integers(-127, 127)),
            hnp.arrays(np.float32, (2, rank), elements=st.floats(0, 1e10, width=32)),
        )
    )
)
def test_the_quantised_rebuild_is_the_documented_exact_sum(parts):
    p_codes, q_codes, scales = parts
    rank = p_codes.shape[1]
    products = [Fraction(float(scales[0, k])) * Fraction(float(scales[1, k])) for k in range(rank)]
    weights = products
    if max(products) > 0:
        step = Fraction(grid_step(float(max(products)), 39 - (rank - 1).bit_length()))
        weights = [round(product / step) * step for product in products]  # half to even
    expected = exactly_rounded(p_codes.astype(np.float64), q_codes.astype(np.float64), weights)
    assert quantised_matrix(p_codes, q_codes, scales).tobytes() == expected.tobytes()


# --- the decoder's side ---------------------------------------------------------------

SPEC = {"w": (12, 9), "b": (9,)}
DELTA = {
    name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for name, shape in SPEC.items()
}
VALID = make_codec("powersgd", rank=2).new_encoder(SPEC, 0).encode(DELTA, BINDING)
STORED = load_container_tensors(VALID)
METADATA = read_container_header(VALID, 10**6, UPDATE_DTYPES).metadata


def with_factors(p: np.ndarray, q: np.ndarray) -> bytes:
    tensors = dict(STORED)
    tensors["w:P"], tensors["w:Q"] = p.astype(np.float32), q.astype(np.float32)
    return write_container(tensors, METADATA)


@pytest.mark.parametrize("factor", ["w:P", "w:Q"])
def test_a_factor_one_step_off_its_grid_is_refused(factor):
    stored = dict(STORED)
    array = stored[factor].copy()
    # a third of the largest entry, in float32, has bits below the grid's step
    smallest = np.unravel_index(np.argmin(np.abs(array)), array.shape)
    array[smallest] = np.float32(np.abs(array).max() / 3)
    stored[factor] = array
    with pytest.raises(MalformedUpdateError, match=r"factor [PQ] off its 24-bit") as refusal:
        decode_update(with_factors(stored["w:P"], stored["w:Q"]), SPEC)
    assert refusal.value.__cause__ is None


# Arbitrary floats are mostly off the grid; a few exact binary fractions often are not.
FACTOR_ENTRIES = st.one_of(
    st.floats(-(2.0**100), 2.0**100, width=32),
    st.sampled_from([0.0, -0.0, 1.0, -3.0, 0.75, 2.0**-30, -(2.0**60), 2.0**100]),
)


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(np.float32, (12, 2), elements=FACTOR_ENTRIES),
    hnp.arrays(np.float32, (9, 2), elements=FACTOR_ENTRIES),
)
def test_any_float32_factors_are_refused_or_rebuilt_exactly(p, q):
    try:
        decoded = decode_update(with_factors(p, q), SPEC).delta["w"]
    except MalformedUpdateError as refusal:
        assert refusal.__cause__ is None
        assert "off its 24-bit fixed-point grid" in str(refusal) or "overflows" in str(refusal)
        return
    assert decoded.tobytes() == exactly_rounded(p, q).tobytes()


def test_the_rebuild_is_the_same_under_one_thread_and_many():
    spec = {"w": (384, 320)}
    rng = np.random.default_rng(3)
    delta = {"w": rng.standard_normal(spec["w"]).astype(np.float32)}
    blob = make_codec("powersgd", rank=32).new_encoder(spec, 0).encode(delta, BINDING)
    with threadpool_limits(limits=1):
        alone = decode_update(blob, spec).delta["w"]
    with threadpool_limits(limits=None):
        together = decode_update(blob, spec).delta["w"]
    assert alone.tobytes() == together.tobytes()
    stored = load_container_tensors(blob)
    rows = rng.choice(384, 4, replace=False)
    expected = exactly_rounded(stored["w:P"][rows], stored["w:Q"])
    assert alone[rows].tobytes() == expected.tobytes()


@pytest.mark.parametrize("rank", [1, 2])
def test_a_product_beyond_float32s_range_is_refused_without_a_warning(rank):
    huge = np.full((3, rank), 2.0**100, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MalformedUpdateError, match="overflows float32"):
            low_rank_matrix(huge, huge)

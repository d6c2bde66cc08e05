"""The low-rank rebuild is the exact product rounded once: factors on their grid, or refused.

Every committee member must rebuild a stranger's update to the same bits. The rebuild is
one float32 BLAS product, which may sum in any order; it is exact because the factors lie on
a fixed-point grid (``lowrank``) or are int8 codes times scale products on one grid
(``lowrank-q8``), coarse enough that every partial sum is below 2^24 steps. These tests hold
the rebuild to the exact rational value computed in Python integers, on random factors and
on factors at the edges of the argument (largest entries at the top of the grid, every
rank's grid, steps at float32's subnormal end, sums near float32's largest value), refuse
factors off their grid, and compare thread counts.
"""

import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from threadpoolctl import threadpool_limits

from flare.compression import (
    Codec,
    MalformedUpdateError,
    UpdateBinding,
    decode_update,
    make_codec,
)
from flare.compression.decode import UPDATE_DTYPES
from flare.compression.powersgd import MAX_Q8_RANK, MAX_RANK, PowerSGDQ8Codec
from flare.compression.rebuild import (
    Q8_LEVELS,
    factor_bits,
    grid_step,
    low_rank_matrix,
    onto_grid,
    quantised_matrix,
    scale_product_bits,
)
from flare.compression.wire import load_container_tensors, read_container_header, write_container
from flare.errors import ConfigError

BINDING = UpdateBinding("0xc1", "task-7", 3, 1, "bafkreigh2akiscaildc", 120)


def exactly_rounded(p: np.ndarray, q: np.ndarray, weights=None) -> np.ndarray:
    """``sum_k p[:,k] q[:,k] weights[k]`` in exact rationals, rounded once to float32.

    Each exact sum here is an integer multiple of a power of two below 2^53 of them, so
    float64 holds it exactly and one rounding to float32 follows (to inf past its range,
    and every zero as +0, as the wire format says: a negative value too small for float32
    rounds to -0)."""
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
            with np.errstate(over="ignore"):
                result[i, j] = np.float32(float(total)) + np.float32(0.0)
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


def test_every_allowed_rank_keeps_a_grid_on_which_float32_sums_are_exact():
    assert [factor_bits(r) for r in (1, 2, 4, 5, 16, 17, 64, 65, 1024)] == [
        12,
        11,
        11,
        10,
        10,
        9,
        9,
        8,
        7,
    ]
    for rank in range(1, MAX_RANK + 1):
        # |P[i,k]|, |Q[j,k]| < 2^bits steps, so a sum of rank products < rank * 2^(2 bits)
        assert factor_bits(rank) >= 1 and rank * 2 ** (2 * factor_bits(rank)) <= 2**24
    for rank in range(1, MAX_Q8_RANK + 1):
        # codes below 2^7, scale products at most 2^bits steps once rounded
        bits = scale_product_bits(rank)
        assert bits >= 1 and rank * Q8_LEVELS**2 * 2**bits < 2**24
    assert scale_product_bits(8) == 7
    PowerSGDQ8Codec(rank=MAX_Q8_RANK)
    with pytest.raises(ConfigError, match="512"):
        PowerSGDQ8Codec(rank=MAX_Q8_RANK + 1)


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 8, 32, 1024])
def test_factors_at_the_top_of_every_ranks_grid_rebuild_exactly(rank):
    # Every entry at +-(2^bits - 1) steps: the largest partial sums the grid allows, with
    # signs chosen so that some sums cancel to zero and others add up.
    bits, rng = factor_bits(rank), np.random.default_rng(rank)
    top = 2**bits - 1
    p = (rng.choice([-top, top], (3, rank)) * 2.0**-bits).astype(np.float32)
    q = (rng.choice([-top, top], (5, rank)) * 2.0 ** (40 - bits)).astype(np.float32)
    q[0] = top * 2.0 ** (40 - bits)  # one row of Q all positive
    p[0] = q[0] * 2.0**-40
    with threadpool_limits(limits=1):
        rebuilt = low_rank_matrix(p, q)
    assert rebuilt.tobytes() == exactly_rounded(p, q).tobytes()
    assert rebuilt[0, 0] == rank * float(top) ** 2 * 2.0 ** (40 - 2 * bits)


@pytest.mark.parametrize(
    ("p_exponent", "q_exponent"),
    [(-127, 0), (-126, -20), (-126, -126), (-137, 0), (60, 60), (64, 64)],
    ids=["step-2^-149", "subnormal-steps", "below-float32", "subnormal-p", "near-max", "overflow"],
)
def test_steps_at_float32s_ends_rebuild_to_the_exact_value_rounded_once(p_exponent, q_exponent):
    # Products whose step is below 2^-149 (float32 cannot hold the sums) or whose sums near
    # float32's largest value take the float64 route; both give the exact value rounded once.
    rank, bits = 4, factor_bits(4)
    rng = np.random.default_rng(abs(p_exponent - q_exponent))
    codes = rng.integers(-(2**bits) + 1, 2**bits, (2, 6, rank))
    codes[:, 0, 0] = 2**bits - 1
    p = (codes[0] * 2.0 ** (p_exponent - bits)).astype(np.float32)
    q = (codes[1] * 2.0 ** (q_exponent - bits)).astype(np.float32)
    expected = exactly_rounded(p, q)
    if not np.isfinite(expected).all():
        with pytest.raises(MalformedUpdateError, match="overflows float32"):
            low_rank_matrix(p, q)
        return
    assert low_rank_matrix(p, q).tobytes() == expected.tobytes()


def test_a_carried_maximum_moves_the_factor_onto_the_coarser_grid():
    # 2^12 - 0.5 steps rounds up to 2^12: the decoder would then derive a doubled step
    factor = np.array([[1.0 - 2.0**-13], [2.0**-12 * 3]])
    snapped = onto_grid(factor, factor_bits(1)).stored
    assert snapped[:, 0].tolist() == [1.0, 2.0**-10]  # 1.5 steps of 2^-11 round to 2
    assert (
        low_rank_matrix(snapped, snapped).tobytes() == exactly_rounded(snapped, snapped).tobytes()
    )


def test_a_factor_below_float32s_normal_range_travels_as_zeros():
    assert not onto_grid(np.full((3, 1), 1e-39), factor_bits(1)).stored.any()


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
        step = Fraction(grid_step(float(max(products)), 10 - (rank - 1).bit_length()))
        weights = [round(product / step) * step for product in products]  # half to even
    expected = exactly_rounded(p_codes.astype(np.float64), q_codes.astype(np.float64), weights)
    assert quantised_matrix(p_codes, q_codes, scales).tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    "scale",
    [2.0**-80, 2.0**-70, 1.0, 2.0**55, 2.0**57],
    ids=["below", "edge", "one", "high", "over"],
)
def test_quantised_steps_at_float32s_ends_rebuild_to_the_exact_value_rounded_once(scale):
    # Scale products near 2^-160 put the grid's step below 2^-149 (the float64 route), near
    # 2^-140 just above it (float32); near 2^114, times 8 * 127^2, past float32's largest
    # value (float64, then refused where the sum overflows).
    rng = np.random.default_rng(8)
    p_codes = rng.integers(-127, 128, (5, 8)).astype(np.int8)
    q_codes = rng.integers(-127, 128, (4, 8)).astype(np.int8)
    p_codes[0], q_codes[0] = 127, 127
    scales = (rng.uniform(0.5, 1.0, (2, 8)) * scale).astype(np.float32)
    products = [Fraction(float(scales[0, k])) * Fraction(float(scales[1, k])) for k in range(8)]
    step = Fraction(grid_step(float(max(products)), scale_product_bits(8)))
    weights = [round(product / step) * step for product in products]
    expected = exactly_rounded(p_codes.astype(np.float64), q_codes.astype(np.float64), weights)
    if not np.isfinite(expected).all():
        with pytest.raises(MalformedUpdateError, match="overflows float32"):
            quantised_matrix(p_codes, q_codes, scales)
        return
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
    with pytest.raises(MalformedUpdateError, match=r"factor [PQ] off its 11-bit") as refusal:
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
        assert "off its 11-bit fixed-point grid" in str(refusal) or "overflows" in str(refusal)
        return
    assert decoded.tobytes() == exactly_rounded(p, q).tobytes()


def decoded_on_one_thread_and_many(codec: Codec, seed: int) -> tuple[bytes, np.ndarray]:
    """A 384x320 delta's blob under ``codec`` and its rebuild, the same on one BLAS thread
    and on many (asserted)."""
    spec = {"w": (384, 320)}
    delta = {"w": np.random.default_rng(seed).standard_normal(spec["w"]).astype(np.float32)}
    blob = codec.new_encoder(spec, 0).encode(delta, BINDING)
    with threadpool_limits(limits=1):
        alone = decode_update(blob, spec).delta["w"]
    with threadpool_limits(limits=None):
        together = decode_update(blob, spec).delta["w"]
    assert alone.tobytes() == together.tobytes()
    return blob, alone


def test_the_rebuild_is_the_same_under_one_thread_and_many():
    rng = np.random.default_rng(3)
    blob, alone = decoded_on_one_thread_and_many(make_codec("powersgd", rank=32), seed=3)
    stored = load_container_tensors(blob)
    rows = rng.choice(384, 4, replace=False)
    expected = exactly_rounded(stored["w:P"][rows], stored["w:Q"])
    assert alone[rows].tobytes() == expected.tobytes()


def test_the_quantised_rebuild_is_the_same_under_one_thread_and_many():
    rng = np.random.default_rng(4)
    blob, alone = decoded_on_one_thread_and_many(make_codec("powersgd-q8"), seed=4)
    stored = load_container_tensors(blob)
    scales, rank = stored["w:S"], stored["w:P"].shape[1]
    assert rank == 8
    products = [Fraction(float(scales[0, k])) * Fraction(float(scales[1, k])) for k in range(rank)]
    step = Fraction(grid_step(float(max(products)), scale_product_bits(rank)))
    weights = [round(product / step) * step for product in products]
    rows = rng.choice(384, 4, replace=False)
    p_codes, q_codes = stored["w:P"][rows].astype(np.float64), stored["w:Q"].astype(np.float64)
    assert alone[rows].tobytes() == exactly_rounded(p_codes, q_codes, weights).tobytes()


@pytest.mark.parametrize("rank", [1, 2])
def test_a_product_beyond_float32s_range_is_refused_without_a_warning(rank):
    huge = np.full((3, rank), 2.0**100, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MalformedUpdateError, match="overflows float32"):
            low_rank_matrix(huge, huge)

"""powersgd-q8: int8 factor codes, per-column scales, rank per layer, error feedback."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flare.compression import (
    MalformedUpdateError,
    PowerSGDQ8Codec,
    UpdateBinding,
    decode_update,
    make_codec,
)
from flare.compression.decode import UPDATE_DTYPES
from flare.compression.powersgd import quantised_rank
from flare.compression.rebuild import column_codes, column_scales, raised_scales, scale_products
from flare.compression.wire import load_container_tensors, read_container_header, write_container
from flare.tensors import raw_nbytes

BINDING = UpdateBinding("0xc1", "task-7", 3, 1, "bafkreigh2akiscaildc", 120)
MLP = {
    "fc1.weight": (256, 64),
    "fc1.bias": (256,),
    "fc2.weight": (128, 256),
    "fc2.bias": (128,),
    "fc3.weight": (10, 128),
    "fc3.bias": (10,),
}
SPEC = {"w": (24, 16), "b": (16,)}


def delta_of(spec: dict, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in spec.items()}


def forged(blob: bytes, name: str, array: np.ndarray) -> bytes:
    metadata = read_container_header(blob, 10**6, UPDATE_DTYPES).metadata
    tensors = load_container_tensors(blob)
    tensors[name] = array
    return write_container(tensors, metadata)


def quantise(factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes counting each column's own scale: how the encoder quantises P."""
    scales = column_scales(factor)
    return column_codes(factor, scales.astype(np.float64)), scales


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 12), st.integers(1, 4)),
        elements=st.floats(-1e30, 1e30, allow_nan=False),
    )
)
def test_quantised_columns_are_within_half_a_step_of_the_factor(factor):
    codes, scales = quantise(factor)
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    assert (np.abs(codes.astype(int)) <= 127).all() and (scales >= 0).all()
    error = np.abs(codes.astype(np.float64) * scales.astype(np.float64) - factor)
    # Half a step from rounding, plus the scale's own float32 rounding over 127 steps; a
    # column too small for a float32 scale (below 127 subnormal steps) travels as zeros.
    bound = scales.astype(np.float64) * (0.5 + 127 * 2.0**-23) + 127 * 2.0**-149
    assert (error <= bound).all()


def test_an_all_zero_column_gets_scale_zero_and_zero_codes():
    factor = np.array([[0.0, 1.0], [0.0, -2.0]])
    codes, scales = quantise(factor)
    assert scales[0] == 0.0 and not codes[:, 0].any()
    assert codes[:, 1].tolist() == [64, -127]


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.integers(1, 40).map(lambda rank: (2, rank)),
        elements=st.one_of(st.just(0.0), st.floats(2.0**-60, 2.0**60, width=32)),
    )
)
def test_raised_scales_put_every_product_on_its_grid_at_or_above_the_one_asked_for(scales):
    p_scales, q_scales = scales
    raised = raised_scales(p_scales, q_scales)
    assert np.isfinite(raised).all() and (raised >= q_scales).all()
    products, step = scale_products(np.stack([p_scales, raised]))
    asked = p_scales.astype(np.float64) * q_scales
    # raised where float32 holds the raised scale (elsewhere kept: Q's codes may clip there)
    kept = (p_scales > 0) & (raised > q_scales) | (asked == products)
    assert (products[kept] >= asked[kept]).all()
    # at most one step above, of the encoder's grid: the decoder's, or half it where the
    # raised largest product lands a hair under a power of two (float32 scales)
    assert (products[kept] - asked[kept] <= 2 * step * (1 + 2**-20)).all()
    assert (raised[p_scales == 0] == q_scales[p_scales == 0]).all()


def test_rank_per_layer_follows_the_byte_target_and_the_cap():
    codec = PowerSGDQ8Codec()
    ranks = {entry.name: entry.rank for entry in codec.layout(MLP)}
    assert ranks == {
        "fc1.weight": 4,
        "fc1.bias": None,
        "fc2.weight": 6,
        "fc2.bias": None,
        "fc3.weight": 1,
        "fc3.bias": None,
    }
    for shape in ((256, 64), (128, 256)):
        rows, cols = shape
        assert quantised_rank(shape, 8, 48) * (rows + cols + 8) * 48 <= 4 * rows * cols
    assert quantised_rank((128, 256), 2, 48) == 2
    assert quantised_rank((2, 2), 8, 48) == 1  # 12 bytes of codes and scales against 16
    assert quantised_rank((2, 1), 8, 48) is None


def test_the_default_mlp_travels_in_at_least_25_times_fewer_bytes():
    blob = make_codec("powersgd-q8").new_encoder(MLP, 0).encode(delta_of(MLP, 0), BINDING)
    assert raw_nbytes(MLP) / len(blob) >= 25


def test_error_feedback_covers_truncation_and_quantisation():
    encoder = PowerSGDQ8Codec(rank=2, ratio=4).new_encoder(SPEC, 0)
    sent, total = np.zeros(SPEC["w"]), np.zeros(SPEC["w"])
    for round_number in range(8):
        delta = delta_of(SPEC, round_number)
        decoded = decode_update(encoder.encode(delta, BINDING), SPEC).delta
        assert decoded["b"].tobytes() == delta["b"].tobytes()
        sent += decoded["w"]
        total += delta["w"]
    np.testing.assert_allclose(sent + encoder.error_memory["w"], total, rtol=0, atol=1e-4)


def test_a_rank_r_delta_is_rebuilt_to_within_the_quantisation_step():
    rng = np.random.default_rng(3)
    matrix = (rng.standard_normal((24, 2)) @ rng.standard_normal((2, 16))).astype(np.float32)
    encoder = PowerSGDQ8Codec(rank=2, ratio=4).new_encoder(SPEC, 0)
    delta = {"w": matrix, "b": np.zeros(16, np.float32)}
    decoded = decode_update(encoder.encode(delta, BINDING), SPEC).delta["w"]
    assert np.linalg.norm(decoded - matrix) / np.linalg.norm(matrix) < 0.02


VALID = PowerSGDQ8Codec(rank=2, ratio=4).new_encoder(SPEC, 0).encode(delta_of(SPEC, 0), BINDING)
STORED = load_container_tensors(VALID)


def _with(name: str, index: tuple, value: float) -> np.ndarray:
    array = STORED[name].copy()
    array[index] = value
    return array


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("w:P", _with("w:P", (0, 0), -128), "-128"),
        ("w:Q", _with("w:Q", (3, 1), -128), "-128"),
        ("w:S", _with("w:S", (0, 1), -1.0), "negative scale"),
        ("w:S", _with("w:S", (1, 0), -0.0), "negative scale"),
        ("w:S", _with("w:S", (1, 0), np.nan), "NaN"),
        ("w:S", _with("w:S", (0, 0), 3e38), "overflows"),
        ("w:P", STORED["w:P"].astype(np.float32), "dtype F32, expected I8"),
        ("w:S", STORED["w:S"].astype(np.int32), "dtype I32, expected F32"),
    ],
)
def test_forged_codes_and_scales_are_refused(name, array, message):
    with pytest.raises(MalformedUpdateError, match=message) as refusal:
        decode_update(forged(VALID, name, array), SPEC)
    assert refusal.value.__cause__ is None


def test_a_blob_claiming_another_rank_is_refused():
    metadata = read_container_header(VALID, 10**6, UPDATE_DTYPES).metadata
    lying = metadata.replace('"rank":2,"shape":[24,16]', '"rank":1,"shape":[24,16]')
    assert lying != metadata
    tensors = dict(STORED)
    tensors["w:P"], tensors["w:Q"] = STORED["w:P"][:, :1].copy(), STORED["w:Q"][:, :1].copy()
    tensors["w:S"] = STORED["w:S"][:, :1].copy()
    with pytest.raises(MalformedUpdateError, match="layout entry for 'w'"):
        decode_update(write_container(tensors, lying), SPEC)

"""Exact inference's shortcuts give the bits of the general way.

A float32 weight tensor is quantised without its settled float64 copy where that gives the
same integers: the same exponents bit for bit, the same integers but for the sign of a zero
where the tensor holds a subnormal, and the same layer outputs bit for bit. A ReLU's output
that only the next Linear layer reads is rectified and quantised in its place.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_models_exact_prepared import layer_by_layer

from flare.models import ExactPredictor, build_model, exact_arithmetic
from flare.models.exact_arithmetic import (
    FLUSH_BELOW,
    exact_float64,
    parameter_of,
    quantise,
    quantise_rectified_in_place,
    quantised_parameter,
    settled,
)

SUBNORMAL = float(np.finfo(np.float32).smallest_subnormal)
TINY = float(np.finfo(np.float32).tiny)
LARGEST = float(np.finfo(np.float32).max)

float32_values = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, SUBNORMAL, -SUBNORMAL, 3 * SUBNORMAL, TINY, -TINY, LARGEST]),
    # at and just below the smallest row peak the shortcut takes, 2^(bits - 125)
    st.integers(4 - 125, 26 - 125).flatmap(lambda e: st.sampled_from([2.0**e, 0.75 * 2.0**e])),
)
tensors = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5),
    elements=float32_values,
)


def reference(tensor: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    return quantise(parameter_of({"w": tensor}, "w", tensor.shape), bits)


@settings(max_examples=300, deadline=None)
@given(tensors, st.integers(4, 26))
def test_the_shortcut_gives_the_settled_copys_integers(tensor, bits) -> None:
    integers, exponents = quantised_parameter({"w": tensor}, "w", tensor.shape, bits)
    expected_integers, expected_exponents = reference(tensor, bits)
    assert exponents.tobytes() == expected_exponents.tobytes()
    assert integers.dtype == np.float64 and np.array_equal(integers, expected_integers)
    # signs differ only on zeros that were subnormal inputs
    differs = np.signbit(integers) != np.signbit(expected_integers)
    assert not integers[differs].any()
    assert (np.abs(tensor.reshape(integers.shape)[differs]) < TINY).all()


def test_a_subnormal_in_a_row_of_normal_weights_rounds_to_zero() -> None:
    tensor = np.array([[2.0**-100, SUBNORMAL, -SUBNORMAL, 1e-30]], np.float32)
    integers, exponents = quantised_parameter({"w": tensor}, "w", tensor.shape, 26)
    expected, expected_exponents = reference(tensor, 26)
    assert exponents.tolist() == expected_exponents.tolist() == [26 + 99]
    assert integers[0, 1:3].tolist() == [0.0, 0.0] and expected[0, 1:3].tolist() == [0.0, 0.0]
    assert integers.tolist() == expected.tolist()


def test_only_a_float32_tensor_of_normal_finite_row_peaks_skips_the_float64_copy(
    monkeypatch,
) -> None:
    copies = []
    settle = exact_arithmetic.exact_float64
    monkeypatch.setattr(exact_arithmetic, "exact_float64", lambda v: copies.append(1) or settle(v))
    normal = np.array([[1.0, -SUBNORMAL, 0.0], [2.0**-99, 0.0, -0.0]], np.float32)
    quantised_parameter({"w": normal}, "w", normal.shape, 26)
    assert not copies
    for odd in (
        2.0**-102,
        0.0,
        np.inf,
        np.nan,
    ):  # a row peaking below 2^(bits - 125), or not finite
        quantised_parameter({"w": np.array([[1.0], [odd]], np.float32)}, "w", (2, 1), 26)
        quantised_parameter({"w": normal.astype(np.float64)}, "w", normal.shape, 26)
    assert len(copies) == 8


def test_tensors_the_shortcut_cannot_take_are_refused_or_settled_as_before() -> None:
    with pytest.raises(ValueError, match="shape"):
        quantised_parameter({"w": np.zeros((2, 3), np.float32)}, "w", (3, 2), 8)
    with pytest.raises(ValueError, match="lack"):
        quantised_parameter({}, "w", (3, 2), 8)
    float64 = np.array([[1e-320, 1.0], [np.inf, np.nan]])
    for integers, expected in zip(
        quantised_parameter({"w": float64}, "w", (2, 2), 8), reference(float64, 8), strict=True
    ):
        assert integers.tobytes() == expected.tobytes()


@pytest.mark.parametrize("flush", [False, True])
def test_subnormal_weights_give_the_same_logits_with_flush_to_zero_on_or_off(
    digits, trained, flush
) -> None:
    module, weights = trained["mlp"]
    features = digits.validation_features[:40]
    with_subnormals = {k: v.copy() for k, v in weights.items()}
    with_subnormals["2.weight"][::3, ::5] = SUBNORMAL
    with_subnormals["2.weight"][1::3, ::7] = -SUBNORMAL
    settled = {k: v.astype(np.float64) for k, v in with_subnormals.items()}
    settled["2.weight"][np.abs(settled["2.weight"]) < TINY] = 0.0  # the general way's input
    predictor = ExactPredictor(module)
    expected = predictor.logits(settled, features).tobytes()
    if flush and not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    try:
        assert predictor.logits(with_subnormals, features).tobytes() == expected
    finally:
        torch.set_flush_denormal(False)


settled_arrays = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6),
    elements=st.floats(allow_nan=False, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, FLUSH_BELOW, -FLUSH_BELOW, FLUSH_BELOW / 2, 5e-324]),
).map(settled)


@settings(max_examples=300, deadline=None)
@given(settled_arrays, st.integers(4, 26))
def test_a_rectified_layer_output_is_quantised_in_place_as_its_copy_would_be(x, bits) -> None:
    expected_integers, expected_exponents = quantise(np.maximum(x, 0.0), bits)
    integers, exponents = quantise_rectified_in_place(x, bits)
    assert integers is x
    assert integers.tobytes() == expected_integers.tobytes()
    assert exponents.tobytes() == expected_exponents.tobytes()


def test_relu_then_linear_runs_as_one_step_with_the_same_bits(every_layer_kind, digits) -> None:
    module, weights = every_layer_kind
    predictor = ExactPredictor(module)
    assert "_RectifiedLinear" in [type(layer).__name__ for layer in predictor._rest]
    features = np.random.default_rng(1).normal(size=(9, 60)).astype(np.float32)
    kept = features.copy()
    expected = layer_by_layer(module, weights, features).tobytes()
    assert predictor.logits(weights, features).tobytes() == expected
    assert predictor.logits(weights, features).tobytes() == expected  # nothing shared changed
    assert features.tobytes() == kept.tobytes()
    mlp = build_model("mlp", 64, 10, seed=3)
    mlp_weights = {k: v.numpy() for k, v in mlp.state_dict().items()}
    steps = [type(layer).__name__ for layer in ExactPredictor(mlp)._rest]
    assert steps == ["_RectifiedLinear", "_RectifiedLinear"]
    assert (
        ExactPredictor(mlp).logits(mlp_weights, digits.validation_features).tobytes()
        == layer_by_layer(mlp, mlp_weights, digits.validation_features).tobytes()
    )


def settled_as_before(values: np.ndarray) -> np.ndarray:
    """settle_in_place as it was before it skipped the flush: every magnitude compared."""
    values = np.array(values, dtype=np.float64)
    magnitude = np.abs(values)
    if not magnitude.max(initial=0.0) <= exact_arithmetic.LARGEST:
        np.clip(values, -exact_arithmetic.LARGEST, exact_arithmetic.LARGEST, out=values)
    np.copyto(values, 0.0, where=magnitude < FLUSH_BELOW)
    return values


def exact_float64_as_before(values: np.ndarray) -> np.ndarray:
    """exact_float64 as it was before it skipped the flush: every magnitude compared."""
    values = np.asarray(values)
    source = values.dtype if np.issubdtype(values.dtype, np.floating) else np.dtype(np.float64)
    converted = values.astype(np.float64)
    magnitude = np.abs(converted)
    if not magnitude.max(initial=0.0) <= exact_arithmetic.LARGEST:
        np.nan_to_num(converted, copy=False, nan=0.0)
    np.copyto(converted, 0.0, where=magnitude < max(np.finfo(source).tiny, FLUSH_BELOW))
    return converted


odd_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 5e-324, -5e-324, FLUSH_BELOW / 2, -FLUSH_BELOW, SUBNORMAL, float("nan")]
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([np.float16, np.float32, np.float64]),
    hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=odd_floats
    ),
)
def test_flushing_only_where_needed_gives_what_comparing_every_value_gave(dtype, wide) -> None:
    with np.errstate(over="ignore"):  # a float16 overflows to an infinity
        values = wide.astype(dtype)
    assert exact_float64(values).tobytes() == exact_float64_as_before(values).tobytes()
    assert settled(wide).tobytes() == settled_as_before(wide).tobytes()
    integers = np.array([[0, -3, 2**31 - 1]], np.int32)
    assert exact_float64(integers).tobytes() == exact_float64_as_before(integers).tobytes()


def test_a_nan_does_not_hide_a_subnormal_beside_it() -> None:
    row = np.array([[np.nan, SUBNORMAL, 1.0], [np.nan, -SUBNORMAL, 0.0]], np.float32)
    assert exact_float64(row).tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    wide = np.array([np.nan, FLUSH_BELOW / 4, -0.0, 2.0])
    assert settled(wide)[1:].tolist() == [0.0, 0.0, 2.0]
    assert not np.signbit(settled(wide)[2])

"""PowerSGD: low-rank deltas rebuilt to within the factors' grid, error feedback,
determinism, size."""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flare.compression import (
    MalformedUpdateError,
    PowerSGDCodec,
    UpdateBinding,
    decode_update,
    make_codec,
)
from flare.compression.native import python_only
from flare.compression.powersgd import CHOLESKY_MAX_RANK, orthonormalise
from flare.compression.rebuild import factor_bits
from flare.tensors import CACHE_LINE_BYTES, aligned_zeros

BINDING = UpdateBinding("0xc1", "task-7", 3, 1, "bafkreigh2akiscaildc", 120)


def low_rank(rng: np.random.Generator, rows: int, cols: int, rank: int) -> np.ndarray:
    return (rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, cols))).astype(
        np.float32
    )


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def grid_error(rank: int) -> float:
    """What rounding both factors onto their grids may leave of a delta the codec captures
    in full: each moves by half a step, at most 2^-bits of its largest entry (about half
    this bound is seen)."""
    return 4 * 2.0 ** -factor_bits(rank)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(9, 40),
    cols=st.integers(9, 40),
    rank=st.integers(1, 4),
    true_rank=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_delta_of_rank_at_most_r_is_reconstructed_to_within_the_grid(
    rows, cols, rank, true_rank, seed
):
    # Small-integer factors: the float32 delta is exactly of rank <= true_rank, so any
    # error left is the codec's own (factors on their grids), not rounding of the input.
    rng = np.random.default_rng(seed)
    left = rng.integers(-8, 9, (rows, min(true_rank, rank)))
    right = rng.integers(-8, 9, (min(true_rank, rank), cols))
    delta = {"w": (left @ right).astype(np.float32)}
    assume(delta["w"].any())
    spec = {"w": (rows, cols)}
    encoder = PowerSGDCodec(rank=rank).new_encoder(spec, seed)
    # The power step is float32: a warm start almost orthogonal to the delta's rows leaves
    # M @ Q to cancellation, whose rounding (which the CPU's sgemm kernel decides) bends P
    # more than the grid does. Error feedback carries that part; this test is the grid's.
    start = encoder.warm_q["w"]
    exact = delta["w"].astype(np.float64) @ start.astype(np.float64)
    assume(relative_error(delta["w"] @ start, exact) < grid_error(rank) / 64)
    blob = encoder.encode(delta, BINDING)
    assert relative_error(decode_update(blob, spec).delta["w"], delta["w"]) < grid_error(rank)


def test_conv_kernels_are_factored_as_out_by_in_times_kernel():
    rng = np.random.default_rng(0)
    out_factor, in_factor = rng.standard_normal(32), rng.standard_normal((16, 3, 3))
    kernel = np.multiply.outer(out_factor, in_factor).astype(np.float32)
    spec = {"conv": kernel.shape}
    blob = PowerSGDCodec(rank=1).new_encoder(spec, 0).encode({"conv": kernel}, BINDING)
    decoded = decode_update(blob, spec).delta["conv"]
    assert decoded.shape == (32, 16, 3, 3)
    assert relative_error(decoded, kernel) < grid_error(1)
    assert len(blob) < kernel.nbytes / 5


def test_vectors_and_small_matrices_travel_dense_and_exact():
    rng = np.random.default_rng(1)
    spec = {"bias": (64,), "tiny": (4, 3), "scalar": ()}
    delta = {k: rng.standard_normal(s).astype(np.float32) for k, s in spec.items()}
    blob = PowerSGDCodec(rank=2).new_encoder(spec, 0).encode(delta, BINDING)
    decoded = decode_update(blob, spec).delta
    for name in spec:
        np.testing.assert_array_equal(decoded[name], delta[name])


def test_error_feedback_telescopes_over_rounds():
    """sum of what the server saw + what the client still owes == sum of what it trained."""
    rng = np.random.default_rng(2)
    spec = {"w": (30, 20), "b": (20,)}
    encoder = PowerSGDCodec(rank=2).new_encoder(spec, seed=3)
    sent = {"w": np.zeros((30, 20)), "b": np.zeros(20)}
    trained = {"w": np.zeros((30, 20)), "b": np.zeros(20)}
    for _ in range(6):
        delta = {k: rng.standard_normal(s).astype(np.float32) for k, s in spec.items()}
        decoded = decode_update(encoder.encode(delta, BINDING), spec).delta
        for name in spec:
            sent[name] += decoded[name]
            trained[name] += delta[name]
    # The memory is float32: each round rounds delta + owed, and what is still owed, to it.
    owed = sent["w"] + encoder.error_memory["w"]
    np.testing.assert_allclose(owed, trained["w"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(sent["b"], trained["b"], atol=1e-12)
    assert np.linalg.norm(encoder.error_memory["w"]) > 1.0  # full-rank deltas: something owed


def test_same_seed_gives_the_same_byte_stream_and_another_seed_does_not():
    rng = np.random.default_rng(4)
    spec = {"conv": (16, 8, 3, 3), "fc": (64, 32), "b": (32,)}
    deltas = [
        {k: rng.standard_normal(s).astype(np.float32) for k, s in spec.items()} for _ in range(4)
    ]
    codec = make_codec("powersgd", rank=3)
    first, second, other = (codec.new_encoder(spec, seed) for seed in (11, 11, 12))
    stream = [first.encode(d, BINDING) for d in deltas]
    assert stream == [second.encode(d, BINDING) for d in deltas]
    assert stream != [other.encode(d, BINDING) for d in deltas]


def test_zero_delta_does_not_stall_power_iteration():
    rng = np.random.default_rng(5)
    spec = {"w": (20, 24)}
    encoder = PowerSGDCodec(rank=2).new_encoder(spec, 0)
    zero = decode_update(encoder.encode({"w": np.zeros((20, 24), np.float32)}, BINDING), spec)
    assert not zero.delta["w"].any()
    delta = {"w": low_rank(rng, 20, 24, 2)}
    decoded = decode_update(encoder.encode(delta, BINDING), spec).delta["w"]
    assert relative_error(decoded, delta["w"]) < grid_error(2)


def test_powersgd_is_much_smaller_than_dense():
    spec = {"w": (256, 128)}
    delta = {"w": np.random.default_rng(6).standard_normal((256, 128)).astype(np.float32)}
    sizes = {
        name: len(make_codec(name).new_encoder(spec, 0).encode(delta, BINDING))
        for name in ("none", "powersgd")
    }
    assert sizes["none"] > 15 * sizes["powersgd"]  # data alone: 32768 / (4 * 384) = 21x


def test_warm_start_converges_towards_the_best_rank_r_approximation():
    rng = np.random.default_rng(7)
    u, _ = np.linalg.qr(rng.standard_normal((60, 40)))
    v, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    matrix = (u * 0.5 ** np.arange(40)) @ v.T
    spec, rank = {"w": (60, 40)}, 2
    optimal = np.linalg.norm(0.5 ** np.arange(rank, 40))
    codec = PowerSGDCodec(rank=rank)
    errors = []
    for rounds in (1, 8):
        encoder = codec.new_encoder(spec, 0)
        for _ in range(rounds):
            blob = encoder.encode({"w": matrix.astype(np.float32)}, BINDING)
            encoder.error_memory["w"][:] = 0.0  # isolate warm start from error feedback
        errors.append(np.linalg.norm(decode_update(blob, spec).delta["w"] - matrix))
    assert errors[1] < errors[0]
    assert errors[1] < 1.01 * optimal


@pytest.mark.parametrize("extra", [0, CHOLESKY_MAX_RANK], ids=["gram", "column-by-column"])
def test_orthonormalise_gives_orthonormal_columns_and_zeroes_dependent_ones(extra):
    rng = np.random.default_rng(9)
    basis = rng.standard_normal((40, 2))
    columns = np.column_stack(
        [
            basis[:, 0],
            np.zeros(40),
            basis[:, 1],
            basis @ [2.0, -3.0],
            rng.standard_normal(40),
            *rng.standard_normal((extra, 40)),
        ]
    ).astype(np.float32)
    result = orthonormalise(columns)
    assert not result[:, 1].any() and not result[:, 3].any()
    kept = np.delete(result, [1, 3], axis=1)
    np.testing.assert_allclose(kept.T @ kept, np.eye(kept.shape[1]), atol=1e-12)
    # each column spans what the earlier ones did not: the basis is triangular
    assert np.allclose(result[:, 0], columns[:, 0] / np.linalg.norm(columns[:, 0]))
    residual = columns[:, 2] - kept[:, 0] * (kept[:, 0] @ columns[:, 2])
    assert np.allclose(result[:, 2], residual / np.linalg.norm(residual))


@pytest.mark.parametrize("bad_round", [-1, 2**63])
def test_failed_encode_leaves_the_state_untouched(bad_round):
    spec = {"w": (16, 16)}
    encoder = PowerSGDCodec(rank=2).new_encoder(spec, 0)
    twin = PowerSGDCodec(rank=2).new_encoder(spec, 0)
    delta = {"w": np.random.default_rng(10).standard_normal((16, 16)).astype(np.float32)}
    bad = UpdateBinding("0xc1", "task-7", bad_round, 1, "cid", 1)
    with pytest.raises(ValueError, match="round"):
        encoder.encode(delta, bad)
    assert encoder.encode(delta, BINDING) == twin.encode(delta, BINDING)


@pytest.mark.parametrize("codec_name", ["powersgd", "powersgd-q8"])
def test_a_delta_overflowing_once_factored_is_refused_without_a_warning(codec_name):
    # float32 state: delta plus memory, and the power step's products, overflow to inf here
    spec = {"w": (64, 32)}
    encoder, twin = (make_codec(codec_name).new_encoder(spec, 0) for _ in range(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MalformedUpdateError, match="'w' overflows float32 once factored"):
            encoder.encode({"w": np.full((64, 32), 3e38, np.float32)}, BINDING)
    delta = {"w": np.random.default_rng(11).standard_normal((64, 32)).astype(np.float32)}
    assert encoder.encode(delta, BINDING) == twin.encode(delta, BINDING)


@pytest.mark.parametrize("shape", [(1,), (3, 5), (128, 256), (16, 1, 3, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8])
def test_aligned_zeros_start_a_cache_line_and_hold_nothing_else(shape, dtype) -> None:
    array = aligned_zeros(shape, dtype)
    assert array.ctypes.data % CACHE_LINE_BYTES == 0
    assert array.shape == shape and array.dtype == dtype
    assert array.flags.c_contiguous and array.flags.writeable
    assert not array.any()
    array[...] = 1  # writes land in the array alone
    assert array.sum() == np.prod(shape)


def test_an_encoders_layer_sized_state_starts_a_cache_line() -> None:
    """The error memory and the scratch it swaps with are read and written in 64-byte
    loads and stores; a line-aligned start keeps each of those in one line."""
    spec = {"fc": (40, 24), "conv": (6, 2, 3, 3), "bias": (24,)}
    encoder = PowerSGDCodec(rank=2).new_encoder(spec, 0)
    delta = {name: np.ones(shape, dtype=np.float32) for name, shape in spec.items()}
    for _ in range(3):  # the Python lane swaps the error memory with its scratch each time
        with python_only():
            encoder.encode(delta, BINDING)
        assert all(a.ctypes.data % CACHE_LINE_BYTES == 0 for a in encoder.error_memory.values())

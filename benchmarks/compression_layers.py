"""PowerSGD per layer and per whole model: size, error, and time against the matmul floor.

Helpers of ``bench_compression.py``; sizes and errors are deterministic (seeded), times
are medians of CPU time on one BLAS thread.
"""

import statistics
import time
from collections.abc import Callable

import numpy as np

from flare.compression import PowerSGDCodec, UpdateBinding, decode_update, make_codec
from flare.compression.canonical import spec_key
from flare.compression.decode import header_limit
from flare.compression.native import native_reader, native_writer, python_only

SHAPES = {
    "mlp fc1 256x64": (256, 64),
    "mlp fc2 128x256": (128, 256),
    "mlp fc3 10x128": (10, 128),
    "cnn conv1 16x1x3x3": (16, 1, 3, 3),
    "cnn conv2 32x16x3x3": (32, 16, 3, 3),
    "cnn fc1 64x512": (64, 512),
    "cnn fc2 10x64": (10, 64),
}
"""Every matrix-shaped layer of the default MLP and of the CNN on digits (flare/models/zoo.py)."""
MODELS = {
    "mlp": {
        "0.weight": (256, 64),
        "0.bias": (256,),
        "2.weight": (128, 256),
        "2.bias": (128,),
        "4.weight": (10, 128),
        "4.bias": (10,),
    },
    "cnn": {
        "1.weight": (16, 1, 3, 3),
        "1.bias": (16,),
        "3.weight": (32, 16, 3, 3),
        "3.bias": (32,),
        "7.weight": (64, 512),
        "7.bias": (64,),
        "9.weight": (10, 64),
        "9.bias": (10,),
    },
}
"""The default MLP and the CNN on digits, whole: one blob per update, as clients send them."""
MODEL_CODECS = {"powersgd": {"rank": 4}, "powersgd-q8": {}}
RANKS = (1, 2, 4, 8)
SIGNAL_RANK = 8
NOISE_FRACTION = 0.1
REPEATS = 101
"""Medians of this many runs: a layer takes microseconds, and a shared machine moves a median
of 31 by a tenth from one run to the next."""
TIMING_ROUNDS = 3
"""Rounds of every layer's timings, each round over all layers before the next begins: a
burst of load on the shared machine then moves one round's medians, not the table's."""
TIMINGS = (
    "codec_seconds",
    "native_seconds",
    "python_seconds",
    "float32_floor_seconds",
    "framing_seconds",
)
"""What each round times: the codec as a user calls it, its compiled calls alone, Python's
reference lane, the two float32 products, and the layer sent uncompressed."""
ROUNDS = 10
DRIFT = 0.05
BINDING = UpdateBinding("0xbench", "bench", 0, 0, "bench-base", 1)


def synthetic_delta(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A gradient-like matrix: rank-8 signal with geometric spectrum plus 10% Gaussian noise.

    Singular values of the signal are 1, 2^-1/2, 2^-1, ... so the spectrum decays
    smoothly, and the noise (Frobenius norm 10% of the signal's) keeps it full rank.
    """
    rng = np.random.default_rng(seed)
    rows, cols = shape[0], int(np.prod(shape[1:]))
    k = min(SIGNAL_RANK, rows, cols)
    u, _ = np.linalg.qr(rng.standard_normal((rows, k)))
    v, _ = np.linalg.qr(rng.standard_normal((cols, k)))
    signal = (u * 2.0 ** (-np.arange(k) / 2)) @ v.T
    noise = rng.standard_normal((rows, cols))
    noise *= NOISE_FRACTION * np.linalg.norm(signal) / np.linalg.norm(noise)
    return (signal + noise).astype(np.float32).reshape(shape)


def optimal_error(matrix: np.ndarray, rank: int) -> float:
    """Relative error of the best rank-``rank`` approximation (Eckart-Young, via SVD)."""
    singular = np.linalg.svd(
        matrix.reshape(matrix.shape[0], -1).astype(np.float64), compute_uv=False
    )
    return float(np.sqrt(np.sum(singular[rank:] ** 2) / np.sum(singular**2)))


def relative_error(approximation: np.ndarray, exact: np.ndarray) -> float:
    return float(np.linalg.norm(approximation - exact) / np.linalg.norm(exact))


def median_seconds(*actions: Callable[[], object]) -> list[float]:
    """Median CPU seconds of each action (one thread, so CPU time is its own work), the
    actions taking turns in every repeat: their ratios are then taken side by side, under
    the same load, and wall time's waits for a core on a shared machine do not count."""
    for action in actions:
        action()  # warm caches and lazy imports
    samples: list[list[float]] = [[] for _ in actions]
    for _ in range(REPEATS):
        for action, taken in zip(actions, samples, strict=True):
            start = time.process_time()
            action()
            taken.append(time.process_time() - start)
    return [statistics.median(taken) for taken in samples]


def measure(label: str, shape: tuple[int, ...], rank: int) -> dict:
    """One row: size, one-shot error, error after warm-started rounds, and timing."""
    spec = {"w": shape}
    delta = synthetic_delta(shape, seed=sum(shape))
    codec = PowerSGDCodec(rank=rank)
    blob = codec.new_encoder(spec, 0).encode({"w": delta}, BINDING)
    dense_blob = make_codec("none").new_encoder(spec, 0).encode({"w": delta}, BINDING)
    layout = codec.layout(spec)[0]
    one_shot = relative_error(decode_update(blob, spec).delta["w"], delta)

    # Slowly drifting matrix, error memory cleared each round: isolates the warm start.
    warm_encoder = codec.new_encoder(spec, 0)
    # Same drifting sequence with error feedback on: how much the server's sum misses.
    feedback_encoder = codec.new_encoder(spec, 0)
    drift_rng = np.random.default_rng(1)
    current = delta.astype(np.float64)
    sent_sum, true_sum = np.zeros(shape), np.zeros(shape)
    for _ in range(ROUNDS):
        current += DRIFT * np.linalg.norm(delta) * _unit(drift_rng.standard_normal(shape))
        step = current.astype(np.float32)
        warm_blob = warm_encoder.encode({"w": step}, BINDING)
        if layout.is_low_rank:  # a dense layer keeps no error memory
            warm_encoder.error_memory["w"][:] = 0.0
        sent_sum += decode_update(feedback_encoder.encode({"w": step}, BINDING), spec).delta["w"]
        true_sum += step
    warm = relative_error(decode_update(warm_blob, spec).delta["w"], step)
    warm_optimal = optimal_error(step, rank)

    optimal = optimal_error(delta, rank)
    row = {
        "layer": label,
        "shape": list(shape),
        "rank": rank,
        "low_rank": layout.is_low_rank,
        "raw_bytes": delta.nbytes,
        "dense_blob_bytes": len(dense_blob),
        "blob_bytes": len(blob),
        "ratio": delta.nbytes / len(blob),
        "error": one_shot,
        "optimal_error": optimal,
        "error_vs_optimal": one_shot / optimal if optimal else float("nan"),
        "warm_error": warm,
        "warm_optimal_error": warm_optimal,
        "feedback_sum_error": relative_error(sent_sum, true_sum),
    }
    return with_timings(row, [layer_timings(shape, rank)])


def layer_timings(shape: tuple[int, ...], rank: int) -> dict[str, float]:
    """One round of a layer's times (:data:`TIMINGS`), the codec and its floors taking turns."""
    spec = {"w": shape}
    delta = synthetic_delta(shape, seed=sum(shape))
    codec = PowerSGDCodec(rank=rank)
    rows, cols = codec.layout(spec)[0].matrix_shape
    matrix = delta.reshape(rows, cols)
    q = np.ones((cols, rank), dtype=np.float32)
    p = np.ones((rows, rank), dtype=np.float32)
    encoder = codec.new_encoder(spec, 0)
    reference = codec.new_encoder(spec, 0)
    dense_encoder = make_codec("none").new_encoder(spec, 0)
    seconds = median_seconds(
        lambda: decode_update(encoder.encode({"w": delta}, BINDING), spec),
        _native_calls(encoder, spec, {"w": delta}),
        lambda: _python_lane(reference, spec, {"w": delta}),
        lambda: (matrix @ q, matrix.T @ p),
        # The same layer written and read with no compression at all: what a blob costs
        # before any arithmetic (header, binding, container, validation, Python per call).
        lambda: decode_update(dense_encoder.encode({"w": delta}, BINDING), spec),
    )
    return dict(zip(TIMINGS, seconds, strict=True))


def with_timings(row: dict, rounds: list[dict[str, float]]) -> dict:
    """``row`` with each time the median of its ``rounds``, and the codec against its floor
    from those medians."""
    times = {key: statistics.median(taken[key] for taken in rounds) for key in TIMINGS}
    codec_x = times["codec_seconds"] / times["float32_floor_seconds"]
    return dict(row, **times, time_vs_float32_floor=codec_x)


def measure_model(model: str, codec_name: str) -> dict:
    """Encode + decode of a whole model's update against the two float32 products of
    every factored layer (each at its own rank): the per-blob cost spread over the model."""
    spec = MODELS[model]
    codec = make_codec(codec_name, **MODEL_CODECS[codec_name])
    delta = {name: synthetic_delta(shape, seed=sum(shape)) for name, shape in spec.items()}
    encoder = codec.new_encoder(spec, 0)
    blob = encoder.encode(delta, BINDING)
    products = []
    for entry in codec.layout(spec):
        if entry.is_low_rank:
            matrix = delta[entry.name].reshape(entry.matrix_shape)
            q = np.ones((matrix.shape[1], entry.rank), dtype=np.float32)
            p = np.ones((matrix.shape[0], entry.rank), dtype=np.float32)
            products.append((matrix, q, p))
    reference = codec.new_encoder(spec, 0)
    encode_seconds, decode_seconds, floor_seconds, python_seconds = median_seconds(
        lambda: encoder.encode(delta, BINDING),
        lambda: decode_update(blob, spec),
        lambda: [(m @ q, m.T @ p) for m, q, p in products],
        lambda: _python_lane(reference, spec, delta),
    )
    codec_seconds = encode_seconds + decode_seconds
    return {
        "model": model,
        "codec": codec_name,
        "params": codec.params(),
        "ratio": sum(tensor.nbytes for tensor in delta.values()) / len(blob),
        "encode_seconds": encode_seconds,
        "decode_seconds": decode_seconds,
        "float32_floor_seconds": floor_seconds,
        "time_vs_float32_floor": codec_seconds / floor_seconds,
        "python_seconds": python_seconds,
        "native": native_writer(encoder.container) is not None,
    }


def _python_lane(encoder, spec: dict, delta: dict) -> None:
    """Encode + decode with the native lane off: Python's reference, as without ``native/``."""
    with python_only():
        decode_update(encoder.encode(delta, BINDING), spec)


def _native_calls(encoder, spec: dict, delta: dict) -> Callable[[], None]:
    """The compiled part of an encode + decode: the native writer's and reader's calls alone
    (header, binding, power step, grids, rebuilds, error feedback), without Python's checks
    and wrapping around them."""
    writer = native_writer(encoder.container)
    assert writer is not None, "native/ is not built: scripts/setup.sh builds it"
    key, limit = spec_key(spec), header_limit(spec)
    decode_update(encoder.encode(delta, BINDING), spec)  # teaches the reader this configuration
    reader = native_reader(key)

    def calls() -> None:
        blob, _ = writer.encode(delta, BINDING, encoder.error_memory, encoder.warm_q)
        assert reader.read(blob, limit) is not None

    return calls


def _unit(array: np.ndarray) -> np.ndarray:
    return array / np.linalg.norm(array)

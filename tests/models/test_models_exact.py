"""Exact inference: integer sums in float64, the same bits whatever computes them.

Agreement across real instruction sets and libraries is tested in separate processes by
``test_agreement_isa.py``; here, the arithmetic that makes it so.
"""

import copy
import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from integer_products import reversed_blocks
from torch import nn

from flare.chain import ContentRef, InMemoryChain, TaskCreated, TaskParams
from flare.federation.config import SimulationConfig
from flare.federation.protocol.aggregate import load_task_context
from flare.federation.protocol.artifacts import TaskManifest, encode_manifest, encode_model
from flare.federation.protocol.simulated_device import participant_keys
from flare.federation.setup import build_federation
from flare.models import (
    ExactInferenceError,
    ExactPredictor,
    TorchModelAdapter,
    UnsupportedLayerError,
    build_model,
    exact,
    exact_arithmetic,
)
from flare.models.exact_arithmetic import product_bits, quantise
from flare.storage import MemoryStore


def float64_logits(module: nn.Module, weights: dict, features: np.ndarray) -> np.ndarray:
    reference = copy.deepcopy(module).double()
    reference.load_state_dict(
        {k: torch.as_tensor(v, dtype=torch.float64) for k, v in weights.items()}
    )
    with torch.no_grad():
        return reference(torch.as_tensor(features, dtype=torch.float64)).numpy()


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
def test_labels_match_float32_torch_on_digits_except_near_ties(digits, trained, name):
    module, weights = trained[name]
    features = np.concatenate([digits.validation_features, digits.test_features])
    labels = ExactPredictor(module).predict(weights, features)
    learner = TorchModelAdapter(copy.deepcopy(module))
    learner.set_weights(weights)
    reference = np.sort(float64_logits(module, weights, features), axis=1)
    near_tie = (reference[:, -1] - reference[:, -2]) < 1e-5 * np.abs(reference).max()
    disagree = labels != learner.predict(features)
    assert not (disagree & ~near_tie).any()
    assert disagree.sum() <= 1  # on these weights: none


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
def test_logits_are_within_the_documented_precision(digits, trained, name):
    module, weights = trained[name]
    features = digits.validation_features
    logits = ExactPredictor(module).logits(weights, features)
    reference = float64_logits(module, weights, features)
    assert logits.dtype == np.float64 and logits.shape == reference.shape
    assert np.abs(logits - reference).max() <= 1e-5 * np.abs(reference).max()


@st.composite
def integer_products(draw) -> tuple[np.ndarray, np.ndarray]:
    """Two integer matrices at the size limit of :func:`product_bits`, extremes included."""
    fan_in = draw(st.integers(1, 600))
    x_bits, w_bits = product_bits(fan_in)
    rows, columns = draw(st.integers(1, 4)), draw(st.integers(1, 4))

    def matrix(shape: tuple[int, int], bits: int) -> np.ndarray:
        limit = 2**bits
        entries = st.one_of(st.sampled_from([limit, -limit]), st.integers(-limit, limit))
        return draw(hnp.arrays(np.int64, shape, elements=entries))

    return matrix((rows, fan_in), x_bits), matrix((fan_in, columns), w_bits)


@settings(max_examples=60, deadline=None)
@given(integer_products())
def test_integer_sums_within_the_bit_budget_are_exact_in_any_order(operands):
    left, right = operands
    exact_product = left @ right  # int64: no rounding, and |sum| <= 2^53 cannot overflow
    assert np.abs(exact_product).max() <= 2**53
    as_float = left.astype(np.float64) @ right.astype(np.float64)
    assert np.array_equal(as_float, exact_product)
    assert np.array_equal(
        reversed_blocks(left.astype(np.float64), right.astype(np.float64)), as_float
    )
    assert np.array_equal(right.T.astype(np.float64) @ left.T.astype(np.float64), as_float.T)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_logits_do_not_depend_on_how_the_integer_sums_are_done(digits, trained, name, monkeypatch):
    module, weights = trained[name]
    features = digits.validation_features[:60]
    predictor = ExactPredictor(module)
    reference = predictor.logits(weights, features).tobytes()
    orders = {
        "int64": lambda a, b: (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float64),
        "reversed blocks": reversed_blocks,
        "transposed": lambda a, b: np.ascontiguousarray((b.T @ a.T).T),
    }
    for order in orders.values():
        monkeypatch.setattr(exact_arithmetic, "integer_matmul", order)
        assert predictor.logits(weights, features).tobytes() == reference


def test_one_sample_gets_the_same_logits_in_any_batch(digits, trained, monkeypatch):
    module, weights = trained["cnn"]
    features = digits.validation_features[:40]
    predictor = ExactPredictor(module)
    reference = predictor.logits(weights, features)
    backwards = predictor.logits(weights, features[::-1])[::-1]
    alone = np.concatenate([predictor.logits(weights, row[None]) for row in features[:5]])
    monkeypatch.setattr(exact, "COLUMN_BUDGET", 1)  # one sample per convolution chunk
    chunked = predictor.logits(weights, features)
    assert backwards.tobytes() == reference.tobytes() == chunked.tobytes()
    assert alone.tobytes() == reference[:5].tobytes()


magnitudes = st.one_of(st.just(0.0), st.floats(exact_arithmetic.FLUSH_BELOW, 1e300))
settled_rows = hnp.arrays(  # what a layer passes on: zero or at least FLUSH_BELOW in magnitude
    np.float64,
    hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
    elements=st.tuples(magnitudes, st.booleans()).map(lambda m: -m[0] if m[1] else m[0]),
)


@settings(max_examples=100, deadline=None)
@given(settled_rows, st.integers(4, 26))
def test_quantised_rows_are_bounded_integers_within_half_a_unit(values, bits):
    integers, exponents = quantise(values, bits)
    assert integers.shape == values.shape and exponents.shape == (len(values),)
    assert np.array_equal(integers, np.rint(integers))
    assert np.abs(integers).max() <= 2**bits
    for row, row_integers, exponent in zip(values, integers, exponents, strict=True):
        error = np.abs(row - np.ldexp(row_integers, -int(exponent)))
        assert (error <= np.ldexp(0.5, -int(exponent))).all()
        alone_integers, alone_exponent = quantise(row[None], bits)  # a row's own business
        assert np.array_equal(alone_integers[0], row_integers) and alone_exponent[0] == exponent


def test_integer_budget_shrinks_with_the_fan_in():
    assert product_bits(1) == (26, 27)
    assert product_bits(64) == (23, 24)  # 64 = 2^6 products
    assert product_bits(65) == (23, 23)
    # the zoo's other layers, as docs/mi-filter.md lists them
    assert [product_bits(n) for n in (9, 128, 144, 256, 512)] == [
        (24, 25),
        (23, 23),
        (22, 23),
        (22, 23),
        (22, 22),
    ]
    for fan_in in (1, 9, 144, 512, 10_000):
        x_bits, w_bits = product_bits(fan_in)
        assert fan_in * 2 ** (x_bits + w_bits) <= 2**53
    with pytest.raises(ExactInferenceError, match="too wide"):
        product_bits(2**46)


def test_every_supported_layer_matches_torch(every_layer_kind):
    module, weights = every_layer_kind
    features = np.random.default_rng(0).normal(size=(9, 60)).astype(np.float32)
    logits = ExactPredictor(module).logits(weights, features)
    reference = float64_logits(module, weights, features)
    assert np.abs(logits - reference).max() <= 1e-5 * np.abs(reference).max()


class ScaledLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


class Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x).tanh()


@pytest.mark.parametrize(
    ("module", "named"),
    [
        (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), "1: BatchNorm1d"),
        (nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Tanh())), "0.1: Tanh"),
        (nn.Sequential(ScaledLinear(4, 2)), "0: ScaledLinear"),
        (Custom(), "the model: Custom"),
        (nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), "0: Conv2d with groups=2"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, padding_mode="circular")), "padding_mode='circular'"),
        (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), "0: MaxPool2d with ceil_mode"),
        (nn.Sequential(nn.ReLU()), "no Linear or Conv2d"),
    ],
)
def test_unsupported_modules_are_refused_by_name(module, named):
    with pytest.raises(UnsupportedLayerError, match=named) as refused:
        ExactPredictor(module)
    assert "\n" not in str(refused.value)


def test_subnormals_count_as_zero_with_flush_to_zero_on_or_off(trained):
    module, trained_weights = trained["mlp"]
    # without biases a subnormal's contribution is not rounded away at the first addition
    weights = {
        k: v if k.endswith("weight") else np.zeros_like(v) for k, v in trained_weights.items()
    }
    tiny = np.finfo(np.float32).smallest_subnormal
    features = np.zeros((3, 64), np.float32)
    features[0, :5] = tiny  # a row of subnormals only: its scale would come from them
    features[1] = np.linspace(-1, 1, 64)
    features[1, ::7] = tiny
    features[2, 3] = 4 * tiny
    with_subnormals = {k: v.copy() for k, v in weights.items()}
    with_subnormals["0.weight"][:, :4] = tiny
    zeroed = {k: v.copy() for k, v in weights.items()}
    zeroed["0.weight"][:, :4] = 0
    no_subnormals = np.where(np.abs(features) < np.finfo(np.float32).tiny, 0, features)
    predictor = ExactPredictor(module)
    reference = predictor.logits(zeroed, no_subnormals)
    assert not reference[0].any() and reference[1].any()
    assert predictor.logits(with_subnormals, features).tobytes() == reference.tobytes()
    if not torch.set_flush_denormal(True):  # FTZ and DAZ for this thread, numpy's code too
        pytest.skip("this CPU cannot flush subnormals")
    try:
        assert np.float32(tiny) * np.float32(1) == 0  # the mode is on
        assert predictor.logits(with_subnormals, features).tobytes() == reference.tobytes()
    finally:
        torch.set_flush_denormal(False)


def test_non_finite_weights_count_as_zero_or_the_largest_float(digits, trained):
    module, weights = trained["mlp"]
    features = digits.validation_features[:30]
    predictor = ExactPredictor(module)
    broken = {k: v.copy() for k, v in weights.items()}
    broken["2.weight"][0, :3] = [np.inf, -np.inf, np.nan]
    broken["4.bias"][1] = np.inf
    largest = np.finfo(np.float64).max
    settled = {k: v.astype(np.float64) for k, v in broken.items()}
    settled["2.weight"][0, :3] = [largest, -largest, 0]
    settled["4.bias"][1] = largest
    labels = predictor.predict(broken, features)
    assert labels.dtype == np.int64 and ((labels >= 0) & (labels < 10)).all()
    assert (
        predictor.logits(broken, features).tobytes()
        == predictor.logits(settled, features).tobytes()
    )


def test_ties_go_to_the_lowest_class():
    module = nn.Linear(3, 4)
    weights = {"weight": np.zeros((4, 3), np.float32), "bias": np.zeros(4, np.float32)}
    features = np.ones((2, 3), np.float32)
    assert ExactPredictor(module).predict(weights, features).tolist() == [0, 0]
    weights["bias"][2:] = 1.0
    assert ExactPredictor(module).predict(weights, features).tolist() == [2, 2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w, x: ({k: v for k, v in w.items() if k != "2.bias"}, x), "lack '2.bias'"),
        (lambda w, x: ({**w, "0.weight": w["0.weight"][:, :10]}, x), r"0.weight: shape"),
        (lambda w, x: (w, x[:, :10]), "expects 64 inputs"),
        (lambda w, x: (w, x[0]), "non-empty batch"),
        (lambda w, x: (w, x[:0]), "non-empty batch"),
    ],
)
def test_mismatched_weights_or_features_raise_one_typed_line(trained, digits, change, message):
    module, weights = trained["mlp"]
    bad_weights, bad_features = change(weights, digits.validation_features[:4])
    with pytest.raises(ExactInferenceError, match=message) as refused:
        ExactPredictor(module).predict(bad_weights, bad_features)
    assert "\n" not in str(refused.value)


def test_the_simulation_filters_with_exact_inference():
    federation = build_federation(SimulationConfig(rounds=1, clients=2, malicious=0))
    features = federation.dataset.validation_features
    expected = ExactPredictor(federation.trainer.module).predict(
        federation.initial_weights, features
    )
    assert isinstance(federation.predictor, ExactPredictor)
    assert np.array_equal(federation.predict(federation.initial_weights, features), expected)


def test_a_user_model_beyond_exact_inference_still_simulates(caplog):
    def with_tanh(num_features: int, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Linear(num_features, 8), nn.Tanh(), nn.Linear(8, num_classes))

    with caplog.at_level(logging.WARNING, logger="flare.federation.setup"):
        federation = build_federation(SimulationConfig(rounds=1, clients=2, malicious=0), with_tanh)
    assert federation.predictor is None
    assert "1: Tanh" in caplog.text and "float32 inference" in caplog.text
    features = federation.dataset.validation_features
    assert federation.predict(federation.initial_weights, features).shape == (len(features),)


def test_the_committee_filters_with_exact_inference(digits):
    chain, store = InMemoryChain(), MemoryStore()
    weights = TorchModelAdapter(build_model("cnn", 64, 10, seed=0)).get_weights()
    manifest = TaskManifest("cnn", 64, 10, "mi", {})
    features, labels = digits.validation_features, digits.validation_labels
    creator = chain.as_sender(participant_keys(0, -1)[0])
    receipt = creator.create_task(
        ContentRef.from_cid(store.put(encode_model(weights))),
        ContentRef.from_cid(store.put(encode_manifest(manifest, features, labels))),
        TaskParams(1, 3, 1, 5001, 20, 20, 2, 20),
    )
    context = load_task_context(chain, store, receipt.one(TaskCreated).task_id)
    assert isinstance(context.predictor, ExactPredictor)
    expected = ExactPredictor(build_model("cnn", 64, 10, seed=1)).predict(weights, features)
    assert np.array_equal(context.predict(weights, features), expected)

"""The predictor prepares a batch of features once for every candidate model: the logits
are the bits a fresh predictor, or the layers applied one by one, give the same inputs."""

import hashlib
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from flare.models import ExactPredictor, TorchModelAdapter, build_model, exact_predictor
from flare.models.exact import compile_layers
from flare.models.exact_arithmetic import exact_float64

TINY = np.finfo(np.float32).smallest_subnormal


def wild(features: np.ndarray) -> np.ndarray:
    """``features`` with NaN, infinities, subnormals, -0 and a near-overflow value."""
    features = features.copy()
    features[0, :4] = [np.nan, np.inf, -np.inf, TINY]
    features[1, 10:13] = [-0.0, -TINY, 3e38]
    features[2, :] = TINY  # a row of subnormals only
    return features


def candidates(weights: dict, count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {k: (v + rng.normal(0, 0.05, v.shape)).astype(np.float32) for k, v in weights.items()}
        for _ in range(count)
    ]


def layer_by_layer(module, weights: dict, features: np.ndarray) -> np.ndarray:
    x = exact_float64(features)
    for layer in compile_layers(module, "", ""):
        x = layer.apply(x, weights)
    return x


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
def test_the_logits_are_pinned(digits, name):
    """Digests taken before batches were prepared once (at 1e4d939): any change of bits fails."""
    module = build_model(name, 64, 10, seed=0)
    weights = TorchModelAdapter(module).get_weights()
    logits = ExactPredictor(module).logits(weights, wild(digits.validation_features))
    pinned = {"logreg": "80a4422d74a0144d", "mlp": "dd953fa9f51a167b", "cnn": "f5f7eb6e97df6fcc"}
    assert hashlib.sha256(logits.tobytes()).hexdigest()[:16] == pinned[name]


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize(
    "features_of", [lambda d: d.validation_features, lambda d: wild(d.validation_features)]
)
def test_one_predictor_gives_every_candidate_a_fresh_predictors_bits(
    digits, trained, name, features_of
):
    module, weights = trained[name]
    features = features_of(digits)
    shared = ExactPredictor(module)
    for candidate in candidates(weights, 4):
        logits = shared.logits(candidate, features)
        assert logits.tobytes() == ExactPredictor(module).logits(candidate, features).tobytes()
        assert logits.tobytes() == layer_by_layer(module, candidate, features).tobytes()
        assert np.array_equal(shared.predict(candidate, features), logits.argmax(axis=1))


def test_features_changed_in_place_are_prepared_again(digits, trained):
    module, weights = trained["mlp"]
    features = digits.validation_features[:50].copy()
    predictor = ExactPredictor(module)
    before = predictor.logits(weights, features)
    features[3, 7] = np.nan  # the same array object, other bytes
    features[4] = -features[4]
    features[5, :5] = TINY
    after = predictor.logits(weights, features)
    assert after.tobytes() == ExactPredictor(module).logits(weights, features).tobytes()
    assert not np.array_equal(after[4], before[4])
    assert np.array_equal(after[6:], before[6:])  # samples are independent


def test_the_same_bytes_in_another_dtype_are_another_batch(trained):
    module, weights = trained["logreg"]
    as_floats = np.linspace(-2, 2, 64 * 3, dtype=np.float32).reshape(3, 64)
    as_integers = as_floats.view(np.int32)  # same shape and bytes, other values
    predictor = ExactPredictor(module)
    from_floats = predictor.logits(weights, as_floats)
    from_integers = predictor.logits(weights, as_integers)
    assert from_integers.tobytes() == ExactPredictor(module).logits(weights, as_integers).tobytes()
    assert not np.array_equal(from_floats, from_integers)


def test_batches_beyond_what_is_kept_give_the_same_bits(digits, trained, monkeypatch):
    module, weights = trained["mlp"]
    batches = [digits.validation_features[start : start + 40] for start in (0, 40, 80, 120)]
    predictor = ExactPredictor(module)
    first = [predictor.logits(weights, batch).tobytes() for batch in batches]
    again = [predictor.logits(weights, batch).tobytes() for batch in reversed(batches)]
    monkeypatch.setattr(exact_predictor, "KEPT_VALUES", 10)  # none is kept: each is prepared
    unkept = [predictor.logits(weights, batch).tobytes() for batch in batches]
    assert first == again[::-1] == unkept
    assert len(predictor._kept) == exact_predictor.KEPT_BATCHES


def test_threads_sharing_a_predictor_get_the_same_bits(digits, trained):
    module, weights = trained["mlp"]
    batches = [digits.validation_features[:60], wild(digits.validation_features[60:120])]
    models = candidates(weights, 3)
    fresh = {
        (m, b): ExactPredictor(module).logits(models[m], batches[b]).tobytes()
        for m in range(3)
        for b in range(2)
    }
    shared = ExactPredictor(module)
    jobs = [(m, b) for _ in range(8) for m in range(3) for b in range(2)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: shared.logits(models[job[0]], batches[job[1]]), jobs))
    assert [logits.tobytes() for logits in results] == [fresh[job] for job in jobs]


def test_a_predictor_pickles_without_its_kept_batches_and_predicts_alike() -> None:
    module = build_model("mlp", 64, 10, seed=0)
    predictor = ExactPredictor(module)
    features = np.random.default_rng(0).normal(size=(20, 64)).astype(np.float32)
    weights = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    before = predictor.logits(weights, features)
    copy = pickle.loads(pickle.dumps(predictor))  # as a Ray worker receives it
    assert copy._kept == []
    np.testing.assert_array_equal(copy.logits(weights, features), before)
    assert len(copy._kept) == 1  # the copy keeps batches again, under a lock of its own

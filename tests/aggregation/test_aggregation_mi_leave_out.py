"""The aggregate rule's leave-out loop carries its sum: every pass must still be, bit for bit,
``weighted_average`` over the updates left in, however many passes a bloc forces."""

from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest

from flare.aggregation import (
    AggregationContext,
    ClientUpdate,
    MIFilter,
    mi_filter,
    shrinking_average,
)
from flare.aggregation.arithmetic import weighted_average
from flare.aggregation.shrinking_average import PLAIN_PASSES, ShrinkingAverage
from flare.tensors import ModelSpec, Weights

SPEC: ModelSpec = {"w": (24, 16), "b": (16,), "z": (7,)}


def same_bytes(left: Weights, right: Weights) -> bool:
    return left.keys() == right.keys() and all(
        left[name].dtype == right[name].dtype and left[name].tobytes() == right[name].tobytes()
        for name in left
    )


def round_of(kind: str, count: int, rng: np.random.Generator) -> list[Weights]:
    """Deltas that break careless carrying: cancellation, outliers, zeros, subnormals."""
    deltas = []
    for i in range(count):
        delta = {
            name: rng.standard_normal(shape).astype(np.float32) for name, shape in SPEC.items()
        }
        delta["z"][:] = -0.0 if i % 2 else 0.0  # all-zero coordinates, both signs
        if kind == "common-direction":  # sums near 1000·count, averages cancel to tiny values
            delta["w"] = (delta["w"] * 1e-4 + 1e3 * (-1) ** i).astype(np.float32)
        elif kind == "outliers" and i % 5 == 0:  # far updates that leave: the bound grows loose
            delta["w"] *= np.float32(1e7)
        elif kind == "subnormal":
            delta["w"] = (np.float32(2.0**-140) * rng.integers(-3, 4, SPEC["w"])).astype(np.float32)
        elif kind == "mixed-types":
            delta["b"] = delta["b"].astype(np.float64) * 1e-3 if i % 3 else delta["b"]
            delta["w"] = delta["w"].astype(np.float16) if i % 4 == 1 else delta["w"]
        deltas.append(delta)
    return deltas


@pytest.fixture(params=[None, 2.0**-40, 2.0**-28], ids=["bound", "looser", "loosest"])
def looseness(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Counter:
    """The carried bound as it is, and widened (still a valid bound) so that many
    coordinates are summed plainly and whole tensors anchored again; the calls of each."""
    if request.param is not None:
        monkeypatch.setattr(shrinking_average, "UNIT_ROUNDOFF", request.param)
    calls: Counter = Counter()
    for method in ("_settled", "_anchor"):
        original = getattr(ShrinkingAverage, method)

        def counted(self, *args, _original=original, _method=method):
            calls[_method] += 1
            return _original(self, *args)

        monkeypatch.setattr(ShrinkingAverage, method, counted)
    return calls


@pytest.mark.parametrize(
    "kind", ["spread", "common-direction", "outliers", "subnormal", "mixed-types"]
)
@pytest.mark.parametrize("seed", range(3))
def test_every_pass_equals_a_fresh_weighted_average(
    kind: str, seed: int, looseness: Counter
) -> None:
    rng = np.random.default_rng(seed)
    count = 40
    deltas = round_of(kind, count, rng)
    weights = [float(rng.integers(1, 50)) for _ in range(count)]
    scales = [1.0 if rng.random() < 0.5 else float(rng.random()) for _ in range(count)]
    shrinking = ShrinkingAverage(deltas, weights, SPEC, scales)
    members = list(range(count))
    while len(members) > 2:
        expected = weighted_average(
            [deltas[i] for i in members],
            [weights[i] for i in members],
            SPEC,
            [scales[i] for i in members],
        )
        assert same_bytes(shrinking.average(), expected), (kind, seed, count - len(members))
        gone = rng.choice(members, size=int(rng.integers(1, 4)), replace=False).tolist()
        shrinking.leave_out(gone)
        members = [i for i in members if i not in gone]
    assert shrinking.passes > PLAIN_PASSES + 5
    if shrinking_average.UNIT_ROUNDOFF == 2.0**-40:  # coordinates summed plainly
        assert looseness["_settled"] > 0
    if shrinking_average.UNIT_ROUNDOFF == 2.0**-28:  # whole tensors anchored again
        assert looseness["_anchor"] > len(SPEC)


def test_a_sum_the_float64_loop_rounds_onto_a_float32_tie_is_settled_the_loop_s_way() -> None:
    # Without the first update, the loop's sum is b = 64·(1 + 2⁻²⁴): each later 2⁻⁴⁸ is under
    # half an ulp of it and vanishes. Divided by 64, b is a float32 tie, which rounds to even:
    # 1.0. With the first update (−b) in, at the anchor, the small terms add up instead; the
    # carried sum, the anchor's less −b, is a hair above the tie and would round up.
    big = 64 * (1 + 2.0**-24)
    deltas = [{"x": np.full(3, -1.0, np.float32)}] + [{"x": np.ones(3, np.float32)}] * 64
    shrinking = ShrinkingAverage(deltas, [1.0] * 65, {"x": (3,)}, [big, big] + [2.0**-48] * 63)
    for _ in range(PLAIN_PASSES + 1):  # the plain passes and the anchor
        shrinking.average()
    shrinking.leave_out([0])
    np.testing.assert_array_equal(shrinking.average()["x"], np.ones(3, np.float32))
    assert shrinking.passes > PLAIN_PASSES + 1


def test_a_coordinate_left_with_only_negative_zeros_averages_to_positive_zero() -> None:
    # The loop starts from +0.0, and +0.0 + −0.0 is +0.0: once the one non-zero term
    # leaves, the plain average is +0.0, never the −0.0 the remaining terms would add up to.
    deltas = [{"x": np.array([5.0] + [1.0] * 15, np.float32)}]
    deltas += [{"x": np.array([-0.0] + [1.0] * 15, np.float32)} for _ in range(5)]
    shrinking = ShrinkingAverage(deltas, [1.0] * 6, {"x": (16,)})
    for _ in range(PLAIN_PASSES + 1):
        shrinking.average()
    shrinking.leave_out([0])
    expected = np.array([0.0] + [1.0] * 15, np.float32)
    assert shrinking.average()["x"].tobytes() == expected.tobytes()


def test_leaving_out_a_delta_twice_or_one_never_given_changes_nothing() -> None:
    rng = np.random.default_rng(7)
    deltas = round_of("spread", 12, rng)
    shrinking = ShrinkingAverage(deltas, [1.0] * 12, SPEC)
    for _ in range(PLAIN_PASSES + 1):
        shrinking.average()
        shrinking.leave_out([3, 3])
    shrinking.leave_out([3, 99])
    expected = weighted_average([d for i, d in enumerate(deltas) if i != 3], [1.0] * 11, SPEC)
    assert same_bytes(shrinking.average(), expected)


VALIDATION = np.arange(4000, dtype=np.int64) % 4
DIMENSION = 32


def quality(value: float) -> float:
    """Share of the validation set labelled right: a sharp peak at 1, a broad one at 2."""
    return max(0.0, 1.0 - 2 * abs(value - 1.0), 0.99 - 0.5 * abs(value - 2.0))


def predict(weights: Weights, features: np.ndarray) -> np.ndarray:
    right = round(quality(float(np.mean(weights["w"], dtype=np.float64))) * VALIDATION.size)
    labels = VALIDATION.copy()
    labels[right:] = (labels[right:] + 1) % 4
    return labels


def bloc_round(rng: np.random.Generator) -> tuple[list[ClientUpdate], AggregationContext]:
    """60 honest updates near 1 and a bloc of 40 near 2: each bloc member labels the split
    almost as well as an honest one (not flagged alone), each one label worse than the
    last (give or take the noise), while any average with one of them in falls off the sharp
    peak. The rule leaves them out a score at a time: more than 20 passes."""
    updates = [
        ClientUpdate(
            f"h{i}",
            {"w": (1.0 + rng.normal(0, 0.004, DIMENSION)).astype(np.float32)},
            int(rng.integers(10, 100)),
        )
        for i in range(60)
    ]
    updates += [
        ClientUpdate(
            f"bloc{i}",
            {"w": (2.0 + 0.0005 * i + rng.normal(0, 0.004, DIMENSION)).astype(np.float32)},
            int(rng.integers(10, 100)),
        )
        for i in range(40)
    ]
    context = AggregationContext(
        global_weights={"w": np.zeros(DIMENSION, np.float32)},
        predict=predict,
        validation_features=np.zeros((VALIDATION.size, 1), np.float32),
        validation_labels=VALIDATION,
    )
    return updates, context


class PlainAverage(ShrinkingAverage):
    """The specification: ``weighted_average`` afresh over the members, every pass."""

    def __init__(self, deltas, weights, spec, scales=None) -> None:
        super().__init__(deltas, weights, spec, scales)
        self.scales = scales

    def average(self) -> Weights:
        self.passes += 1
        return weighted_average(
            [self.deltas[i] for i in self.members],
            [self.weights[i] for i in self.members],
            self.spec,
            None if self.scales is None else [self.scales[i] for i in self.members],
        )


@pytest.fixture
def count_passes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The passes of every ShrinkingAverage the filter makes, in order."""
    passes: list[int] = []
    original = ShrinkingAverage.average

    def counted(self: ShrinkingAverage) -> Weights:
        result = original(self)
        passes.append(self.passes)
        return result

    monkeypatch.setattr(ShrinkingAverage, "average", counted)
    yield passes


@pytest.mark.parametrize("weighting", ["capped", "equal"])
def test_a_bloc_that_forces_a_pass_per_member_gets_the_plain_loop_s_bytes(
    weighting: str, count_passes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    updates, context = bloc_round(np.random.default_rng(3))
    rule = MIFilter(count_weighting=weighting)
    carried = rule.aggregate(updates, context)
    assert max(count_passes) > 20
    assert carried.flagged == [f"bloc{i}" for i in range(40)]
    assert carried.accepted == [f"h{i}" for i in range(60)]

    monkeypatch.setattr(mi_filter, "ShrinkingAverage", PlainAverage)
    plain = rule.aggregate(updates, context)
    assert same_bytes(carried.delta, plain.delta)
    assert (carried.accepted, carried.flagged) == (plain.accepted, plain.flagged)
    assert (carried.reasons, carried.notes, carried.scores) == (
        plain.reasons,
        plain.notes,
        plain.scores,
    )

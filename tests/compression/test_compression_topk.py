"""The topk codec: which entries travel, error feedback, and refusal of forged indices."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flare.compression import MalformedUpdateError, TopKCodec, UpdateBinding, decode_update
from flare.compression.decode import UPDATE_DTYPES
from flare.compression.topk import kept_entries, largest_entries
from flare.compression.wire import load_container_tensors, read_container_header, write_container

BINDING = UpdateBinding("0xc1", "task-7", 3, 1, "bafkreigh2akiscaildc", 120)
SPEC = {"w": (20, 10), "b": (10,)}


def delta_of(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SPEC.items()}


def forged(blob: bytes, name: str, array: np.ndarray) -> bytes:
    """``blob`` with stored tensor ``name`` replaced, metadata and everything else kept."""
    metadata = read_container_header(blob, 10**6, UPDATE_DTYPES).metadata
    tensors = load_container_tensors(blob)
    tensors[name] = array
    return write_container(tensors, metadata)


def test_the_largest_entries_travel_exactly_and_vectors_travel_dense():
    delta = delta_of(0)
    blob = TopKCodec(per_mille=50).new_encoder(SPEC, 0).encode(delta, BINDING)
    decoded = decode_update(blob, SPEC).delta
    flat = delta["w"].ravel()
    keep = kept_entries(flat.size, 50)
    assert keep == 10
    largest = np.argsort(-np.abs(flat))[:keep]
    expected = np.zeros_like(flat)
    expected[largest] = flat[largest]
    assert decoded["w"].ravel().tobytes() == expected.tobytes()
    assert decoded["b"].tobytes() == delta["b"].tobytes()


@settings(max_examples=300, deadline=None)
@given(
    values=hnp.arrays(
        np.float64,
        st.integers(1, 300),
        elements=st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 1e-300, 7.0, -7.0]),
    ),
    data=st.data(),
)
def test_the_largest_entries_are_a_stable_sorts_first_ties_to_the_lower_index(values, data):
    """Ties are the rule here (nine distinct magnitudes at most), and zeros of both signs."""
    keep = data.draw(st.integers(1, values.size))
    stable = np.argsort(-np.abs(values), kind="stable")[:keep]
    chosen = largest_entries(values, keep, np.empty_like(values))
    assert chosen.dtype == np.int32
    assert chosen.tolist() == sorted(stable.tolist())


def test_error_feedback_delivers_every_entry_eventually():
    encoder = TopKCodec(per_mille=100).new_encoder(SPEC, 0)
    sent = np.zeros(SPEC["w"])
    total = np.zeros(SPEC["w"])
    for round_number in range(6):
        delta = delta_of(round_number)
        sent += decode_update(encoder.encode(delta, BINDING), SPEC).delta["w"]
        total += delta["w"]
    owed = encoder.error_memory["w"].reshape(SPEC["w"])
    np.testing.assert_allclose(sent + owed, total, rtol=0, atol=1e-5)
    assert np.abs(owed).max() < np.abs(total).max()


def test_a_refused_encode_leaves_the_error_memory_as_it_was():
    encoder, twin = (TopKCodec(per_mille=100).new_encoder(SPEC, 0) for _ in range(2))
    for each in (encoder, twin):
        each.encode(delta_of(1), BINDING)
        each.error_memory["w"][0] = 3e38
    overflowing = delta_of(2)
    overflowing["w"][0, 0] = 3e38  # with the carried 3e38, past float32's range
    with pytest.raises(MalformedUpdateError, match="overflows float32 once summed"):
        encoder.encode(overflowing, BINDING)
    assert encoder.error_memory["w"].tobytes() == twin.error_memory["w"].tobytes()
    assert encoder.encode(delta_of(3), BINDING) == twin.encode(delta_of(3), BINDING)


def test_kept_entries_round_up_and_never_reach_zero():
    assert kept_entries(1000, 10) == 10
    assert kept_entries(1001, 10) == 11
    assert kept_entries(3, 1) == 1


def test_a_tensor_whose_indices_would_cost_more_than_itself_travels_dense():
    layout = TopKCodec(per_mille=500).layout({"w": (4, 4), "v": (40, 40)})
    assert [entry.kind for entry in layout] == ["dense", "dense"]
    layout = TopKCodec(per_mille=499).layout({"v": (40, 40)})
    assert [(entry.kind, entry.keep) for entry in layout] == [("sparse", 799)]


VALID = TopKCodec(per_mille=50).new_encoder(SPEC, 0).encode(delta_of(0), BINDING)
INDICES = load_container_tensors(VALID)["w:I"]


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        (np.concatenate([INDICES[:-1], [200]]), "outside"),
        (np.concatenate([[-1], INDICES[1:]]), "outside"),
        (INDICES[::-1].copy(), "strictly increasing"),
        (np.concatenate([INDICES[:1], INDICES[:-1]]), "strictly increasing"),
    ],
)
def test_forged_indices_are_refused(indices, message):
    with pytest.raises(MalformedUpdateError, match=message) as refusal:
        decode_update(forged(VALID, "w:I", indices.astype(np.int32)), SPEC)
    assert refusal.value.__cause__ is None


def test_indices_stored_with_another_dtype_are_refused():
    with pytest.raises(MalformedUpdateError, match="dtype F32, expected I32"):
        decode_update(forged(VALID, "w:I", INDICES.astype(np.float32)), SPEC)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.int32, INDICES.shape, elements=st.integers(-(2**31), 2**31 - 1)))
def test_any_indices_decode_only_when_in_range_and_strictly_increasing(indices):
    blob = forged(VALID, "w:I", indices)
    valid = bool(((indices >= 0) & (indices < 200)).all() and (np.diff(indices) > 0).all())
    try:
        decoded = decode_update(blob, SPEC).delta["w"].ravel()
    except MalformedUpdateError as refusal:
        assert not valid and refusal.__cause__ is None
        return
    assert valid
    values = load_container_tensors(VALID)["w:V"]
    assert decoded[indices].tobytes() == values.tobytes()
    assert np.count_nonzero(decoded) <= len(indices)

"""compute_cid beyond the Kubo vectors: the single-leaf rule, inputs, parameter checks."""

import array
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flare.storage import CHUNK_SIZE, CODEC_DAG_PB, CODEC_RAW, MAX_LINKS, Cid, compute_cid


def test_kubo_defaults() -> None:
    assert CHUNK_SIZE == 262_144
    assert MAX_LINKS == 8192 // (34 + 8 + 5) == 174


@given(st.binary(max_size=300), st.integers(min_value=300, max_value=CHUNK_SIZE))
def test_blob_of_at_most_one_chunk_is_a_raw_leaf(data: bytes, chunk_size: int) -> None:
    assert compute_cid(data, chunk_size=chunk_size) == Cid(CODEC_RAW, hashlib.sha256(data).digest())


@given(st.binary(min_size=2, max_size=300))
def test_blob_of_several_chunks_is_a_dag_pb_root(data: bytes) -> None:
    assert compute_cid(data, chunk_size=1).codec == CODEC_DAG_PB


def test_one_byte_past_a_chunk_changes_layout() -> None:
    assert compute_cid(bytes(CHUNK_SIZE)).codec == CODEC_RAW
    assert compute_cid(bytes(CHUNK_SIZE + 1)).codec == CODEC_DAG_PB


def test_bytes_like_inputs_hash_their_bytes() -> None:
    words = array.array("I", range(100_000))
    expected = compute_cid(words.tobytes())
    assert expected.codec == CODEC_DAG_PB
    assert compute_cid(words) == expected
    assert compute_cid(memoryview(words)) == expected
    assert compute_cid(bytearray(words.tobytes())) == expected


@pytest.mark.parametrize(("chunk_size", "max_links"), [(0, 174), (-1, 174), (16, 1), (16, 0)])
def test_degenerate_layout_parameters_are_refused(chunk_size: int, max_links: int) -> None:
    with pytest.raises(ValueError):
        compute_cid(b"data", chunk_size=chunk_size, max_links=max_links)

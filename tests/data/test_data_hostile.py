"""Hostile and unlucky data files: each is refused in one line, before it can cost much.

Every refusal is a :class:`DataError`; the ones that used to allocate gigabytes are
measured with tracemalloc (numpy reports its allocations to it).
"""

import contextlib
import io
import logging
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flare.data import MAX_CLASSES, load_dataset, read_labelled_npz
from flare.errors import DataError
from flare.federation.agents.local_data import read_client_data

MIB = 1024**2


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def forged_npy(shape: tuple, descr: str = "<f8", data: bytes = b"", version: int = 1) -> bytes:
    """An .npy member whose header declares whatever the test wants, followed by ``data``."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode() + b"\n"
    length = struct.pack("<H" if version == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header + data


def write_npz(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, payload in members.items():
            archive.writestr(f"{name}.npy", payload)
    return path


def labelled(num_samples: int = 40, num_features: int = 3) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "X": npy(rng.normal(size=(num_samples, num_features))),
        "y": npy(np.arange(num_samples) % 4),
    }


def refused_within(limit_bytes: int, call: Callable[[], object], match: str) -> None:
    """``call`` raises a DataError matching ``match`` while allocating under ``limit_bytes``."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=match):
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit_bytes, f"peak {peak} bytes"


def test_a_declared_shape_of_ten_trillion_rows_is_refused_from_its_header(tmp_path):
    path = write_npz(
        tmp_path / "huge.npz",
        {"X": forged_npy((10**13, 1), data=bytes(16)), "y": npy(np.zeros(2, dtype=np.int64))},
    )
    refused_within(
        MIB, lambda: load_dataset(str(path), seed=0), r"declares shape \(10000000000000, 1\)"
    )


def test_an_honest_array_over_the_size_cap_is_refused_before_it_is_read(tmp_path):
    path = write_npz(tmp_path / "big.npz", labelled(num_samples=50, num_features=4))
    refused_within(
        MIB,
        lambda: load_dataset(str(path), seed=0, max_bytes=1000),
        "2000 bytes as float64, over the 1000-byte limit",
    )


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, X=np.zeros((3_000_000, 1)), y=np.zeros(3_000_000, dtype=np.int64))
    assert path.stat().st_size < 200_000
    refused_within(MIB, lambda: load_dataset(str(path), seed=0), "refused as a zip bomb")


def test_a_small_compressed_file_of_zeros_is_not_a_bomb(tmp_path):
    path = tmp_path / "plain.npz"
    features = np.zeros((40, 3))
    features[:, 0] = np.arange(40)
    np.savez_compressed(path, X=features, y=np.arange(40) % 2)
    assert load_dataset(str(path), seed=0).num_features == 3


def test_members_compressed_without_an_output_bound_are_refused(tmp_path):
    path = write_npz(tmp_path / "bz.npz", labelled(), compression=zipfile.ZIP_BZIP2)
    with pytest.raises(DataError, match="compression method 12"):
        load_dataset(str(path), seed=0)


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (forged_npy((40, 3), version=3), r"\.npy format 3\.0; 1\.0 and 2\.0 are read"),
        (b"\x93NUMPY\x02\x00" + struct.pack("<I", 60_000) + b" " * 64, "60000-byte .npy header"),
        (b"\x93NUMPY\x01\x00" + struct.pack("<H", 40), "ends inside its .npy header"),
        (b"not numpy at all", "is not an .npy array"),
        (forged_npy((40, -3)), "negative dimension"),
        (b"\x93NUMPY\x01\x00" + struct.pack("<H", 9) + b"{'a': 1}\n", "malformed .npy header"),
        (npy(np.zeros((40, 3), dtype=np.complex64)), "only plain numbers"),
        (npy(np.zeros((40, 3), dtype=np.longdouble)), "only plain numbers"),
        (npy(np.zeros(40, dtype=[("a", "<f8"), ("b", "<i4")])), "only plain numbers"),
        (npy(np.full((40, 3), "abc")), "only plain numbers"),
        (npy(np.zeros((40,))), r"need X of shape \(n, \.\.\.\)"),
        (forged_npy((40, 3), data=bytes(8)), r"holds 8"),
    ],
)
def test_malformed_array_headers_are_one_line_errors(tmp_path, member, message):
    path = write_npz(tmp_path / "bad.npz", {**labelled(), "X": member})
    with pytest.raises(DataError, match=message) as refusal:
        load_dataset(str(path), seed=0)
    assert "\n" not in str(refusal.value)


def test_a_truncated_deflate_stream_is_damaged_not_a_traceback(tmp_path):
    path = write_npz(tmp_path / "cut.npz", labelled(), compression=zipfile.ZIP_DEFLATED)
    blob = bytearray(path.read_bytes())
    data_start = blob.index(b"X.npy") + len("X.npy") + 20  # inside X's deflate stream
    blob[data_start : data_start + 8] = b"\xff" * 8
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="damaged"):
        load_dataset(str(path), seed=0)


def overstate_size(path: Path, member: str, size: int) -> None:
    """Rewrite ``member``'s uncompressed size in its local and central zip headers."""
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(member).header_offset
    blob = bytearray(path.read_bytes())
    central = blob.index(b"PK\x01\x02")
    while blob[central + 46 : central + 46 + len(member)] != member.encode():
        central = blob.index(b"PK\x01\x02", central + 1)
    for field in (local + 22, central + 24):
        blob[field : field + 4] = struct.pack("<I", size)
    path.write_bytes(bytes(blob))


def test_a_zip_entry_that_overstates_its_size_is_caught_when_read(tmp_path):
    header_only = forged_npy((40, 3), data=bytes(8))
    path = write_npz(
        tmp_path / "short.npz", {**labelled(), "X": header_only}, compression=zipfile.ZIP_DEFLATED
    )
    overstate_size(path, "X.npy", len(header_only) - 8 + 40 * 3 * 8)
    with pytest.raises(DataError, match="holds 8 bytes of data, its header declares 960"):
        load_dataset(str(path), seed=0)


def test_test_features_must_match_the_training_width(tmp_path):
    members = {**labelled(), "X_test": npy(np.zeros((5, 4))), "y_test": npy(np.zeros(5, int))}
    path = write_npz(tmp_path / "widths.npz", members)
    with pytest.raises(DataError, match="X_test has 4 features, X has 3"):
        load_dataset(str(path), seed=0)


def test_two_members_with_one_name_are_ambiguous(tmp_path):
    path = tmp_path / "twice.npz"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        for name, payload in [*labelled().items(), ("y", npy(np.ones(40, dtype=np.int64)))]:
            archive.writestr(f"{name}.npy", payload)
    with pytest.raises(DataError, match="two arrays named 'y'"):
        load_dataset(str(path), seed=0)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.full(40, 10**9), "label 1000000000 is out of range"),
        (np.full(40, 2**64 - 1, dtype=np.uint64), "label 18446744073709551615 is out of range"),
        (np.arange(40) - 1, "non-negative class indices, found -1"),
        (np.full(40, 1.5), "labels integers"),
    ],
)
def test_labels_outside_the_class_range_are_refused_before_any_model_sizing(
    tmp_path, labels, message
):
    path = write_npz(tmp_path / "labels.npz", {**labelled(), "y": npy(labels)})
    refused_within(MIB, lambda: load_dataset(str(path), seed=0), message)


def test_the_class_limit_is_inclusive_below_max_classes(tmp_path):
    labels = np.arange(40) % 2
    labels[0] = MAX_CLASSES - 1
    path = write_npz(tmp_path / "many.npz", {**labelled(), "y": npy(labels)})
    assert load_dataset(str(path), seed=0).num_classes == MAX_CLASSES


@pytest.mark.parametrize("value", [1e307, -1e39, np.inf])
def test_features_float32_cannot_hold_are_refused(tmp_path, value):
    features = np.random.default_rng(0).normal(size=(40, 3))
    features[5, 1] = value
    path = write_npz(tmp_path / "wide.npz", {**labelled(), "X": npy(features)})
    with pytest.raises(DataError, match=r"beyond float32's|NaN or Inf"):
        load_dataset(str(path), seed=0)


def test_standardising_past_float32_is_refused_not_silently_infinite(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 2)) * 1e-40  # a spread float64 keeps but float32 cannot
    test_features = np.ones((10, 2))
    members = {**labelled(), "X": npy(features), "X_test": npy(test_features)}
    members["y_test"] = npy(np.arange(10) % 4)
    path = write_npz(tmp_path / "spread.npz", members)
    with pytest.raises(DataError, match="some test features exceed float32's range"):
        load_dataset(str(path), seed=0)


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.zeros((40, 0)), np.arange(40) % 2, r"no features \(shape \(40, 0\)\)"),
        (np.zeros((0, 3)), np.zeros(0, dtype=np.int64), "no samples"),
        (np.eye(2), np.array([0, 1]), "2 samples are too few to split"),
        (np.eye(3), np.array([0, 1, 0]), "training \\(1, need 2\\)"),
        (np.arange(80.0).reshape(40, 2), np.full(40, 3), "every sample has label 3"),
    ],
)
def test_degenerate_data_sets_are_refused(tmp_path, features, labels, message):
    path = write_npz(tmp_path / "small.npz", {"X": npy(features), "y": npy(labels)})
    with pytest.raises(DataError, match=message):
        load_dataset(str(path), seed=0)


def test_four_samples_are_the_fewest_that_split(tmp_path):
    path = write_npz(tmp_path / "four.npz", {"X": npy(np.eye(4)), "y": npy(np.array([0, 1, 0, 1]))})
    data = load_dataset(str(path), seed=0)
    assert (len(data.train_labels), len(data.validation_labels), len(data.test_labels)) == (2, 1, 1)


def test_a_class_only_in_the_test_split_is_warned_about(tmp_path, caplog):
    rng = np.random.default_rng(0)
    members = {
        **labelled(),
        "X_test": npy(rng.normal(size=(10, 3))),
        "y_test": npy(np.full(10, 7)),
    }
    path = write_npz(tmp_path / "unseen.npz", members)
    with caplog.at_level(logging.WARNING, logger="flare.data.datasets"):
        data = load_dataset(str(path), seed=0)
    assert data.num_classes == 8
    assert "class(es) 7 have no training samples" in caplog.text


def test_a_client_file_is_checked_against_the_task_before_its_arrays_are_read(tmp_path):
    path = write_npz(
        tmp_path / "client.npz",
        {"X": forged_npy((10**9, 3), data=bytes(8)), "y": npy(np.zeros(2, dtype=np.int64))},
    )
    with pytest.raises(DataError, match="declares shape"):
        read_client_data(path, "c", num_features=3, num_classes=4)
    path = write_npz(tmp_path / "client.npz", labelled(num_features=5))
    refused_within(
        MIB,
        lambda: read_client_data(path, "c", num_features=64, num_classes=4),
        "5 features; the task's model takes 64",
    )


def test_a_client_file_must_fit_the_task_classes_and_float32(tmp_path):
    path = write_npz(tmp_path / "client.npz", labelled())
    client = read_client_data(path, "c", num_features=3, num_classes=4)
    assert client.features.dtype == np.float32 and client.num_samples == 40
    with pytest.raises(DataError, match=r"label 3 is out of range; .* below 3"):
        read_client_data(path, "c", num_features=3, num_classes=3)
    huge = np.ones((40, 3))
    huge[0, 0] = 1e300  # float32 would make this inf without a word
    write_npz(path, {**labelled(), "X": npy(huge)})
    with pytest.raises(DataError, match="beyond float32's"):
        read_client_data(path, "c", num_features=3, num_classes=4)


def _valid_archive(compression: int) -> bytes:
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("X.npy", npy(rng.normal(size=(12, 2))))
        archive.writestr("y.npy", npy(np.arange(12) % 4))
    return buffer.getvalue()


VALID_ARCHIVES = {
    "stored": _valid_archive(zipfile.ZIP_STORED),
    "deflated": _valid_archive(zipfile.ZIP_DEFLATED),
}


def _load_both_ways(path: Path) -> None:
    """Each reader returns or raises DataError; anything else fails the test."""
    with contextlib.suppress(DataError):
        load_dataset(str(path), seed=0)
    with contextlib.suppress(DataError):
        read_labelled_npz(path, num_features=2, num_classes=4)


def test_the_unmutated_fuzz_seeds_load(tmp_path):
    for kind, blob in VALID_ARCHIVES.items():
        path = tmp_path / f"{kind}.npz"
        path.write_bytes(blob)
        assert load_dataset(str(path), seed=0).num_classes == 4
        assert read_labelled_npz(path, num_features=2, num_classes=4)[0].shape == (12, 2)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(sorted(VALID_ARCHIVES)),
    edits=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), max_size=4),
    keep=st.none() | st.integers(0, 2**16),
)
def test_mutated_archives_load_or_raise_only_data_error(tmp_path, kind, edits, keep):
    blob = bytearray(VALID_ARCHIVES[kind])
    for position, value in edits:
        blob[position % len(blob)] = value
    if keep is not None:
        del blob[keep % len(blob) :]
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(bytes(blob))
    _load_both_ways(path)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.binary(max_size=1024), zip_magic=st.booleans())
def test_random_bytes_raise_only_data_error(tmp_path, junk, zip_magic):
    path = tmp_path / "junk.npz"
    path.write_bytes((b"PK\x03\x04" if zip_magic else b"") + junk)
    with pytest.raises(DataError):
        load_dataset(str(path), seed=0)

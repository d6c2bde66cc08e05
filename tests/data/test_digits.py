"""The bundled digits are read without importing scikit-learn, bit for bit as it loads them."""

import subprocess
import sys

import pytest
from sklearn.datasets import load_digits

from flare.data import datasets
from flare.data.datasets import _read_digits
from flare.errors import DataError


def test_digits_match_scikit_learns_loader_bit_for_bit() -> None:
    features, labels = _read_digits()
    expected = load_digits()

    for ours, theirs in ((features, expected.data), (labels, expected.target)):
        assert ours.dtype == theirs.dtype
        assert ours.shape == theirs.shape
        assert ours.strides == theirs.strides
        assert ours.tobytes() == theirs.tobytes()


def test_loading_digits_does_not_import_scikit_learn() -> None:
    script = (
        "import sys\n"
        "from flare.data.datasets import load_dataset\n"
        "load_dataset('digits', seed=0)\n"
        "print(any(name.split('.')[0] == 'sklearn' for name in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "False"


def test_a_missing_bundled_file_is_a_data_error(tmp_path, monkeypatch) -> None:
    """A scikit-learn whose layout moved the CSV gives one clear line, not a traceback."""
    spec = type("Spec", (), {"submodule_search_locations": [str(tmp_path)]})()
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(DataError, match="bundled digits are not readable"):
        _read_digits()

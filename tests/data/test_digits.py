"""The bundled digits are read without importing scikit-learn, bit for bit as it loads them."""

import subprocess
import sys

from sklearn.datasets import load_digits

from flare.data.datasets import _read_digits


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

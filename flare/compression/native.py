"""The native lane for ``none`` and ``powersgd`` blobs: each written and read in one call.

``native/src/writer.rs`` and ``reader.rs`` do, for one blob, what the writer and the
decoder's short path do in Python: the header around the binding, the power step, the
grids, the exact rebuild and error feedback. They are handed each codec configuration's
pieces from here, so the bytes they put out and accept are those of
:class:`~flare.compression.container.UpdateContainer`. They answer None wherever they do not
take a blob (an unfamiliar header, a value off its grid, a rebuild float32 cannot hold,
input that is not contiguous float32), and Python, the reference, then takes the blob
whole: with its own reasons for a refusal, and its own arithmetic for the rare cases left
to it.

Only the power step's floats differ between the lanes. Both take float32 products: numpy's
through the CPU's BLAS kernel, the native ones as chains of fused multiply-adds in an order
``native/src/dot.rs`` fixes, so that a client writes the same blob on any
x86-64 CPU. A blob is written all by one lane or all by the other, and every decoder
rebuilds either exactly. Where ``native/`` is not built, Python does everything.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from flare.compression.base import DecodedUpdate, UpdateBinding
from flare.compression.container import HEADER_PREFIX, UpdateContainer
from flare.compression.layout import DENSE, LOW_RANK

try:  # built from native/ by scripts/setup.sh
    from flare_native import UpdateReader, UpdateWriter
except ImportError:
    UpdateReader = UpdateWriter = None

LayerRow = tuple[str, list[int], int, int, int]
"""A model tensor as the native side takes it: name, shape, rank (0: dense) and the byte
offsets of the tensor or of its factors P and Q in the data section."""


_python_only = False


@contextmanager
def python_only() -> Iterator[None]:
    """Every blob written and read by Python inside the block, as where ``native/`` is not
    built: for comparing the two lanes (tests, ``benchmarks/bench_compression.py``)."""
    global _python_only
    previous, _python_only = _python_only, True
    try:
        yield
    finally:
        _python_only = previous


def native_layers(container: UpdateContainer) -> list[LayerRow] | None:
    """``container``'s tensors for the native side, or None where one is neither dense nor
    ``lowrank``, the container is gzip-framed, this machine is big-endian or the native lane
    is off."""
    if UpdateWriter is None or _python_only or container.gzip_wrapped or sys.byteorder != "little":
        return None
    begins = {span.name: span.begin for span in container.spans}
    rows: list[LayerRow] = []
    for entry in container.layout:
        if entry.kind == DENSE:
            rows.append((entry.name, list(entry.shape), 0, begins[entry.name], 0))
        elif entry.kind == LOW_RANK:
            p_name, q_name = entry.stored_tensors()
            rows.append((entry.name, list(entry.shape), entry.rank, begins[p_name], begins[q_name]))
        else:
            return None
    return rows


_writers: dict[tuple[bytes, bool], "UpdateWriter | None"] = {}


def native_writer(container: UpdateContainer) -> "UpdateWriter | None":
    """The writer of ``container``'s blobs, or None where the native lane does not take them;
    one per configuration (its header's suffix names the codec, its params and layout), so
    encoders hold none and stay copyable."""
    if _python_only:
        return None
    key = (container.suffix, container.gzip_wrapped)
    if key not in _writers:
        layers = native_layers(container)
        _writers[key] = (
            None
            if layers is None
            else UpdateWriter(HEADER_PREFIX, container.suffix, container.data_bytes, layers)
        )
    return _writers[key]


def write_natively(
    container: UpdateContainer,
    delta: object,
    binding: UpdateBinding,
    error_memory: dict | None = None,
    warm_q: dict | None = None,
) -> tuple[bytes, list[str]] | None:
    """The blob of ``delta`` (and a PowerSGD encoder's state) written natively, with the
    tensors whose new warm start has an all-zero column; None, with nothing changed, where
    the native lane does not take it (then Python writes it)."""
    writer = native_writer(container)
    if writer is None or type(delta) is not dict:
        return None
    return writer.encode(delta, binding, error_memory or {}, warm_q or {})


@lru_cache(maxsize=64)
def native_reader(spec: tuple) -> "UpdateReader":
    """The reader of one spec's blobs; it knows the configurations :func:`learn` taught it."""
    return UpdateReader(HEADER_PREFIX, UpdateBinding, DecodedUpdate)


def learn(spec: tuple, container: UpdateContainer) -> None:
    """Let the native reader of ``spec`` read ``container``'s blobs from now on (a no-op
    where it cannot)."""
    layers = native_layers(container)
    if layers is not None:
        reader = native_reader(spec)
        reader.register(container.suffix, container.codec, container.data_bytes, layers)


def read_natively(container: bytes, spec: tuple, max_header_bytes: int) -> DecodedUpdate | None:
    """The update in the (not gzip-framed) ``container`` if the native reader takes it."""
    if UpdateReader is None or _python_only:
        return None
    return native_reader(spec).read(container, max_header_bytes)

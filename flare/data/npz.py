"""Reading ``.npz`` archives without trusting them.

``numpy.load`` believes an archive's headers: a member declaring a shape of
``(10**13, 1)`` goes straight to the allocator, and a small deflated member can
inflate to gigabytes. Here every member is judged by its zip entry and its ``.npy``
header before a byte of array data is inflated, and then exactly the declared
number of bytes is read, so a header that lies can cost no more than it declared.
Only plain numeric arrays are ever built; nothing is unpickled.
"""

import io
import math
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from flare.errors import DataError

MAX_DATASET_BYTES = 2 * 1024**3
"""Default cap on a data set's arrays, counted at 8 bytes a value (their float64 size)."""

MAX_COMPRESSION_RATIO = 200
"""A deflated member inflating more than this many times over is refused as a zip bomb..."""

RATIO_CHECK_ABOVE = 16 * 1024**2
"""...once it declares more than this many bytes: small arrays of zeros are no threat."""

_MAX_NPY_HEADER = 16 * 1024  # numpy writes ~128 bytes; it refuses past 10,000 characters
_READ_CHUNK = 1024**2
_NPY_VERSIONS = {(1, 0): "<H", (2, 0): "<I"}
_PLAIN_KINDS = "biuf"
_HEADER_PARSE_ERRORS = (
    ValueError,  # numpy's own refusals, and UnicodeDecodeError
    SyntaxError,  # ast.literal_eval of a header that is not a literal
    TypeError,  # a descr numpy cannot turn into a dtype
    KeyError,
    IndexError,
    RecursionError,  # a deeply nested literal
    OverflowError,
    tokenize.TokenError,  # numpy retokenises headers it takes for Python 2's
)
_INFLATE_ERRORS = (
    OSError,
    EOFError,
    zlib.error,
    zipfile.BadZipFile,
    RuntimeError,
    NotImplementedError,  # a zip feature or version zipfile does not read
    ValueError,  # e.g. a member name that is not valid UTF-8
)


@dataclass(frozen=True)
class ArrayHeader:
    """What one ``.npy`` member of an archive declares about its array."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


class NpzArchive:
    """An open ``.npz`` whose named arrays are checked before they are read.

    Use as a context manager; every failure is a :class:`DataError` naming the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise DataError(f"data set not found: {path}")
        try:
            self._zip = zipfile.ZipFile(path)
        except _INFLATE_ERRORS as exc:
            raise DataError(f"{path} is not a readable .npz archive ({exc})") from exc
        entries: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename.removesuffix(".npy")
            if name in entries:
                self._zip.close()
                raise DataError(f"{path} holds two arrays named {name!r}")
            entries[name] = info
        self._entries = entries
        self._headers: dict[str, tuple[ArrayHeader, int]] = {}

    def __enter__(self) -> "NpzArchive":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._zip.close()

    @property
    def names(self) -> frozenset[str]:
        """The arrays the archive holds, by the name ``numpy.savez`` gave them."""
        return frozenset(self._entries)

    def header(self, name: str) -> ArrayHeader:
        """The declared shape and dtype of ``name``, read without inflating its data."""
        if name not in self._headers:
            self._headers[name] = self._read_header(name)
        return self._headers[name][0]

    def read(self, name: str) -> np.ndarray:
        """The array ``name``: exactly the bytes its header declares, or a :class:`DataError`."""
        header = self.header(name)
        data_offset = self._headers[name][1]
        buffer = bytearray(header.nbytes)
        filled = 0
        try:
            with self._zip.open(self._entries[name]) as member:
                member.read(data_offset)
                while filled < len(buffer):
                    chunk = member.read(min(_READ_CHUNK, len(buffer) - filled))
                    if not chunk:
                        break
                    buffer[filled : filled + len(chunk)] = chunk
                    filled += len(chunk)
        except _INFLATE_ERRORS as exc:
            raise DataError(f"{self.path}: array {name!r} is damaged ({exc})") from exc
        if filled < len(buffer):
            raise DataError(
                f"{self.path}: array {name!r} holds {filled} bytes of data, "
                f"its header declares {len(buffer)}"
            )
        array = np.frombuffer(buffer, dtype=header.dtype, count=header.count)
        return array.reshape(header.shape, order="F" if header.fortran_order else "C")

    def _read_header(self, name: str) -> tuple[ArrayHeader, int]:
        info = self._entries[name]
        where = f"{self.path}: array {name!r}"
        if info.flag_bits & 0x1:
            raise DataError(f"{where} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bzip2 and lzma members inflate without an output bound inside zipfile
            raise DataError(
                f"{where} uses zip compression method {info.compress_type}; "
                "save it with numpy.savez or numpy.savez_compressed"
            )
        if info.file_size > RATIO_CHECK_ABOVE and info.file_size > MAX_COMPRESSION_RATIO * max(
            info.compress_size, 1
        ):
            raise DataError(
                f"{where} inflates {info.file_size} bytes from {info.compress_size}, more than "
                f"{MAX_COMPRESSION_RATIO}x; refused as a zip bomb (save it with numpy.savez, "
                "uncompressed, if the data really is this repetitive)"
            )
        try:
            with self._zip.open(info) as member:
                prefix = member.read(8)
                version = _npy_version(prefix, where)
                length_format = _NPY_VERSIONS[version]
                length_field = member.read(struct.calcsize(length_format))
                if len(length_field) != struct.calcsize(length_format):
                    raise DataError(f"{where} ends inside its .npy header")
                (header_length,) = struct.unpack(length_format, length_field)
                if header_length > _MAX_NPY_HEADER:
                    raise DataError(f"{where} declares a {header_length}-byte .npy header")
                text = member.read(header_length)
        except _INFLATE_ERRORS as exc:
            raise DataError(f"{where} is damaged ({exc})") from exc
        if len(text) != header_length:
            raise DataError(f"{where} ends inside its .npy header")
        parse = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        try:
            shape, fortran_order, dtype = parse(io.BytesIO(length_field + text))
        except _HEADER_PARSE_ERRORS as exc:
            raise DataError(f"{where} has a malformed .npy header ({exc})") from exc
        if dtype.kind not in _PLAIN_KINDS or dtype.itemsize > 8:
            raise DataError(f"{where} has dtype {dtype}; only plain numbers are read")
        if any(dim < 0 for dim in shape):
            raise DataError(f"{where} declares a negative dimension {shape}")
        header = ArrayHeader(name, tuple(shape), dtype, fortran_order)
        data_offset = len(prefix) + len(length_field) + header_length
        if data_offset + header.nbytes != info.file_size:
            raise DataError(
                f"{where} declares shape {header.shape} of {dtype} ({header.nbytes} bytes) "
                f"but the archive member holds {info.file_size - data_offset}"
            )
        return header, data_offset


def check_size(headers: list[ArrayHeader], max_bytes: int, what: str) -> None:
    """Refuse arrays that would take more than ``max_bytes`` once widened to float64."""
    working = sum(header.count for header in headers) * 8
    if working > max_bytes:
        raise DataError(
            f"{what}: {working} bytes as float64, over the {max_bytes}-byte limit on a data set"
        )


def _npy_version(prefix: bytes, where: str) -> tuple[int, int]:
    if len(prefix) != 8 or prefix[:6] != b"\x93NUMPY":
        raise DataError(f"{where} is not an .npy array")
    version = (prefix[6], prefix[7])
    if version not in _NPY_VERSIONS:
        raise DataError(f"{where} uses .npy format {version[0]}.{version[1]}; 1.0 and 2.0 are read")
    return version

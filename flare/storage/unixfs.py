"""The CID Kubo gives a blob, computed locally without an IPFS library.

Flare's local stores must name a blob exactly as ``ipfs add --cid-version=1
--raw-leaves`` would, so that a blob written through the embedded store can be
fetched from a Kubo node by the same CID and vice versa. That means
reproducing Kubo's importer byte for byte (boxo ``ipld/unixfs/importer``):

* the chunker cuts fixed chunks of 262144 bytes (``size-262144``);
* zero or one chunk: the CID is a single ``raw`` leaf, sha2-256 of the bytes
  (the empty blob included);
* more chunks: every chunk is a ``raw`` leaf, and leaves hang under a
  *balanced* tree of ``dag-pb`` nodes with at most 174 links each, filled
  greedily from the left, no deeper than needed;
* each inner node is a dag-pb ``PBNode`` whose links (written before its data,
  the canonical dag-pb order) carry the child's binary CID, an empty name and
  ``Tsize`` = the child's encoded size plus its descendants' sizes; its data
  is a UnixFS ``Data`` message ``{Type: File, filesize, blocksizes[]}``.

Only the encoder side of protobuf is needed, and only for those two messages,
so it is written out here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flare.storage.cid import CODEC_DAG_PB, CODEC_RAW, Cid, encode_varint

CHUNK_SIZE = 262_144
"""Kubo's default chunker, ``size-262144``."""

MAX_LINKS = 174
"""Kubo's default links per file node (boxo ``helpers.DefaultLinksPerBlock``: 8192 // 47)."""

# Protobuf wire types.
_VARINT = 0
_LENGTH_DELIMITED = 2

# UnixFS Data.DataType.File.
_UNIXFS_FILE = 2


@dataclass(frozen=True, slots=True)
class _DagEntry:
    """What a parent needs to know about one child: how to link it and how big it is."""

    cid: Cid
    tree_size: int  # Tsize: bytes of this block plus every block below it
    file_size: int  # bytes of file content below this node


def compute_cid(
    data: bytes | bytearray | memoryview,
    *,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> Cid:
    """CID of ``data`` as Kubo's ``ipfs add --cid-version=1 --raw-leaves`` computes it.

    ``chunk_size`` and ``max_links`` default to Kubo's defaults; other values
    match ``ipfs add --chunker=size-<chunk_size>`` with Kubo's config
    ``Import.UnixFSFileMaxLinks = <max_links>`` (they exist so the tree shape
    can be checked against Kubo on small inputs).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if max_links < 2:
        raise ValueError(f"max_links must be at least 2, got {max_links}")
    view = memoryview(data).cast("B")
    if len(view) <= chunk_size:
        return _raw_leaf(view).cid
    leaves = [
        _raw_leaf(view[start : start + chunk_size]) for start in range(0, len(view), chunk_size)
    ]
    depth = 1
    while max_links**depth < len(leaves):
        depth += 1
    # The shallowest depth that holds every leaf is exactly the depth Kubo's
    # layout reaches, so this one subtree consumes all leaves.
    root, _ = _build_subtree(leaves, 0, depth, max_links)
    return root.cid


def _raw_leaf(chunk: memoryview) -> _DagEntry:
    return _DagEntry(
        cid=Cid(CODEC_RAW, hashlib.sha256(chunk).digest()),
        tree_size=len(chunk),
        file_size=len(chunk),
    )


def _build_subtree(
    leaves: list[_DagEntry], first: int, depth: int, max_links: int
) -> tuple[_DagEntry, int]:
    """Build one inner node of the given depth from ``leaves[first:]``, filling greedily.

    Returns the node and the index of the first leaf it did not take, which is
    how Kubo's recursive ``fillNodeRec`` walks the chunk stream.
    """
    children: list[_DagEntry] = []
    position = first
    while len(children) < max_links and position < len(leaves):
        if depth == 1:
            child = leaves[position]
            position += 1
        else:
            child, position = _build_subtree(leaves, position, depth - 1, max_links)
        children.append(child)
    return _file_node(children), position


def _file_node(children: list[_DagEntry]) -> _DagEntry:
    """Encode a dag-pb UnixFS File node over ``children`` and describe it."""
    file_size = sum(child.file_size for child in children)
    unixfs_data = _varint_field(1, _UNIXFS_FILE) + _varint_field(3, file_size)
    for child in children:
        unixfs_data += _varint_field(4, child.file_size)  # proto2 repeated: not packed
    links = b"".join(_bytes_field(2, _encode_link(child)) for child in children)
    block = links + _bytes_field(1, unixfs_data)  # dag-pb canonical order: Links, then Data
    return _DagEntry(
        cid=Cid(CODEC_DAG_PB, hashlib.sha256(block).digest()),
        tree_size=len(block) + sum(child.tree_size for child in children),
        file_size=file_size,
    )


def _encode_link(child: _DagEntry) -> bytes:
    """PBLink{Hash, Name, Tsize}: Kubo always writes Name, empty for file chunks."""
    return (
        _bytes_field(1, bytes(child.cid)) + _bytes_field(2, b"") + _varint_field(3, child.tree_size)
    )


def _tag(field_number: int, wire_type: int) -> bytes:
    return encode_varint(field_number << 3 | wire_type)


def _varint_field(field_number: int, value: int) -> bytes:
    return _tag(field_number, _VARINT) + encode_varint(value)


def _bytes_field(field_number: int, payload: bytes) -> bytes:
    return _tag(field_number, _LENGTH_DELIMITED) + encode_varint(len(payload)) + payload

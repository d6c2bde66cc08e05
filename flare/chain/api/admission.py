"""Admission of a permissioned fleet: the Merkle tree of admitted accounts (docs/protocol.md
§2.5), exactly as the contract's ``Admission`` library checks it.

A leaf is ``keccak256(abi.encode(account))`` and an inner node the hash of its two children
in ascending order, so a proof is just the siblings from the leaf up. The creator publishes
the root with ``createPermissionedTask`` (or replaces it with ``setAdmissionRoot``); each
device computes its own proof from the same list of addresses.
"""

from collections.abc import Iterable, Sequence

from eth_utils import is_address, keccak, to_checksum_address

from flare.chain.api.abi import word
from flare.errors import ConfigError


def parse_admission_list(text: str, source: str) -> tuple[str, ...]:
    """The checksummed addresses of an admission list: one per line, blank lines and
    ``#`` comments ignored; :class:`ConfigError` naming ``source`` and the line otherwise."""
    accounts = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if not is_address(entry):
            raise ConfigError(f"{source} line {number}: {entry!r} is not an address")
        accounts.append(to_checksum_address(entry))
    if not accounts:
        raise ConfigError(f"{source} admits no address")
    return tuple(accounts)


def admission_leaf(account: str) -> bytes:
    """The leaf of ``account``: ``keccak256(abi.encode(account))``."""
    return keccak(word(to_checksum_address(account)))


def admission_root(accounts: Iterable[str]) -> bytes:
    """The root of the tree of ``accounts`` (order and repeats do not matter)."""
    return _levels(accounts)[-1][0]


def admission_proof(accounts: Iterable[str], account: str) -> tuple[bytes, ...]:
    """The siblings that lead from ``account``'s leaf to :func:`admission_root` of
    ``accounts``; :class:`ConfigError` if it is not among them."""
    levels = _levels(accounts)
    leaf = admission_leaf(account)
    try:
        position = levels[0].index(leaf)
    except ValueError:
        raise ConfigError(f"{to_checksum_address(account)} is not in the admission list") from None
    siblings = []
    for level in levels[:-1]:
        sibling = position ^ 1
        if sibling < len(level):  # the last node of an odd level moves up unpaired
            siblings.append(level[sibling])
        position //= 2
    return tuple(siblings)


def is_admitted(proof: Sequence[bytes], root: bytes, account: str) -> bool:
    """Whether ``proof`` leads from ``account``'s leaf to ``root`` (``Admission.verify``)."""
    node = admission_leaf(account)
    for sibling in proof:
        node = _parent(node, sibling)
    return node == root


def _levels(accounts: Iterable[str]) -> list[list[bytes]]:
    """Every level of the tree, leaves (sorted) first, the root last."""
    leaves = sorted({admission_leaf(account) for account in accounts})
    if not leaves:
        raise ConfigError("an admission list needs at least one address")
    levels = [leaves]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append(
            [
                _parent(below[i], below[i + 1]) if i + 1 < len(below) else below[i]
                for i in range(0, len(below), 2)
            ]
        )
    return levels


def _parent(left: bytes, right: bytes) -> bytes:
    return keccak(left + right) if left < right else keccak(right + left)

"""The admission tree (flare.chain.api.admission): every member proves, no one else does,
and a tampered proof fails; the leaf is the contract's ``keccak256(abi.encode(account))``."""

import pytest
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.chain.api.admission import (
    admission_leaf,
    admission_proof,
    admission_root,
    is_admitted,
)
from flare.errors import ConfigError


def address(number: int) -> str:
    return to_checksum_address(keccak(b"fleet-%d" % number)[:20])


def test_the_leaf_is_the_abi_encoded_address_hashed():
    account = address(1)
    assert admission_leaf(account) == keccak(bytes(12) + bytes.fromhex(account[2:]))
    assert admission_leaf(account.lower()) == admission_leaf(account)


def test_one_device_is_its_own_root():
    assert admission_root([address(0)]) == admission_leaf(address(0))
    assert admission_proof([address(0)], address(0)) == ()


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 70), member=st.integers(0, 69), flip=st.integers(0, 255))
def test_every_member_proves_and_nothing_else_does(size, member, flip):
    fleet = [address(n) for n in range(size)]
    root = admission_root(fleet)
    account = fleet[member % size]
    proof = admission_proof(fleet, account)
    assert is_admitted(proof, root, account)
    assert len(proof) <= (size - 1).bit_length()
    assert not is_admitted(proof, root, address(size))
    if proof:
        tampered = list(proof)
        index = flip % len(tampered)
        tampered[index] = bytes([tampered[index][0] ^ 1]) + tampered[index][1:]
        assert not is_admitted(tampered, root, account)


def test_order_and_repeats_do_not_change_the_root():
    fleet = [address(n) for n in range(7)]
    assert admission_root(fleet) == admission_root([*reversed(fleet), fleet[0]])


def test_empty_lists_and_strangers_are_refused():
    with pytest.raises(ConfigError, match="at least one address"):
        admission_root([])
    with pytest.raises(ConfigError, match="is not in the admission list"):
        admission_proof([address(0)], address(1))

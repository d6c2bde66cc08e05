// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Admission of a permissioned fleet's accounts by a Merkle root (docs/protocol.md §2.5)
/// @notice A leaf is `keccak256(abi.encode(account))`; an inner node hashes its two children
///         in ascending order, so a proof is only the list of siblings from the leaf up. A leaf
///         hashes 32 bytes and an inner node 64, so no inner node can pass for a leaf.
library Admission {
    /// @notice The leaf of `account`.
    /// @param account An admitted account.
    /// @return The leaf hash.
    function leaf(address account) internal pure returns (bytes32) {
        return keccak256(abi.encode(account));
    }

    /// @notice Whether `proof` leads from `account`'s leaf to `root`.
    /// @param proof The siblings of the path from the leaf to the root.
    /// @param root The admission root.
    /// @param account The account claiming admission.
    /// @return True iff the account is in the tree.
    function verify(bytes32[] calldata proof, bytes32 root, address account) internal pure returns (bool) {
        bytes32 node = leaf(account);
        for (uint256 i; i < proof.length; ++i) {
            bytes32 sibling = proof[i];
            node = node < sibling ? keccak256(abi.encode(node, sibling)) : keccak256(abi.encode(sibling, node));
        }
        return node == root;
    }
}

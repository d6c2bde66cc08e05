// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS} from "./BLS.sol";

/// @title Proofs of possession of a BLS key, bound to an Ethereum account
/// @notice A proof is the G1 BLS signature of the account's raw 20-byte address under `DST`
///         (docs/crypto.md §6). Checked against `msg.sender`, it stops anyone from registering a
///         key they do not hold, and from replaying someone else's proof under their own address.
library ProofOfPossession {
    /// @notice The hash-to-G1 domain separation tag of proofs of possession.
    bytes internal constant DST = "FLARE-V1-POP_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_";

    /// @notice Check that the holder of `publicKey` signed `account`.
    /// @dev Rejects the all-zero key and proof; see `BLS.verify`.
    /// @param publicKey The 256-byte G2 public key being registered.
    /// @param account The account registering it (normally `msg.sender`).
    /// @param proof The 128-byte G1 proof.
    /// @return True iff `proof` is a valid proof of possession of `publicKey` for `account`.
    function verify(bytes memory publicKey, address account, bytes memory proof) internal view returns (bool) {
        return BLS.verify(publicKey, abi.encodePacked(account), proof, DST);
    }
}

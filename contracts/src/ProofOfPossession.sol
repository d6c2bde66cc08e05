// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS} from "./BLS.sol";

/// @title Proofs of possession of a BLS key, bound to an account and to one task of one deployment
/// @notice A proof is the G1 BLS signature of `message(chainId, verifier, taskId, account)` under
///         `DST` (docs/crypto.md §6, docs/protocol.md §2.4). Checked against `msg.sender`, it stops
///         anyone from registering a key they do not hold, and from replaying someone else's
///         proof under their own address; because the message also names the chain, the contract
///         and the task, a proof made for one task is no proof in another task, deployment or
///         chain.
library ProofOfPossession {
    /// @notice The hash-to-G1 domain separation tag of proofs of possession.
    bytes internal constant DST = "FLARE-V1-POP_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_";

    /// @notice The 104-byte message a key holder signs to register `account` in one task.
    /// @param chainId The chain id (`block.chainid`).
    /// @param verifier The contract that checks the proof (`address(this)`).
    /// @param taskId The task the key is registered in.
    /// @param account The account registering the key (normally `msg.sender`).
    /// @return The packed message `chainId ‖ verifier ‖ taskId ‖ account`.
    function message(uint256 chainId, address verifier, uint256 taskId, address account)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodePacked(chainId, verifier, taskId, account);
    }

    /// @notice Check that the holder of `publicKey` signed `message_`.
    /// @dev Rejects the all-zero key and proof; see `BLS.verify`.
    /// @param publicKey The 256-byte G2 public key being registered.
    /// @param message_ The possession message (normally from `message`).
    /// @param proof The 128-byte G1 proof.
    /// @return True iff `proof` is a valid proof of possession of `publicKey` over `message_`.
    function verify(bytes memory publicKey, bytes memory message_, bytes memory proof) internal view returns (bool) {
        return BLS.verify(publicKey, message_, proof, DST);
    }
}

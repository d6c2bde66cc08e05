// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS} from "./BLS.sol";

/// @title Flare's committee VRF: a BLS unique signature over the round's public context
/// @notice The proof is the G1 BLS signature of `input(...)` under `DST`, the output is
///         `keccak256(proof)`, and a seat is granted iff `output < 2^256 · min(1, k / n)`
///         (docs/crypto.md §7–8, docs/protocol.md §2.4).
library VRF {
    /// @notice Sortition over zero registered participants.
    error EmptyPopulation();

    /// @notice The first 12 bytes of every VRF input.
    bytes12 internal constant INPUT_TAG = "FLARE-VRF-V1";

    /// @notice The hash-to-G1 domain separation tag of VRF proofs.
    bytes internal constant DST = "FLARE-V1-VRF_BLS12381G1_XMD:SHA-256_SSWU_RO_";

    /// @notice The 192-byte message a participant signs to draw for a seat in one round attempt.
    /// @param chainId The chain id (`block.chainid`).
    /// @param verifier The contract that checks the draw (`address(this)`).
    /// @param taskId The task.
    /// @param round The round (from 1).
    /// @param attempt The attempt of the round (from 0).
    /// @param seed The attempt's seed.
    /// @return The packed input `tag ‖ chainId ‖ verifier ‖ taskId ‖ round ‖ attempt ‖ seed`.
    function input(uint256 chainId, address verifier, uint256 taskId, uint256 round, uint256 attempt, bytes32 seed)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodePacked(INPUT_TAG, chainId, verifier, taskId, round, attempt, seed);
    }

    /// @notice Check a VRF proof; see `BLS.verify` for what is rejected.
    /// @param publicKey The prover's 256-byte G2 public key.
    /// @param message The VRF input (normally from `input`).
    /// @param proof The 128-byte G1 proof.
    /// @return True iff `proof` is the VRF proof of `message` under `publicKey`.
    function verify(bytes memory publicKey, bytes memory message, bytes memory proof) internal view returns (bool) {
        return BLS.verify(publicKey, message, proof, DST);
    }

    /// @notice The VRF output of a proof: `keccak256` of its 128-byte encoding.
    /// @dev Meaningful only for a proof that `verify` accepted.
    /// @param proof The 128-byte G1 proof.
    /// @return The output, read as a big-endian uint256 by `seatGranted`.
    function output(bytes memory proof) internal pure returns (bytes32) {
        return keccak256(proof);
    }

    /// @notice Sortition: true iff `output · registered < expectedCommittee · 2^256`.
    /// @dev Decided exactly on the high word of the 512-bit product `output · registered`, which
    ///      is `mulmod(a, b, 2^256 - 1) - a·b mod 2^256` minus the borrow. Every output wins when
    ///      `expectedCommittee >= registered`; none when `expectedCommittee == 0`.
    /// @param output_ The VRF output.
    /// @param expectedCommittee The task's expected committee size `k`.
    /// @param registered The snapshotted number of registered participants `n` (at least 1).
    /// @return granted True iff the output wins a seat.
    function seatGranted(bytes32 output_, uint256 expectedCommittee, uint256 registered)
        internal
        pure
        returns (bool granted)
    {
        if (registered == 0) revert EmptyPopulation();
        assembly ("memory-safe") {
            let full := mulmod(output_, registered, not(0))
            let low := mul(output_, registered)
            let high := sub(sub(full, low), lt(full, low))
            granted := lt(high, expectedCommittee)
        }
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS} from "../../src/BLS.sol";
import {CID} from "../../src/CID.sol";
import {ProofOfPossession} from "../../src/ProofOfPossession.sol";
import {VRF} from "../../src/VRF.sol";

/// @notice External entry points to the libraries, so tests can expect reverts and cap the gas
///         of calls whose failing precompile consumes all gas it is given.
contract CryptoHarness {
    /// @notice `BLS.verify`.
    function verify(bytes calldata publicKey, bytes calldata message, bytes calldata signature, bytes calldata dst)
        external
        view
        returns (bool)
    {
        return BLS.verify(publicKey, message, signature, dst);
    }

    /// @notice `BLS.hashToG1`.
    function hashToG1(bytes calldata message, bytes calldata dst) external view returns (bytes memory) {
        return BLS.hashToG1(message, dst);
    }

    /// @notice `BLS.expandMessageXmd`.
    function expandMessageXmd(bytes calldata message, bytes calldata dst, uint256 length)
        external
        view
        returns (bytes memory)
    {
        return BLS.expandMessageXmd(message, dst, length);
    }

    /// @notice `VRF.verify`.
    function verifyVrf(bytes calldata publicKey, bytes calldata message, bytes calldata proof)
        external
        view
        returns (bool)
    {
        return VRF.verify(publicKey, message, proof);
    }

    /// @notice `VRF.seatGranted`.
    function seatGranted(bytes32 output, uint256 expectedCommittee, uint256 registered) external pure returns (bool) {
        return VRF.seatGranted(output, expectedCommittee, registered);
    }

    /// @notice `ProofOfPossession.verify`.
    function verifyPossession(bytes calldata publicKey, bytes calldata message, bytes calldata proof)
        external
        view
        returns (bool)
    {
        return ProofOfPossession.verify(publicKey, message, proof);
    }

    /// @notice `CID.checkCodec`.
    function checkCodec(uint64 codec) external pure {
        CID.checkCodec(codec);
    }
}

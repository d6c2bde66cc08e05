// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS} from "../../src/BLS.sol";

/// @notice Test-only BLS12-381 key generation and signing on the EIP-2537 multi-scalar
///         multiplication precompiles: `pk = sk·g2` (G2MSM), `sig = sk·H(m)` (G1MSM on
///         `BLS.hashToG1`). Lets fuzz and invariant tests make fresh keys, proofs of
///         possession and VRF proofs for any seed; FlareCoordinatorTrace.t.sol checks it
///         against flare.crypto. Never use it with a secret that matters: the key is calldata.
library BlsSigner {
    /// @notice A multi-scalar multiplication precompile failed.
    error MsmFailed();

    address private constant G1MSM = 0x000000000000000000000000000000000000000C;
    address private constant G2MSM = 0x000000000000000000000000000000000000000E;

    /// @dev The BLS12-381 group order r.
    uint256 internal constant GROUP_ORDER = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001;

    /// @notice A secret key in [1, r) derived from a label.
    function secretKey(bytes memory label) internal pure returns (uint256) {
        return uint256(keccak256(abi.encodePacked("flare-test-bls-key", label))) % (GROUP_ORDER - 1) + 1;
    }

    /// @notice The 256-byte EIP-2537 encoding of `secret · g2`.
    function publicKey(uint256 secret) internal view returns (bytes memory key) {
        bytes memory input = abi.encodePacked(
            uint256(0x00000000000000000000000000000000024aa2b2f08f0a91260805272dc51051),
            uint256(0xc6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8),
            uint256(0x0000000000000000000000000000000013e02b6052719f607dacd3a088274f65),
            uint256(0x596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e),
            uint256(0x000000000000000000000000000000000ce5d527727d6e118cc9cdc6da2e351a),
            uint256(0xadfd9baa8cbdd3a76d429a695160d12c923ac9cc3baca289e193548608b82801),
            uint256(0x000000000000000000000000000000000606c4a02ea734cc32acd2b02bc28b99),
            uint256(0xcb3e287e85a763af267492ab572e99ab3f370d275cec1da1aaa9075ff05f79be),
            secret
        );
        bool ok;
        (ok, key) = G2MSM.staticcall(input);
        if (!ok || key.length != 256) revert MsmFailed();
    }

    /// @notice The 128-byte signature `secret · H(message)` under domain tag `dst`.
    function sign(uint256 secret, bytes memory message, bytes memory dst)
        internal
        view
        returns (bytes memory signature)
    {
        bool ok;
        (ok, signature) = G1MSM.staticcall(abi.encodePacked(BLS.hashToG1(message, dst), secret));
        if (!ok || signature.length != 128) revert MsmFailed();
    }
}

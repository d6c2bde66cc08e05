// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {console} from "forge-std/console.sol";
import {BLS} from "../src/BLS.sol";
import {ProofOfPossession} from "../src/ProofOfPossession.sol";
import {VRF} from "../src/VRF.sol";
import {Fixtures} from "./utils/Fixtures.sol";

/// @notice Gas of each stage of a verification, measured around the library call alone (fixture
///         loading is not metered, so `forge snapshot --match-contract GasTest` records the same
///         figures plus a small constant), with budgets that fail the build on a regression.
contract GasTest is Fixtures {
    /// @dev PAIRING_CHECK with two pairs: 37,700 + 2 × 32,600.
    uint256 internal constant PAIRING_FLOOR = 102_900;
    /// @dev The design target for a full VRF verification: 1.3 × the pairing floor.
    uint256 internal constant VRF_BUDGET = PAIRING_FLOOR * 13 / 10;

    function test_gas_expandMessageXmd() public {
        bytes memory message = _message();
        uint256 start = gasleft();
        BLS.expandMessageXmd(message, VRF.DST, 128);
        _report("expandMessageXmd(192 B, 128 B)", start - gasleft(), 3_500);
    }

    function test_gas_hashToField() public {
        bytes memory message = _message();
        uint256 start = gasleft();
        BLS.hashToField(message, VRF.DST);
        _report("hashToField(192 B)", start - gasleft(), 4_500);
    }

    function test_gas_hashToG1() public {
        bytes memory message = _message();
        uint256 start = gasleft();
        BLS.hashToG1(message, VRF.DST);
        _report("hashToG1(192 B)", start - gasleft(), 16_500);
    }

    function test_gas_verify() public {
        vm.pauseGasMetering();
        string memory json = _flare();
        bytes memory key = _keyOf(json, "vrf", 0);
        bytes memory message = _bytes(json, "vrf", 0, "input");
        bytes memory proof = _bytes(json, "vrf", 0, "proof");
        bytes memory dst = VRF.DST;
        vm.resumeGasMetering();
        uint256 start = gasleft();
        bool valid = BLS.verify(key, message, proof, dst);
        uint256 used = start - gasleft();
        assertTrue(valid);
        _report("BLS.verify(192 B)", used, VRF_BUDGET);
    }

    /// @dev What a seat claim spends on cryptography: build the input, verify, derive the
    ///      output, draw.
    function test_gas_vrfClaim() public {
        vm.pauseGasMetering();
        string memory json = _flare();
        bytes memory key = _keyOf(json, "vrf", 0);
        bytes memory proof = _bytes(json, "vrf", 0, "proof");
        uint256 chainId = _uint(json, "vrf", 0, "chainId");
        address verifier = vm.parseJsonAddress(json, _at("vrf", 0, "verifier"));
        bytes32 seed = vm.parseJsonBytes32(json, _at("vrf", 0, "seed"));
        vm.resumeGasMetering();
        uint256 start = gasleft();
        bytes memory message = VRF.input(chainId, verifier, 1, 0, 0, seed);
        bool valid = VRF.verify(key, message, proof);
        bool granted = VRF.seatGranted(VRF.output(proof), 3, 10);
        uint256 used = start - gasleft();
        assertTrue(valid);
        granted;
        _report("VRF input + verify + output + seatGranted", used, VRF_BUDGET);
    }

    function test_gas_proofOfPossession() public {
        vm.pauseGasMetering();
        string memory json = _flare();
        bytes memory key = _keyOf(json, "possession", 0);
        uint256 chainId = _uint(json, "possession", 0, "chainId");
        address verifier = vm.parseJsonAddress(json, _at("possession", 0, "verifier"));
        uint256 taskId = _uint(json, "possession", 0, "taskId");
        address account = vm.parseJsonAddress(json, _at("possession", 0, "account"));
        bytes memory proof = _bytes(json, "possession", 0, "proof");
        vm.resumeGasMetering();
        uint256 start = gasleft();
        bytes memory message = ProofOfPossession.message(chainId, verifier, taskId, account);
        bool valid = ProofOfPossession.verify(key, message, proof);
        uint256 used = start - gasleft();
        assertTrue(valid);
        _report("ProofOfPossession.verify", used, VRF_BUDGET);
    }

    /// @dev The first VRF fixture input (192 bytes), loaded unmetered.
    function _message() internal returns (bytes memory message) {
        vm.pauseGasMetering();
        message = _bytes(_flare(), "vrf", 0, "input");
        vm.resumeGasMetering();
    }

    /// @dev Log `used` and fail above `budget`; unmetered.
    function _report(string memory what, uint256 used, uint256 budget) internal {
        vm.pauseGasMetering();
        console.log("%s: %d gas (budget %d)", what, used, budget);
        assertLe(used, budget, what);
        vm.resumeGasMetering();
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Vm} from "forge-std/Vm.sol";
import {Fixtures} from "./utils/Fixtures.sol";
import {BlsSigner} from "./utils/BlsSigner.sol";
import {ProofOfPossession} from "../src/ProofOfPossession.sol";

/// @notice Differential test against the Python implementation: replays the trace that
///         scripts/gen_coordinator_fixtures.py recorded on `flare.chain.InMemoryChain` (every
///         call, view, custom error and event of docs/protocol.md) against the contract deployed
///         at the same address, block by block with the same `prevrandao`, and requires the same
///         success flag, the same return or revert data and the same logs, byte for byte.
contract FlareCoordinatorTraceTest is Fixtures {
    /// @dev Gas for one replayed call: a pairing refused by the precompile burns 63/64 of it.
    uint256 internal constant CALL_GAS = 2_000_000;

    address internal coordinator;

    function setUp() public {
        string memory json = _coordinatorFixture();
        vm.chainId(vm.parseJsonUint(json, ".chainId"));
        coordinator = vm.parseJsonAddress(json, ".contract");
        deployCodeTo("FlareCoordinator.sol:FlareCoordinator", coordinator);
    }

    function test_trace_matchesPython() public {
        vm.pauseGasMetering();
        string memory json = _coordinatorFixture();
        uint256 steps = _count(json, ".steps");
        assertGt(steps, 200);
        for (uint256 i; i < steps; ++i) {
            _replay(json, i);
        }
    }

    /// @dev The test signer derives the fixture's public keys and proofs of possession (for task
    ///      1 of the fixture's deployment) from its secret keys, so the signer that the fuzz and
    ///      invariant tests use agrees with flare.crypto.
    function test_signer_matchesPython() public view {
        string memory json = _coordinatorFixture();
        uint256 count = _count(json, ".participants");
        for (uint256 i; i < count; ++i) {
            uint256 secretKey = _uint(json, "participants", i, "secretKey");
            address account = vm.parseJsonAddress(json, _at("participants", i, "address"));
            bytes memory publicKey = _bytes(json, "participants", i, "publicKey");
            assertEq(BlsSigner.publicKey(secretKey), publicKey, "public key");
            bytes memory message = ProofOfPossession.message(block.chainid, coordinator, 1, account);
            assertEq(
                BlsSigner.sign(secretKey, message, ProofOfPossession.DST),
                _bytes(json, "participants", i, "possessionProof"),
                "proof of possession"
            );
        }
    }

    function _replay(string memory json, uint256 i) internal {
        string memory label = string.concat("step ", vm.toString(i));
        bytes memory callData = _bytes(json, "steps", i, "calldata");
        bool success = vm.parseJsonBool(json, _at("steps", i, "success"));
        bytes memory expected = _bytes(json, "steps", i, "returndata");
        bool ok;
        bytes memory returned;
        if (keccak256(bytes(vm.parseJsonString(json, _at("steps", i, "kind")))) == keccak256("view")) {
            (ok, returned) = coordinator.staticcall(callData);
            assertEq(ok, success, label);
            assertEq(returned, expected, label);
            return;
        }
        vm.roll(_uint(json, "steps", i, "block"));
        vm.prevrandao(vm.parseJsonBytes32(json, _at("steps", i, "prevrandao")));
        vm.recordLogs();
        vm.prank(vm.parseJsonAddress(json, _at("steps", i, "sender")));
        (ok, returned) = coordinator.call{gas: CALL_GAS}(callData);
        assertEq(ok, success, label);
        assertEq(returned, expected, label);
        _compareLogs(json, i, vm.getRecordedLogs(), label);
    }

    function _compareLogs(string memory json, uint256 i, Vm.Log[] memory logs, string memory label) internal view {
        string memory path = _at("steps", i, "logs");
        uint256 count = _count(json, path);
        assertEq(logs.length, count, string.concat(label, ": log count"));
        for (uint256 j; j < count; ++j) {
            string memory entry = string.concat(path, "[", vm.toString(j), "]");
            assertEq(logs[j].emitter, coordinator, label);
            assertEq(logs[j].topics, vm.parseJsonBytes32Array(json, string.concat(entry, ".topics")), label);
            assertEq(logs[j].data, vm.parseJsonBytes(json, string.concat(entry, ".data")), label);
        }
    }

    function _coordinatorFixture() internal view returns (string memory) {
        return vm.readFile(string.concat(vm.projectRoot(), "/contracts/test/fixtures/coordinator.json"));
    }
}

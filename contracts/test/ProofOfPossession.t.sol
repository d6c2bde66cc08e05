// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ProofOfPossession} from "../src/ProofOfPossession.sol";
import {CryptoHarness} from "./utils/CryptoHarness.sol";
import {Fixtures} from "./utils/Fixtures.sol";

contract ProofOfPossessionTest is Fixtures {
    uint256 internal constant CALL_GAS = 400_000;

    CryptoHarness internal harness;

    function setUp() public {
        harness = new CryptoHarness();
    }

    function test_dstMatchesPython() public view {
        assertEq(ProofOfPossession.DST, vm.parseJsonBytes(_flare(), ".popDst"));
    }

    /// @dev `message` packs chain id, contract, task and account exactly as
    ///      flare.crypto.identity.possession_message does.
    function test_message_matchesPython() public view {
        string memory json = _flare();
        for (uint256 i; i < 3; ++i) {
            bytes memory expected = _bytes(json, "possession", i, "message");
            assertEq(_message(json, i), expected, vm.toString(i));
            assertEq(expected.length, 104);
        }
    }

    function test_verify_pythonProofs() public view {
        string memory json = _flare();
        uint256 count = _count(json, ".possession");
        assertEq(count, 3);
        for (uint256 i; i < count; ++i) {
            bytes memory proof = _bytes(json, "possession", i, "proof");
            assertTrue(
                ProofOfPossession.verify(_keyOf(json, "possession", i), _message(json, i), proof), vm.toString(i)
            );
        }
    }

    /// @dev A proof cannot be replayed under another address, nor claim another key.
    function test_verify_rejectsOtherAccountsAndKeys() public view {
        string memory json = _flare();
        for (uint256 i; i < 3; ++i) {
            bytes memory proof = _bytes(json, "possession", i, "proof");
            uint256 signer = _uint(json, "possession", i, "key");
            for (uint256 j; j < 3; ++j) {
                address account = vm.parseJsonAddress(json, _at("possession", j, "account"));
                bytes memory message = ProofOfPossession.message(
                    _uint(json, "possession", i, "chainId"),
                    vm.parseJsonAddress(json, _at("possession", i, "verifier")),
                    _uint(json, "possession", i, "taskId"),
                    account
                );
                for (uint256 k; k < 4; ++k) {
                    bool expected = i == j && k == signer;
                    assertEq(ProofOfPossession.verify(_key(json, k), message, proof), expected);
                }
            }
        }
    }

    /// @dev A proof made for one task of one deployment on one chain proves nothing anywhere else:
    ///      changing any one of the three fails it.
    function test_verify_rejectsOtherTasksContractsAndChains() public view {
        string memory json = _flare();
        bytes memory key = _keyOf(json, "possession", 0);
        bytes memory proof = _bytes(json, "possession", 0, "proof");
        uint256 chainId = _uint(json, "possession", 0, "chainId");
        address verifier = vm.parseJsonAddress(json, _at("possession", 0, "verifier"));
        uint256 taskId = _uint(json, "possession", 0, "taskId");
        address account = vm.parseJsonAddress(json, _at("possession", 0, "account"));
        assertTrue(ProofOfPossession.verify(key, ProofOfPossession.message(chainId, verifier, taskId, account), proof));
        assertFalse(
            ProofOfPossession.verify(key, ProofOfPossession.message(chainId, verifier, taskId + 1, account), proof)
        );
        assertFalse(
            ProofOfPossession.verify(key, ProofOfPossession.message(chainId, address(1), taskId, account), proof)
        );
        assertFalse(
            ProofOfPossession.verify(key, ProofOfPossession.message(chainId + 1, verifier, taskId, account), proof)
        );
        // The old, unbound form: a signature over the bare address.
        assertFalse(ProofOfPossession.verify(key, abi.encodePacked(account), proof));
    }

    function test_verify_rejectsInfinity() public view {
        string memory json = _flare();
        bytes memory message = _message(json, 0);
        assertFalse(ProofOfPossession.verify(new bytes(256), message, new bytes(128)));
        assertFalse(ProofOfPossession.verify(new bytes(256), message, _bytes(json, "possession", 0, "proof")));
    }

    /// forge-config: default.fuzz.runs = 64
    function testFuzz_verify_rejectsOtherAccountsAndTasks(address account, uint256 taskId) public view {
        string memory json = _flare();
        address owner = vm.parseJsonAddress(json, _at("possession", 0, "account"));
        uint256 ownTask = _uint(json, "possession", 0, "taskId");
        vm.assume(account != owner || taskId != ownTask);
        bytes memory message = ProofOfPossession.message(
            _uint(json, "possession", 0, "chainId"),
            vm.parseJsonAddress(json, _at("possession", 0, "verifier")),
            taskId,
            account
        );
        bytes memory proof = _bytes(json, "possession", 0, "proof");
        assertFalse(harness.verifyPossession{gas: CALL_GAS}(_keyOf(json, "possession", 0), message, proof));
    }

    /// @dev The message of fixture `i`, rebuilt with `ProofOfPossession.message`.
    function _message(string memory json, uint256 i) internal pure returns (bytes memory) {
        return ProofOfPossession.message(
            _uint(json, "possession", i, "chainId"),
            vm.parseJsonAddress(json, _at("possession", i, "verifier")),
            _uint(json, "possession", i, "taskId"),
            vm.parseJsonAddress(json, _at("possession", i, "account"))
        );
    }
}

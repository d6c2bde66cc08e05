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

    function test_verify_pythonProofs() public view {
        string memory json = _flare();
        uint256 count = _count(json, ".possession");
        assertEq(count, 3);
        for (uint256 i; i < count; ++i) {
            address account = vm.parseJsonAddress(json, _at("possession", i, "account"));
            bytes memory proof = _bytes(json, "possession", i, "proof");
            assertTrue(ProofOfPossession.verify(_keyOf(json, "possession", i), account, proof), vm.toString(i));
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
                for (uint256 k; k < 4; ++k) {
                    bool expected = i == j && k == signer;
                    assertEq(ProofOfPossession.verify(_key(json, k), account, proof), expected);
                }
            }
        }
    }

    function test_verify_rejectsInfinity() public view {
        string memory json = _flare();
        address account = vm.parseJsonAddress(json, _at("possession", 0, "account"));
        assertFalse(ProofOfPossession.verify(new bytes(256), account, new bytes(128)));
        assertFalse(ProofOfPossession.verify(new bytes(256), account, _bytes(json, "possession", 0, "proof")));
    }

    /// forge-config: default.fuzz.runs = 64
    function testFuzz_verify_rejectsOtherAccounts(address account) public view {
        string memory json = _flare();
        address owner = vm.parseJsonAddress(json, _at("possession", 0, "account"));
        vm.assume(account != owner);
        bytes memory proof = _bytes(json, "possession", 0, "proof");
        assertFalse(harness.verifyPossession{gas: CALL_GAS}(_keyOf(json, "possession", 0), account, proof));
    }
}

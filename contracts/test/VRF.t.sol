// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS} from "../src/BLS.sol";
import {VRF} from "../src/VRF.sol";
import {CryptoHarness} from "./utils/CryptoHarness.sol";
import {Fixtures} from "./utils/Fixtures.sol";

contract VRFTest is Fixtures {
    uint256 internal constant CALL_GAS = 400_000;

    CryptoHarness internal harness;

    function setUp() public {
        harness = new CryptoHarness();
    }

    function test_constantsMatchPython() public view {
        string memory json = _flare();
        assertEq(VRF.DST, vm.parseJsonBytes(json, ".vrfDst"));
        assertEq(bytes.concat(VRF.INPUT_TAG), bytes("FLARE-VRF-V1"));
    }

    function test_input_matchesPython() public view {
        string memory json = _flare();
        uint256 count = _count(json, ".vrf");
        assertEq(count, 9);
        for (uint256 i; i < count; ++i) {
            bytes memory message = _input(json, i);
            assertEq(message.length, 192);
            assertEq(message, _bytes(json, "vrf", i, "input"), vm.toString(i));
        }
    }

    function test_verify_pythonProofs() public view {
        string memory json = _flare();
        for (uint256 i; i < 9; ++i) {
            bytes memory message = _input(json, i);
            bytes memory proof = _bytes(json, "vrf", i, "proof");
            assertEq(BLS.hashToG1(message, VRF.DST), _bytes(json, "vrf", i, "point"), vm.toString(i));
            assertTrue(VRF.verify(_keyOf(json, "vrf", i), message, proof), vm.toString(i));
            assertEq(VRF.output(proof), vm.parseJsonBytes32(json, _at("vrf", i, "output")), vm.toString(i));
        }
    }

    /// @dev A proof is bound to every field of its input: change any one and it fails.
    function test_verify_rejectsOtherDraws() public view {
        string memory json = _flare();
        bytes memory key = _keyOf(json, "vrf", 1);
        bytes memory proof = _bytes(json, "vrf", 1, "proof");
        uint256 chainId = _uint(json, "vrf", 1, "chainId");
        address verifier = vm.parseJsonAddress(json, _at("vrf", 1, "verifier"));
        uint256 taskId = _uint(json, "vrf", 1, "taskId");
        uint256 round = _uint(json, "vrf", 1, "round");
        uint256 attempt = _uint(json, "vrf", 1, "attempt");
        bytes32 seed = vm.parseJsonBytes32(json, _at("vrf", 1, "seed"));

        assertTrue(VRF.verify(key, VRF.input(chainId, verifier, taskId, round, attempt, seed), proof));
        assertFalse(VRF.verify(key, VRF.input(chainId + 1, verifier, taskId, round, attempt, seed), proof));
        assertFalse(VRF.verify(key, VRF.input(chainId, address(this), taskId, round, attempt, seed), proof));
        assertFalse(VRF.verify(key, VRF.input(chainId, verifier, taskId + 1, round, attempt, seed), proof));
        assertFalse(VRF.verify(key, VRF.input(chainId, verifier, taskId, round + 1, attempt, seed), proof));
        assertFalse(VRF.verify(key, VRF.input(chainId, verifier, taskId, round, attempt + 1, seed), proof));
        assertFalse(VRF.verify(key, VRF.input(chainId, verifier, taskId, round, attempt, ~seed), proof));
        assertFalse(VRF.verify(_key(json, 1), VRF.input(chainId, verifier, taskId, round, attempt, seed), proof));
    }

    function test_verify_rejectsFlippedProofBytes() public view {
        string memory json = _flare();
        bytes memory key = _keyOf(json, "vrf", 0);
        bytes memory message = _bytes(json, "vrf", 0, "input");
        bytes memory proof = _bytes(json, "vrf", 0, "proof");
        for (uint256 i; i < 128; ++i) {
            assertFalse(harness.verifyVrf{gas: CALL_GAS}(key, message, _flip(proof, i, 0x01)), vm.toString(i));
        }
    }

    function test_verify_rejectsInfinity() public view {
        string memory json = _flare();
        bytes memory message = _bytes(json, "vrf", 0, "input");
        assertFalse(VRF.verify(new bytes(256), message, new bytes(128)));
        assertFalse(VRF.verify(_keyOf(json, "vrf", 0), message, new bytes(128)));
    }

    /// @dev Domain separation: a proof of possession is no VRF proof, even over the same bytes.
    function test_verify_rejectsProofOfPossession() public view {
        string memory json = _flare();
        bytes memory message = _bytes(json, "possession", 0, "message");
        bytes memory proof = _bytes(json, "possession", 0, "proof");
        bytes memory key = _keyOf(json, "possession", 0);
        assertTrue(BLS.verify(key, message, proof, vm.parseJsonBytes(json, ".popDst")));
        assertFalse(VRF.verify(key, message, proof));
    }

    function test_seatGranted_matchesPython() public view {
        string memory json = _flare();
        uint256 count = _count(json, ".sortition");
        assertGt(count, 50);
        for (uint256 i; i < count; ++i) {
            bytes32 output = vm.parseJsonBytes32(json, _at("sortition", i, "output"));
            uint256 k = vm.parseJsonUint(json, _at("sortition", i, "k"));
            uint256 n = vm.parseJsonUint(json, _at("sortition", i, "n"));
            bool granted = vm.parseJsonBool(json, _at("sortition", i, "granted"));
            assertEq(VRF.seatGranted(output, k, n), granted, vm.toString(i));
        }
    }

    function test_seatGranted_edges() public pure {
        assertTrue(VRF.seatGranted(bytes32(type(uint256).max), 1, 1));
        assertTrue(VRF.seatGranted(bytes32(type(uint256).max), 5, 3));
        assertFalse(VRF.seatGranted(bytes32(0), 0, 1));
        assertTrue(VRF.seatGranted(bytes32(uint256(1 << 255) - 1), 1, 2));
        assertFalse(VRF.seatGranted(bytes32(uint256(1 << 255)), 1, 2));
    }

    function test_seatGranted_revertsOnEmptyPopulation() public {
        vm.expectRevert(VRF.EmptyPopulation.selector);
        harness.seatGranted(bytes32(0), 1, 0);
    }

    function testFuzz_seatGranted_matchesReference(bytes32 output, uint256 k, uint256 n) public pure {
        n = bound(n, 1, type(uint256).max);
        assertEq(VRF.seatGranted(output, k, n), _highWord(uint256(output), n) < k);
    }

    /// @dev The realistic range (uint32 counts, as the protocol stores them), checked against
    ///      the threshold form `output < ceil(k · 2^256 / n)` written as `output · n < k · 2^256`.
    function testFuzz_seatGranted_smallCounts(bytes32 output, uint32 k, uint32 n) public pure {
        vm.assume(n != 0);
        bool expected = k >= n || uint256(output) < _threshold(k, n);
        assertEq(VRF.seatGranted(output, k, n), expected);
    }

    function testFuzz_input_layout(
        uint256 chainId,
        address verifier,
        uint256 taskId,
        uint256 round,
        uint256 attempt,
        bytes32 seed
    ) public pure {
        bytes memory message = VRF.input(chainId, verifier, taskId, round, attempt, seed);
        assertEq(message.length, 192);
        bytes12 tag = "FLARE-VRF-V1";
        assertEq(bytes12(_word(message, 0)), tag);
        assertEq(uint256(_word(message, 12)), chainId);
        assertEq(address(bytes20(_word(message, 44))), verifier);
        assertEq(uint256(_word(message, 64)), taskId);
        assertEq(uint256(_word(message, 96)), round);
        assertEq(uint256(_word(message, 128)), attempt);
        assertEq(_word(message, 160), seed);
    }

    // ---------------------------------------------------------------- helpers

    function _input(string memory json, uint256 i) internal pure returns (bytes memory) {
        return VRF.input(
            _uint(json, "vrf", i, "chainId"),
            vm.parseJsonAddress(json, _at("vrf", i, "verifier")),
            _uint(json, "vrf", i, "taskId"),
            _uint(json, "vrf", i, "round"),
            _uint(json, "vrf", i, "attempt"),
            vm.parseJsonBytes32(json, _at("vrf", i, "seed"))
        );
    }

    /// @dev The 32 bytes of `data` from `offset` on.
    function _word(bytes memory data, uint256 offset) internal pure returns (bytes32 word) {
        assembly {
            word := mload(add(add(data, 32), offset))
        }
    }

    /// @dev High word of the 512-bit product a·b, by schoolbook multiplication on 128-bit limbs.
    function _highWord(uint256 a, uint256 b) internal pure returns (uint256) {
        uint256 mask = type(uint128).max;
        uint256 a1 = a >> 128;
        uint256 a0 = a & mask;
        uint256 b1 = b >> 128;
        uint256 b0 = b & mask;
        uint256 cross1 = a1 * b0;
        uint256 cross0 = a0 * b1;
        uint256 middle = ((a0 * b0) >> 128) + (cross1 & mask) + (cross0 & mask);
        return a1 * b1 + (cross1 >> 128) + (cross0 >> 128) + (middle >> 128);
    }

    /// @dev `ceil(k · 2^256 / n)` for `k < n < 2^32`: `k · floor(2^256 / n)` plus the rounding
    ///      of `k · (2^256 mod n) / n`, all below 2^256.
    function _threshold(uint256 k, uint256 n) internal pure returns (uint256) {
        if (k == 0) return 0;
        uint256 quotient = type(uint256).max / n;
        uint256 remainder = type(uint256).max % n + 1;
        if (remainder == n) {
            (quotient, remainder) = (quotient + 1, 0);
        }
        uint256 rest = k * remainder;
        return k * quotient + rest / n + (rest % n == 0 ? 0 : 1);
    }
}

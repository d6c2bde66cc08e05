// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS} from "../src/BLS.sol";
import {CryptoHarness} from "./utils/CryptoHarness.sol";
import {Fixtures} from "./utils/Fixtures.sol";

contract BLSTest is Fixtures {
    /// @dev Enough for one verification; a call whose precompile refuses its input burns this much.
    uint256 internal constant CALL_GAS = 400_000;
    uint256 internal constant GROUP_ORDER = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001;
    address internal constant G1ADD = address(0x0b);
    address internal constant G1MSM = address(0x0c);
    address internal constant PAIRING_CHECK = address(0x0f);
    address internal constant MAP_FP_TO_G1 = address(0x10);
    bytes internal constant DST = "FLARE-SOLIDITY-FIXTURES_BLS12381G1_XMD:SHA-256_SSWU_RO_";

    CryptoHarness internal harness;

    function setUp() public {
        harness = new CryptoHarness();
    }

    // ---------------------------------------------------------------- RFC 9380 vectors

    function test_expandMessageXmd_rfc9380K1() public view {
        string memory json = _rfc();
        bytes memory dst = vm.parseJsonBytes(json, ".expand.dst");
        uint256 count = _count(json, ".expand.vectors");
        assertEq(count, 10);
        for (uint256 i; i < count; ++i) {
            bytes memory message = _bytes(json, "expand.vectors", i, "msg");
            uint256 length = _uint(json, "expand.vectors", i, "length");
            bytes memory expected = _bytes(json, "expand.vectors", i, "uniform");
            assertEq(BLS.expandMessageXmd(message, dst, length), expected, vm.toString(i));
        }
    }

    function test_hashToField_rfc9380J91() public view {
        string memory json = _rfc();
        bytes memory dst = vm.parseJsonBytes(json, ".hashToG1.dst");
        uint256 count = _count(json, ".hashToG1.vectors");
        assertEq(count, 5);
        for (uint256 i; i < count; ++i) {
            bytes memory message = _bytes(json, "hashToG1.vectors", i, "msg");
            assertEq(BLS.hashToField(message, dst), _bytes(json, "hashToG1.vectors", i, "u"), vm.toString(i));
        }
    }

    function test_hashToG1_rfc9380J91() public view {
        string memory json = _rfc();
        bytes memory dst = vm.parseJsonBytes(json, ".hashToG1.dst");
        for (uint256 i; i < 5; ++i) {
            bytes memory message = _bytes(json, "hashToG1.vectors", i, "msg");
            assertEq(BLS.hashToG1(message, dst), _bytes(json, "hashToG1.vectors", i, "point"), vm.toString(i));
        }
    }

    // ---------------------------------------------------------------- Flare's Python side

    function test_hashToG1_matchesPython() public view {
        string memory json = _flare();
        uint256 count = _count(json, ".signatures");
        assertGt(count, 10);
        for (uint256 i; i < count; ++i) {
            bytes memory message = _bytes(json, "signatures", i, "msg");
            bytes memory dst = _bytes(json, "signatures", i, "dst");
            assertEq(BLS.hashToField(message, dst), _bytes(json, "signatures", i, "u"), vm.toString(i));
            assertEq(BLS.hashToG1(message, dst), _bytes(json, "signatures", i, "point"), vm.toString(i));
        }
    }

    function test_verify_pythonSignatures() public view {
        string memory json = _flare();
        uint256 count = _count(json, ".signatures");
        for (uint256 i; i < count; ++i) {
            assertTrue(
                BLS.verify(
                    _keyOf(json, "signatures", i),
                    _bytes(json, "signatures", i, "msg"),
                    _bytes(json, "signatures", i, "signature"),
                    _bytes(json, "signatures", i, "dst")
                ),
                vm.toString(i)
            );
        }
    }

    function test_verify_rejectsWrongMessage() public view {
        string memory json = _flare();
        bytes memory message = _bytes(json, "signatures", 5, "msg");
        bytes memory signature = _bytes(json, "signatures", 5, "signature");
        bytes memory key = _keyOf(json, "signatures", 5);
        bytes memory dst = _bytes(json, "signatures", 5, "dst");
        assertTrue(BLS.verify(key, message, signature, dst));
        assertFalse(BLS.verify(key, _flip(message, 0, 0x01), signature, dst));
        assertFalse(BLS.verify(key, bytes.concat(message, hex"00"), signature, dst));
        assertFalse(BLS.verify(key, _bytes(json, "signatures", 6, "msg"), signature, dst));
    }

    function test_verify_rejectsWrongKey() public view {
        string memory json = _flare();
        bytes memory message = _bytes(json, "signatures", 4, "msg");
        bytes memory signature = _bytes(json, "signatures", 4, "signature");
        bytes memory dst = _bytes(json, "signatures", 4, "dst");
        uint256 signer = _uint(json, "signatures", 4, "key");
        for (uint256 k; k < 4; ++k) {
            assertEq(BLS.verify(_key(json, k), message, signature, dst), k == signer, vm.toString(k));
        }
    }

    function test_verify_rejectsWrongDomainTag() public view {
        string memory json = _flare();
        bytes memory message = _bytes(json, "signatures", 3, "msg");
        bytes memory signature = _bytes(json, "signatures", 3, "signature");
        bytes memory key = _keyOf(json, "signatures", 3);
        assertTrue(BLS.verify(key, message, signature, DST));
        assertFalse(BLS.verify(key, message, signature, _flip(DST, DST.length - 1, 0x01)));
        assertFalse(BLS.verify(key, message, signature, bytes.concat(DST, "X")));
    }

    function test_verify_rejectsEveryFlippedSignatureByte() public view {
        string memory json = _flare();
        bytes memory message = _bytes(json, "signatures", 7, "msg");
        bytes memory signature = _bytes(json, "signatures", 7, "signature");
        bytes memory key = _keyOf(json, "signatures", 7);
        for (uint256 i; i < 128; ++i) {
            assertFalse(harness.verify{gas: CALL_GAS}(key, message, _flip(signature, i, 0x01), DST), vm.toString(i));
            assertFalse(harness.verify{gas: CALL_GAS}(key, message, _flip(signature, i, 0x80), DST), vm.toString(i));
        }
        assertTrue(harness.verify{gas: CALL_GAS}(key, message, signature, DST));
    }

    function test_verify_rejectsEveryFlippedKeyByte() public view {
        string memory json = _flare();
        bytes memory message = _bytes(json, "signatures", 8, "msg");
        bytes memory signature = _bytes(json, "signatures", 8, "signature");
        bytes memory key = _keyOf(json, "signatures", 8);
        for (uint256 i; i < 256; ++i) {
            assertFalse(harness.verify{gas: CALL_GAS}(_flip(key, i, 0x01), message, signature, DST), vm.toString(i));
        }
    }

    function test_verify_rejectsInfinity() public view {
        string memory json = _flare();
        bytes memory message = _bytes(json, "signatures", 2, "msg");
        bytes memory dst = _bytes(json, "signatures", 2, "dst");
        bytes memory key = _keyOf(json, "signatures", 2);
        bytes memory signature = _bytes(json, "signatures", 2, "signature");
        assertFalse(BLS.verify(new bytes(256), message, new bytes(128), dst));
        assertFalse(BLS.verify(new bytes(256), message, signature, dst));
        assertFalse(BLS.verify(key, message, new bytes(128), dst));
    }

    /// @dev Why the infinity check exists: the precompile alone accepts `0` with `0`.
    function test_pairingAcceptsInfinityWithoutTheCheck() public view {
        bytes memory point = BLS.hashToG1("any message", DST);
        bytes memory input = bytes.concat(new bytes(128), _negG2(), point, new bytes(256));
        (bool ok, bytes memory result) = PAIRING_CHECK.staticcall(input);
        assertTrue(ok);
        assertEq(abi.decode(result, (uint256)), 1);
    }

    function test_verify_rejectsMalformedEncodings() public view {
        string memory json = _flare();
        bytes memory message = _bytes(json, "signatures", 0, "msg");
        bytes memory key = _keyOf(json, "signatures", 0);
        bytes memory signature = _bytes(json, "signatures", 0, "signature");
        // Non-zero padding byte, coordinate >= p, off-curve point.
        assertFalse(harness.verify{gas: CALL_GAS}(key, message, _flip(signature, 0, 0x01), DST));
        bytes memory large = bytes.concat(signature);
        for (uint256 i = 16; i < 64; ++i) {
            large[i] = 0xff;
        }
        assertFalse(harness.verify{gas: CALL_GAS}(key, message, large, DST));
        assertFalse(harness.verify{gas: CALL_GAS}(key, message, _flip(signature, 127, 0x01), DST));
        // A G2 point given where the key belongs, shifted: not on the twist.
        assertFalse(harness.verify{gas: CALL_GAS}(_flip(key, 255, 0x02), message, signature, DST));
    }

    /// @dev Short of gas, `verify` reverts; it never reports a valid signature as invalid.
    function test_verify_neverFalseForLackOfGas() public {
        string memory json = _flare();
        bytes memory call = abi.encodeCall(
            CryptoHarness.verify,
            (
                _keyOf(json, "signatures", 9),
                _bytes(json, "signatures", 9, "msg"),
                _bytes(json, "signatures", 9, "signature"),
                _bytes(json, "signatures", 9, "dst")
            )
        );
        uint256 passes;
        for (uint256 limit = 100_000; limit <= 140_000; limit += 250) {
            (bool ok, bytes memory result) = address(harness).staticcall{gas: limit}(call);
            if (ok) {
                assertTrue(abi.decode(result, (bool)), vm.toString(limit));
                ++passes;
            }
        }
        assertGt(passes, 0);
        vm.expectRevert(BLS.InsufficientGas.selector);
        harness.verify{gas: 120_000}(
            _keyOf(json, "signatures", 9),
            _bytes(json, "signatures", 9, "msg"),
            _bytes(json, "signatures", 9, "signature"),
            _bytes(json, "signatures", 9, "dst")
        );
    }

    function test_verify_revertsOnWrongLengths() public {
        bytes memory key = new bytes(256);
        bytes memory signature = new bytes(128);
        vm.expectRevert(abi.encodeWithSelector(BLS.InvalidEncodingLength.selector, 256, 255));
        harness.verify(new bytes(255), "m", signature, DST);
        vm.expectRevert(abi.encodeWithSelector(BLS.InvalidEncodingLength.selector, 128, 129));
        harness.verify(key, "m", new bytes(129), DST);
        vm.expectRevert(abi.encodeWithSelector(BLS.InvalidEncodingLength.selector, 128, 96));
        harness.verify(key, "m", new bytes(96), DST);
    }

    /// @dev On a chain without EIP-2537 (here: the Cancun rules) a call to 0x10 succeeds with
    ///      no output: caught, not read as a point.
    /// forge-config: default.evm_version = "cancun"
    function test_hashToG1_revertsWithoutEip2537() public {
        vm.expectRevert(abi.encodeWithSelector(BLS.PrecompileFailed.selector, MAP_FP_TO_G1));
        harness.hashToG1("m", DST);
    }

    function test_revertsOnInvalidDomainTag() public {
        vm.expectRevert(abi.encodeWithSelector(BLS.InvalidDomainTag.selector, 0));
        harness.hashToG1("m", "");
        vm.expectRevert(abi.encodeWithSelector(BLS.InvalidDomainTag.selector, 256));
        harness.hashToG1("m", new bytes(256));
        vm.expectRevert(abi.encodeWithSelector(BLS.InvalidDomainTag.selector, 0));
        harness.expandMessageXmd("m", "", 32);
    }

    function test_expandMessageXmd_lengthLimits() public {
        vm.expectRevert(abi.encodeWithSelector(BLS.InvalidExpandLength.selector, 0));
        harness.expandMessageXmd("m", DST, 0);
        vm.expectRevert(abi.encodeWithSelector(BLS.InvalidExpandLength.selector, 8161));
        harness.expandMessageXmd("m", DST, 8161);
        vm.expectRevert(abi.encodeWithSelector(BLS.InvalidExpandLength.selector, type(uint256).max));
        harness.expandMessageXmd("m", DST, type(uint256).max);
        assertEq(harness.expandMessageXmd("m", DST, 8160).length, 8160);
        assertEq(harness.expandMessageXmd("m", DST, 1).length, 1);
    }

    /// @dev `len_in_bytes` is hashed into b0: a shorter output is not a prefix of a longer one.
    function test_expandMessageXmd_lengthIsBound() public view {
        bytes memory long = BLS.expandMessageXmd("abc", DST, 64);
        bytes memory short = BLS.expandMessageXmd("abc", DST, 40);
        assertEq(short.length, 40);
        assertNotEq(short, _prefix(long, 40));
    }

    // ---------------------------------------------------------------- fuzz

    /// @dev Random bytes never verify; with `canonical`, the padding is zero and every coordinate
    ///      below p, so the precompile gets as far as the curve check.
    /// forge-config: default.fuzz.runs = 64
    function testFuzz_verify_rejectsRandomProof(
        bytes32 a,
        bytes32 b,
        bytes32 c,
        bytes32 d,
        bool canonical,
        uint256 which
    ) public view {
        string memory json = _flare();
        which = bound(which, 0, 12);
        if (canonical) {
            bytes32 below = bytes32(uint256(type(uint128).max >> 4));
            (a, c) = (a & below, c & below);
        }
        bytes memory proof = abi.encodePacked(a, b, c, d);
        bool valid = harness.verify{gas: CALL_GAS}(
            _keyOf(json, "signatures", which), _bytes(json, "signatures", which, "msg"), proof, DST
        );
        assertFalse(valid);
    }

    /// @dev Random valid subgroup points (hashes of random messages) as proofs never verify.
    /// forge-config: default.fuzz.runs = 64
    function testFuzz_verify_rejectsRandomPoint(bytes memory seed, uint256 which) public view {
        string memory json = _flare();
        which = bound(which, 0, 12);
        bytes memory proof = BLS.hashToG1(seed, "FUZZ");
        bool valid = harness.verify{gas: CALL_GAS}(
            _keyOf(json, "signatures", which),
            _bytes(json, "signatures", which, "msg"),
            proof,
            _bytes(json, "signatures", which, "dst")
        );
        assertFalse(valid);
    }

    /// @dev Every hash is a G1 point (G1ADD with infinity accepts it and returns it unchanged)
    ///      in the order-r subgroup (G1MSM by r, which checks the subgroup, gives infinity).
    /// forge-config: default.fuzz.runs = 128
    function testFuzz_hashToG1_isInSubgroup(bytes memory message, uint8 dstLength) public view {
        bytes memory dst = new bytes(bound(dstLength, 1, 255));
        dst[0] = 0x51;
        bytes memory point = BLS.hashToG1(message, dst);
        assertEq(point.length, 128);
        assertNotEq(keccak256(point), keccak256(new bytes(128)));

        (bool ok, bytes memory sum) = G1ADD.staticcall(bytes.concat(point, new bytes(128)));
        assertTrue(ok);
        assertEq(sum, point);

        (ok, sum) = G1MSM.staticcall(bytes.concat(point, bytes32(GROUP_ORDER)));
        assertTrue(ok);
        assertEq(sum, new bytes(128));
    }

    /// forge-config: default.fuzz.runs = 128
    function testFuzz_expandMessageXmd_length(bytes memory message, uint16 length) public view {
        length = uint16(bound(length, 1, 8160));
        assertEq(BLS.expandMessageXmd(message, DST, length).length, length);
    }

    // ---------------------------------------------------------------- helpers

    function _negG2() internal pure returns (bytes memory) {
        return bytes.concat(
            hex"00000000000000000000000000000000024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8",
            hex"0000000000000000000000000000000013e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e",
            hex"000000000000000000000000000000000d1b3cc2c7027888be51d9ef691d77bcb679afda66c73f17f9ee3837a55024f78c71363275a75d75d86bab79f74782aa",
            hex"0000000000000000000000000000000013fa4d4a0ad8b1ce186ed5061789213d993923066dddaf1040bc3ff59f825c78df74f2d75467e25e0f55f8a00fa030ed"
        );
    }

    function _prefix(bytes memory data, uint256 length) internal pure returns (bytes memory prefix) {
        prefix = new bytes(length);
        for (uint256 i; i < length; ++i) {
            prefix[i] = data[i];
        }
    }
}

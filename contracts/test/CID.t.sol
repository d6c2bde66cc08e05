// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test} from "forge-std/Test.sol";
import {CID, Cid} from "../src/CID.sol";
import {CryptoHarness} from "./utils/CryptoHarness.sol";

contract CIDTest is Test {
    using CID for uint64;

    CryptoHarness internal harness;

    function setUp() public {
        harness = new CryptoHarness();
    }

    function test_codecs() public pure {
        assertEq(CID.RAW, 0x55);
        assertEq(CID.DAG_PB, 0x70);
        assertTrue(CID.isSupportedCodec(0x55));
        assertTrue(CID.isSupportedCodec(0x70));
        assertFalse(CID.isSupportedCodec(0));
        assertFalse(CID.isSupportedCodec(0x71)); // dag-cbor
        assertFalse(CID.isSupportedCodec(0x12)); // the sha2-256 multihash code, not a codec
        assertFalse(CID.isSupportedCodec(type(uint64).max));
    }

    /// @dev `sha256("hello world")` as a raw leaf: docs/storage.md's example CID.
    function test_checkCodec_acceptsStorageExample() public view {
        Cid memory cid = Cid({codec: 0x55, digest: sha256("hello world")});
        assertEq(cid.digest, 0xb94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9);
        harness.checkCodec(cid.codec);
    }

    function test_checkCodec_revertsWithProtocolError() public {
        vm.expectRevert(abi.encodeWithSignature("UnsupportedCodec(uint64)", uint64(0x71)));
        harness.checkCodec(0x71);
    }

    function testFuzz_isSupportedCodec(uint64 codec) public pure {
        assertEq(codec.isSupportedCodec(), codec == 0x55 || codec == 0x70);
    }

    function testFuzz_checkCodec(uint64 codec) public {
        if (codec != 0x55 && codec != 0x70) {
            vm.expectRevert(abi.encodeWithSelector(CID.UnsupportedCodec.selector, codec));
        }
        harness.checkCodec(codec);
    }
}

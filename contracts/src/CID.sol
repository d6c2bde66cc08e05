// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice A content identifier in its compact on-chain form (docs/protocol.md §2.1): a CIDv1
///         with a sha2-256 multihash, so only the multicodec and the 32-byte digest vary.
///         Python converts with `flare.storage.cid_to_onchain` / `cid_from_onchain`.
/// @param codec The multicodec: `0x55` (raw, a one-chunk blob) or `0x70` (dag-pb, a UnixFS root).
/// @param digest The sha2-256 digest.
struct Cid {
    uint64 codec;
    bytes32 digest;
}

/// @title Validation of on-chain CIDs
library CID {
    /// @notice The codec is neither raw nor dag-pb (the protocol's error, same selector).
    error UnsupportedCodec(uint64 codec);

    /// @notice Multicodec `raw`.
    uint64 internal constant RAW = 0x55;

    /// @notice Multicodec `dag-pb`.
    uint64 internal constant DAG_PB = 0x70;

    /// @notice Whether Flare stores content under `codec`.
    /// @param codec A multicodec.
    /// @return True iff `codec` is raw or dag-pb.
    function isSupportedCodec(uint64 codec) internal pure returns (bool) {
        return codec == RAW || codec == DAG_PB;
    }

    /// @notice Revert with `UnsupportedCodec(codec)` unless `codec` is raw or dag-pb.
    /// @dev Takes the codec, not the struct, so a `Cid calldata` argument is checked in place.
    /// @param codec The `codec` field of a `Cid`.
    function checkCodec(uint64 codec) internal pure {
        if (!isSupportedCodec(codec)) revert UnsupportedCodec(codec);
    }
}

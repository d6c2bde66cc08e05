// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title BLS12-381 hash-to-G1 and signature verification on the EIP-2537 precompiles
/// @notice Minimal-signature-size BLS: signatures in G1, public keys in G2. Hashing to G1 follows
///         RFC 9380, suite `BLS12381G1_XMD:SHA-256_SSWU_RO_`, with the caller's domain tag.
/// @dev Every point uses the EIP-2537 encoding (docs/crypto.md §2): an Fp element is 64 bytes
///      (16 zero bytes, then the 48-byte big-endian value), a G1 point is `x ‖ y` (128 bytes), a G2
///      point `x.c0 ‖ x.c1 ‖ y.c0 ‖ y.c1` (256 bytes), the point at infinity all zero bytes.
///      The functions work in memory past the free memory pointer and never move it, except to
///      allocate the values they return.
library BLS {
    /// @notice A domain separation tag is empty or longer than 255 bytes.
    error InvalidDomainTag(uint256 length);

    /// @notice `expand_message_xmd` was asked for 0 bytes or more than 255 SHA-256 blocks.
    error InvalidExpandLength(uint256 length);

    /// @notice A public key is not 256 bytes or a signature is not 128 bytes.
    error InvalidEncodingLength(uint256 expected, uint256 actual);

    /// @notice A precompile the hash needs failed or is missing (a chain without EIP-2537).
    error PrecompileFailed(address precompile);

    /// @notice Too little gas left to give the pairing its price: a refusal could not be told
    ///         from running out of gas, so the call reverts rather than report `false`.
    error InsufficientGas();

    /// @dev Precompile addresses (EIP-2537's final, Prague, assignment for the BLS12-381 ones), as
    ///      address literals: inline assembly reads only literal constants.
    address private constant SHA256 = 0x0000000000000000000000000000000000000002;
    address private constant MODEXP = 0x0000000000000000000000000000000000000005;
    address private constant G1ADD = 0x000000000000000000000000000000000000000b;
    address private constant PAIRING_CHECK = 0x000000000000000000000000000000000000000F;
    address private constant MAP_FP_TO_G1 = 0x0000000000000000000000000000000000000010;

    /// @dev Gas that must be left before the pairing: with 102,900 for the two-pair check and
    ///      the call's own 100, EIP-150 (the callee gets all but 1/64) needs 104,634; the rest
    ///      covers assembling the input between the check and the call.
    uint256 private constant PAIRING_CALL_GAS = 105_000;

    /// @dev Gas forwarded to each precompile: its EIP-2537 / Prague price (Osaka's for MODEXP)
    ///      with a margin against a repricing, never the caller's whole allowance. A precompile
    ///      that refuses its input consumes what it was given, so these bounds are what a
    ///      malformed key or proof costs its sender (the pairing's, since only the pairing sees
    ///      caller-supplied points), instead of 63/64 of the transaction's gas.
    ///      Pairing with two pairs: 37,700 + 2 × 32,600 = 102,900.
    uint256 private constant PAIRING_GAS = 150_000;
    /// @dev MAP_FP_TO_G1: 5,500.
    uint256 private constant MAP_GAS = 11_000;
    /// @dev G1ADD: 375.
    uint256 private constant G1ADD_GAS = 1_000;
    /// @dev MODEXP of a 64-byte base, 1-byte exponent and 48-byte modulus: 200 (Prague), 500
    ///      (Osaka, EIP-7883).
    uint256 private constant MODEXP_GAS = 1_000;
    /// @dev SHA-256: 60 + 12 per 32-byte word of input, forwarded twice over.
    uint256 private constant SHA256_BASE_GAS = 120;
    uint256 private constant SHA256_WORD_GAS = 24;

    /// @dev RFC 9380 caps `expand_message_xmd` at 255 hash blocks: 255 × 32 bytes.
    uint256 private constant MAX_EXPAND_LENGTH = 8160;

    /// @dev The BLS12-381 base field modulus p (48 bytes): its first 32 bytes, then its last 16
    ///      bytes shifted to the top of a word, as they sit in the MODEXP input.
    uint256 private constant P_HIGH = 0x1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f624;
    uint256 private constant P_LOW = 0x1eabfffeb153ffffb9feffffffffaaab00000000000000000000000000000000;

    /// @dev -g2, the negated G2 generator, in its 256-byte encoding (eight words).
    uint256 private constant NEG_G2_0 = 0x00000000000000000000000000000000024aa2b2f08f0a91260805272dc51051;
    uint256 private constant NEG_G2_1 = 0xc6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8;
    uint256 private constant NEG_G2_2 = 0x0000000000000000000000000000000013e02b6052719f607dacd3a088274f65;
    uint256 private constant NEG_G2_3 = 0x596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e;
    uint256 private constant NEG_G2_4 = 0x000000000000000000000000000000000d1b3cc2c7027888be51d9ef691d77bc;
    uint256 private constant NEG_G2_5 = 0xb679afda66c73f17f9ee3837a55024f78c71363275a75d75d86bab79f74782aa;
    uint256 private constant NEG_G2_6 = 0x0000000000000000000000000000000013fa4d4a0ad8b1ce186ed5061789213d;
    uint256 private constant NEG_G2_7 = 0x993923066dddaf1040bc3ff59f825c78df74f2d75467e25e0f55f8a00fa030ed;

    /// @notice Verify a BLS signature: `e(signature, g2) == e(H(message), publicKey)`.
    /// @dev One PAIRING_CHECK of `signature ‖ -g2 ‖ H(message) ‖ publicKey` (102,900 gas) after
    ///      hashing the message to G1. Infinity as key or signature is rejected here, because the
    ///      pairing would accept `0` with `0`. The precompile itself rejects bad padding,
    ///      coordinates `>= p`, points off the curve or outside the subgroup; that refusal reads
    ///      as `false` and, like any failed precompile call, consumes the gas forwarded to it
    ///      (at most `PAIRING_GAS`).
    ///      Because a refusal and running out of gas look alike, `verify` reverts
    ///      `InsufficientGas` unless the pairing is sure to get its full price: `false` always
    ///      means an invalid signature, never a caller short of gas.
    /// @param publicKey The 256-byte G2 public key.
    /// @param message The signed message.
    /// @param signature The 128-byte G1 signature.
    /// @param dst The hash-to-curve domain separation tag (1 to 255 bytes).
    /// @return valid True iff the signature is a valid signature of `message` under `publicKey`.
    function verify(bytes memory publicKey, bytes memory message, bytes memory signature, bytes memory dst)
        internal
        view
        returns (bool valid)
    {
        if (publicKey.length != 256) revert InvalidEncodingLength(256, publicKey.length);
        if (signature.length != 128) revert InvalidEncodingLength(128, signature.length);
        if (_isZero(publicKey) || _isZero(signature)) return false;

        uint256 input = _freeMemory();
        _hashToG1(_data(message), message.length, dst, input + 384, input + 768);
        if (gasleft() < PAIRING_CALL_GAS) revert InsufficientGas();
        assembly ("memory-safe") {
            mcopy(input, add(signature, 32), 128)
            mstore(add(input, 128), NEG_G2_0)
            mstore(add(input, 160), NEG_G2_1)
            mstore(add(input, 192), NEG_G2_2)
            mstore(add(input, 224), NEG_G2_3)
            mstore(add(input, 256), NEG_G2_4)
            mstore(add(input, 288), NEG_G2_5)
            mstore(add(input, 320), NEG_G2_6)
            mstore(add(input, 352), NEG_G2_7)
            mcopy(add(input, 512), add(publicKey, 32), 256)
            let ok := staticcall(PAIRING_GAS, PAIRING_CHECK, input, 768, 0x00, 32)
            valid := and(ok, and(eq(returndatasize(), 32), eq(mload(0x00), 1)))
        }
    }

    /// @notice RFC 9380 `hash_to_curve` for `BLS12381G1_XMD:SHA-256_SSWU_RO_`.
    /// @dev `MAP_FP_TO_G1` clears the cofactor of each mapped point; clearing is linear, so
    ///      `map(u0) + map(u1)` equals the RFC's `clear_cofactor(map_to_curve(u0) + map_to_curve(u1))`.
    /// @param message The message to hash.
    /// @param dst The domain separation tag (1 to 255 bytes).
    /// @return point The 128-byte encoding of a G1 point in the order-r subgroup.
    function hashToG1(bytes memory message, bytes memory dst) internal view returns (bytes memory point) {
        point = new bytes(128);
        _hashToG1(_data(message), message.length, dst, _data(point), _freeMemory());
    }

    /// @notice RFC 9380 `hash_to_field` into Fp with `count = 2`, `L = 64`: `u0` and `u1`.
    /// @param message The message to hash.
    /// @param dst The domain separation tag (1 to 255 bytes).
    /// @return elements `u0 ‖ u1`, each a 64-byte Fp encoding (128 bytes, the layout the mapping
    ///         precompile takes).
    function hashToField(bytes memory message, bytes memory dst) internal view returns (bytes memory elements) {
        elements = new bytes(128);
        _hashToField(_data(message), message.length, dst, _data(elements), _freeMemory());
    }

    /// @notice RFC 9380 `expand_message_xmd` with SHA-256.
    /// @param message The message to expand.
    /// @param dst The domain separation tag (1 to 255 bytes).
    /// @param length The number of bytes wanted (`len_in_bytes`, 1 to 8160).
    /// @return uniform `length` pseudo-random bytes.
    function expandMessageXmd(bytes memory message, bytes memory dst, uint256 length)
        internal
        view
        returns (bytes memory uniform)
    {
        if (length == 0 || length > MAX_EXPAND_LENGTH) revert InvalidExpandLength(length);
        uniform = new bytes((length + 31) & ~uint256(31));
        assembly ("memory-safe") {
            mstore(uniform, length)
        }
        _expand(_data(message), message.length, dst, length, _data(uniform), _freeMemory());
    }

    /// @dev Hash to G1 into `out` (128 bytes), using memory from `scratch` on.
    function _hashToG1(uint256 message, uint256 messageLength, bytes memory dst, uint256 out, uint256 scratch)
        private
        view
    {
        _hashToField(message, messageLength, dst, scratch, scratch + 128);
        bool ok;
        assembly ("memory-safe") {
            // Yul evaluates arguments right to left: read returndatasize() only after each call.
            let points := add(scratch, 128)
            ok := staticcall(MAP_GAS, MAP_FP_TO_G1, scratch, 64, points, 128)
            ok := and(ok, eq(returndatasize(), 128))
            ok := and(ok, staticcall(MAP_GAS, MAP_FP_TO_G1, add(scratch, 64), 64, add(points, 128), 128))
            ok := and(ok, eq(returndatasize(), 128))
        }
        if (!ok) revert PrecompileFailed(MAP_FP_TO_G1);
        assembly ("memory-safe") {
            ok := staticcall(G1ADD_GAS, G1ADD, add(scratch, 128), 256, out, 128)
            ok := and(ok, eq(returndatasize(), 128))
        }
        if (!ok) revert PrecompileFailed(G1ADD);
    }

    /// @dev `u0 ‖ u1` into `out` (128 bytes), using memory from `scratch` on. Each 64-byte half of
    ///      the 128 uniform bytes is reduced mod p by MODEXP with exponent 1; the 48-byte result
    ///      lands behind 16 zero bytes, which is the Fp encoding.
    function _hashToField(uint256 message, uint256 messageLength, bytes memory dst, uint256 out, uint256 scratch)
        private
        view
    {
        _expand(message, messageLength, dst, 128, scratch, scratch + 128);
        bool ok;
        assembly ("memory-safe") {
            // MODEXP input: base length 64, exponent length 1, modulus length 48, base, 0x01, p.
            let input := add(scratch, 128)
            mstore(input, 64)
            mstore(add(input, 32), 1)
            mstore(add(input, 64), 48)
            mcopy(add(input, 96), scratch, 64)
            mstore8(add(input, 160), 1)
            mstore(add(input, 161), P_HIGH)
            mstore(add(input, 193), P_LOW)
            mstore(out, 0)
            ok := staticcall(MODEXP_GAS, MODEXP, input, 209, add(out, 16), 48)
            mcopy(add(input, 96), add(scratch, 64), 64)
            mstore(add(out, 64), 0)
            ok := and(ok, staticcall(MODEXP_GAS, MODEXP, input, 209, add(out, 80), 48))
        }
        if (!ok) revert PrecompileFailed(MODEXP);
    }

    /// @dev `expand_message_xmd(message, dst, length)` into `out` (whole 32-byte blocks), using
    ///      memory from `scratch` on. `length` is checked by the caller.
    function _expand(
        uint256 message,
        uint256 messageLength,
        bytes memory dst,
        uint256 length,
        uint256 out,
        uint256 scratch
    ) private view {
        uint256 dstLength = dst.length;
        if (dstLength == 0 || dstLength > 255) revert InvalidDomainTag(dstLength);
        bool ok;
        assembly ("memory-safe") {
            let tag := add(dst, 32)
            // b0 = H(Z_pad ‖ msg ‖ I2OSP(length, 2) ‖ I2OSP(0, 1) ‖ DST ‖ I2OSP(len(DST), 1))
            mstore(scratch, 0)
            mstore(add(scratch, 32), 0)
            mcopy(add(scratch, 64), message, messageLength)
            let suffix := add(add(scratch, 64), messageLength)
            mstore(suffix, shl(240, length))
            mcopy(add(suffix, 3), tag, dstLength)
            mstore8(add(add(suffix, 3), dstLength), dstLength)
            let b0Length := sub(add(add(suffix, 4), dstLength), scratch)
            let b0Gas := add(SHA256_BASE_GAS, mul(SHA256_WORD_GAS, shr(5, add(b0Length, 31))))
            ok := staticcall(b0Gas, SHA256, scratch, b0Length, 0x00, 32)
            let b0 := mload(0x00)
            // b_i = H(strxor(b0, b_(i-1)) ‖ I2OSP(i, 1) ‖ DST'), with b_0 ⊕ "b_0" = b0 for i = 1.
            mcopy(add(scratch, 33), tag, dstLength)
            mstore8(add(add(scratch, 33), dstLength), dstLength)
            let inputLength := add(dstLength, 34)
            let blockGas := add(SHA256_BASE_GAS, mul(SHA256_WORD_GAS, shr(5, add(inputLength, 31))))
            let blocks := shr(5, add(length, 31))
            let previous := 0
            for { let i := 1 } iszero(gt(i, blocks)) { i := add(i, 1) } {
                mstore(scratch, xor(b0, previous))
                mstore8(add(scratch, 32), i)
                let dest := add(out, shl(5, sub(i, 1)))
                ok := and(ok, staticcall(blockGas, SHA256, scratch, inputLength, dest, 32))
                previous := mload(dest)
            }
        }
        if (!ok) revert PrecompileFailed(SHA256);
    }

    /// @dev True iff every byte of `point` (128 or 256 bytes) is zero: the point at infinity.
    function _isZero(bytes memory point) private pure returns (bool zero) {
        assembly ("memory-safe") {
            let acc := 0
            let end := add(add(point, 32), mload(point))
            for { let word := add(point, 32) } lt(word, end) { word := add(word, 32) } {
                acc := or(acc, mload(word))
            }
            zero := iszero(acc)
        }
    }

    /// @dev The address of the first byte of `data`.
    function _data(bytes memory data) private pure returns (uint256 pointer) {
        assembly ("memory-safe") {
            pointer := add(data, 32)
        }
    }

    /// @dev The free memory pointer: where scratch space starts.
    function _freeMemory() private pure returns (uint256 pointer) {
        assembly ("memory-safe") {
            pointer := mload(0x40)
        }
    }
}

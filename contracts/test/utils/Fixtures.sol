// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test} from "forge-std/Test.sol";

/// @notice Access to the JSON fixtures under contracts/test/fixtures/, written by
///         scripts/gen_sol_fixtures.py from RFC 9380's vectors and Flare's Python crypto.
abstract contract Fixtures is Test {
    /// @dev The RFC 9380 vectors (J.9.1 hash to G1, K.1 expand_message_xmd).
    function _rfc() internal view returns (string memory) {
        return vm.readFile(string.concat(vm.projectRoot(), "/contracts/test/fixtures/rfc9380.json"));
    }

    /// @dev Flare's vectors: keys, proofs of possession, VRF draws, signatures, sortition cases.
    function _flare() internal view returns (string memory) {
        return vm.readFile(string.concat(vm.projectRoot(), "/contracts/test/fixtures/flare.json"));
    }

    /// @dev The JSON path `.array[index].field`.
    function _at(string memory array, uint256 index, string memory field) internal pure returns (string memory) {
        return string.concat(".", array, "[", vm.toString(index), "].", field);
    }

    /// @dev The number of elements of the array at `path`.
    function _count(string memory json, string memory path) internal view returns (uint256 count) {
        while (vm.keyExistsJson(json, string.concat(path, "[", vm.toString(count), "]"))) {
            ++count;
        }
    }

    /// @dev `.field` of element `index` of `array`, as bytes.
    function _bytes(string memory json, string memory array, uint256 index, string memory field)
        internal
        pure
        returns (bytes memory)
    {
        return vm.parseJsonBytes(json, _at(array, index, field));
    }

    /// @dev `.field` of element `index` of `array`, as a uint256.
    function _uint(string memory json, string memory array, uint256 index, string memory field)
        internal
        pure
        returns (uint256)
    {
        return vm.parseJsonUint(json, _at(array, index, field));
    }

    /// @dev Public key number `index` of the Flare fixtures (256 bytes).
    function _key(string memory json, uint256 index) internal pure returns (bytes memory) {
        return vm.parseJsonBytes(json, string.concat(".keys[", vm.toString(index), "]"));
    }

    /// @dev The public key that element `index` of `array` was made with.
    function _keyOf(string memory json, string memory array, uint256 index) internal pure returns (bytes memory) {
        return _key(json, _uint(json, array, index, "key"));
    }

    /// @dev A copy of `data` with `mask` xored into byte `index`.
    function _flip(bytes memory data, uint256 index, bytes1 mask) internal pure returns (bytes memory flipped) {
        flipped = bytes.concat(data);
        flipped[index] ^= mask;
    }
}

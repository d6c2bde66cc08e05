// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test} from "forge-std/Test.sol";
import {Cid} from "../../src/CID.sol";
import {FlareCoordinator} from "../../src/FlareCoordinator.sol";
import {Round, TaskParams} from "../../src/IFlareCoordinator.sol";
import {ProofOfPossession} from "../../src/ProofOfPossession.sol";
import {VRF} from "../../src/VRF.sol";
import {BlsSigner} from "./BlsSigner.sol";

/// @notice Shared set-up of the coordinator tests: the contract at Anvil's first deployment
///         address (where the Python side's seeds and VRF inputs assume it), test actors with
///         BLS keys made by `BlsSigner`, and helpers that drive a task through its phases.
abstract contract CoordinatorTestBase is Test {
    /// @dev Where Anvil's first dev account deploys its first contract (flare.chain's default).
    address internal constant DEPLOYED = 0x5FbDB2315678afecb367f032d93F642f64180aa3;
    uint64 internal constant RAW = 0x55;
    uint64 internal constant DAG_PB = 0x70;
    /// @dev Enough gas for any call, including one whose refused pairing burns 63/64 of it.
    uint256 internal constant CALL_GAS = 2_000_000;

    FlareCoordinator internal coordinator;
    address internal creator = makeAddr("creator");
    address internal stranger = makeAddr("stranger");

    /// @dev Secret keys and public keys of actors, cached by index.
    mapping(uint256 index => uint256) private _secrets;
    mapping(uint256 index => bytes) private _publicKeys;

    function setUp() public virtual {
        vm.chainId(31337);
        deployCodeTo("FlareCoordinator.sol:FlareCoordinator", DEPLOYED);
        coordinator = FlareCoordinator(DEPLOYED);
    }

    // -- actors -------------------------------------------------------------------------------

    /// @dev The address of actor `index`.
    function _addr(uint256 index) internal pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encode("flare-test-actor", index)))));
    }

    /// @dev The BLS secret key of actor `index`.
    function _secret(uint256 index) internal returns (uint256 secret) {
        secret = _secrets[index];
        if (secret == 0) {
            secret = BlsSigner.secretKey(abi.encode(index));
            _secrets[index] = secret;
        }
    }

    /// @dev The 256-byte public key of actor `index`.
    function _key(uint256 index) internal returns (bytes memory key) {
        key = _publicKeys[index];
        if (key.length == 0) {
            key = BlsSigner.publicKey(_secret(index));
            _publicKeys[index] = key;
        }
    }

    /// @dev Actor `index`'s proof of possession for registering its own address in `taskId`.
    function _pop(uint256 taskId, uint256 index) internal returns (bytes memory) {
        return _popFor(taskId, index, _addr(index));
    }

    /// @dev Actor `index`'s key signed over registering `account` in `taskId` on this deployment.
    function _popFor(uint256 taskId, uint256 index, address account) internal returns (bytes memory) {
        bytes memory message = ProofOfPossession.message(block.chainid, address(coordinator), taskId, account);
        return BlsSigner.sign(_secret(index), message, ProofOfPossession.DST);
    }

    // -- values -------------------------------------------------------------------------------

    function _cid(string memory label) internal pure returns (Cid memory) {
        return Cid(RAW, keccak256(bytes(label)));
    }

    /// @dev Parameters with k = 100, so every registered participant wins a seat.
    function _params() internal pure returns (TaskParams memory) {
        return TaskParams({
            minClients: 3,
            expectedCommittee: 100,
            minCommittee: 3,
            quorumBps: 6_000,
            submissionWindow: 30,
            voteWindow: 20,
            maxRounds: 2,
            maxAttempts: 5
        });
    }

    /// @dev The canonical bitmap accepting every one of `count` submissions.
    function _all(uint256 count) internal pure returns (bytes memory bitmap) {
        bitmap = new bytes((count + 7) / 8);
        for (uint256 i; i < count; ++i) {
            bitmap[i / 8] |= bytes1(uint8(2 ** (i % 8)));
        }
    }

    // -- driving a task -----------------------------------------------------------------------

    function _createTask(TaskParams memory params) internal returns (uint256 taskId) {
        vm.prank(creator);
        taskId = coordinator.createTask(_cid("initial model"), Cid(DAG_PB, keccak256("validation set")), params);
    }

    function _register(uint256 taskId, uint256 index) internal {
        bytes memory key = _key(index);
        bytes memory pop = _pop(taskId, index);
        vm.prank(_addr(index));
        coordinator.register(taskId, key, pop);
    }

    /// @dev The creator starts the task in the next block (keys registered in the block that
    ///      opens an attempt are not in its snapshot).
    function _start(uint256 taskId) internal {
        vm.roll(block.number + 1);
        vm.prank(creator);
        coordinator.startTask(taskId);
    }

    /// @dev Seal the current attempt's seed in the next block, with a fresh prevrandao.
    function _seal(uint256 taskId) internal {
        _sealWith(taskId, keccak256(abi.encode("randao", block.number + 1)));
    }

    /// @dev Seal the current attempt's seed in the next block, whose prevrandao is `randao`.
    function _sealWith(uint256 taskId, bytes32 randao) internal {
        vm.roll(block.number + 1);
        vm.prevrandao(randao);
        vm.prank(stranger);
        coordinator.sealSeed(taskId);
    }

    /// @dev Create a task, register actors `0 .. count - 1`, start it and seal round 1's seed.
    function _started(TaskParams memory params, uint256 count) internal returns (uint256 taskId) {
        taskId = _createTask(params);
        for (uint256 i; i < count; ++i) {
            _register(taskId, i);
        }
        _start(taskId);
        _seal(taskId);
    }

    /// @dev Actor `index`'s VRF proof for the current attempt of `taskId`.
    function _proof(uint256 taskId, uint256 index) internal returns (bytes memory) {
        Round memory current = coordinator.getRound(taskId);
        bytes memory input =
            VRF.input(block.chainid, address(coordinator), taskId, current.round, current.attempt, current.seed);
        return BlsSigner.sign(_secret(index), input, VRF.DST);
    }

    /// @dev Whether actor `index` wins a seat in the current attempt of `taskId`.
    function _wins(uint256 taskId, uint256 index) internal returns (bool) {
        Round memory current = coordinator.getRound(taskId);
        return VRF.seatGranted(keccak256(_proof(taskId, index)), current.expectedCommittee, current.registeredSnapshot);
    }

    function _claim(uint256 taskId, uint256 index) internal {
        bytes memory key = _key(index);
        bytes memory proof = _proof(taskId, index);
        vm.prank(_addr(index));
        coordinator.claimSeat(taskId, key, proof);
    }

    function _submit(uint256 taskId, uint256 index) internal {
        vm.prank(_addr(index));
        // forge-lint: disable-next-line(unsafe-typecast)
        coordinator.submit(taskId, _cid(string.concat("update ", vm.toString(index))), uint64(10 + index));
    }

    function _propose(uint256 taskId, uint256 index, Cid memory model, bytes memory accepted)
        internal
        returns (uint32 proposalId)
    {
        vm.prank(_addr(index));
        proposalId = coordinator.propose(taskId, model, accepted);
    }

    function _vote(uint256 taskId, uint256 index, uint32 proposalId, bool approve) internal {
        vm.prank(_addr(index));
        coordinator.vote(taskId, proposalId, approve);
    }

    /// @dev Move to the first block of the vote window.
    function _toVoting(uint256 taskId) internal {
        vm.roll(coordinator.getRound(taskId).submissionDeadline + 1);
    }

    /// @dev Move past the vote window.
    function _expire(uint256 taskId) internal {
        vm.roll(coordinator.getRound(taskId).voteDeadline + 1);
    }
}

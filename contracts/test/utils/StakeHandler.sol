// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {CommonBase} from "forge-std/Base.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {Cid} from "../../src/CID.sol";
import {FlareCoordinator} from "../../src/FlareCoordinator.sol";
import {TaskParams} from "../../src/IFlareCoordinator.sol";
import {ProofOfPossession} from "../../src/ProofOfPossession.sol";
import {BlsSigner} from "./BlsSigner.sol";

/// @notice Drives staked tasks with random deposits, withdrawals, cancellations, starts and
///         timeouts from a fixed set of actors with real BLS keys, and keeps the ghost totals
///         of what went in and out. Calls that revert are expected and ignored.
contract StakeHandler is CommonBase, StdUtils {
    uint256 public constant ACTORS = 6;
    uint256 public constant TASKS = 3;

    FlareCoordinator public immutable coordinator;
    address public immutable creator = address(0xC0FFEE);
    address[ACTORS] public actors;
    uint256[ACTORS] internal secrets;
    bytes[ACTORS] internal keys;

    uint256 public deposited;
    uint256 public withdrawn;
    uint256 public withdrawals;

    constructor(FlareCoordinator coordinator_) {
        coordinator = coordinator_;
        for (uint256 i; i < ACTORS; ++i) {
            actors[i] = address(uint160(uint256(keccak256(abi.encode("flare-staker", i)))));
            secrets[i] = BlsSigner.secretKey(abi.encode("staker", i));
            keys[i] = BlsSigner.publicKey(secrets[i]);
        }
        TaskParams memory params = TaskParams({
            minClients: 2,
            expectedCommittee: 3,
            minCommittee: 2,
            quorumBps: 6_667,
            submissionWindow: 5,
            voteWindow: 5,
            maxRounds: 2,
            maxAttempts: 3
        });
        for (uint256 t; t < TASKS; ++t) {
            vm.prank(creator);
            coordinator.createStakedTask(Cid(0x55, keccak256("model")), Cid(0x70, keccak256("set")), params, 1 gwei);
        }
    }

    function registerStaked(uint256 actorSeed, uint256 taskSeed, uint256 amount) external {
        uint256 actor = actorSeed % ACTORS;
        uint256 taskId = taskSeed % TASKS + 1;
        amount = bound(amount, 1 gwei, 100 ether);
        bytes memory message = ProofOfPossession.message(block.chainid, address(coordinator), taskId, actors[actor]);
        bytes memory pop = BlsSigner.sign(secrets[actor], message, ProofOfPossession.DST);
        vm.deal(actors[actor], amount);
        vm.prank(actors[actor]);
        try coordinator.registerStaked{value: amount}(taskId, keys[actor], pop) {
            deposited += amount;
        } catch {}
    }

    function withdrawStake(uint256 actorSeed, uint256 taskSeed) external {
        address actor = actors[actorSeed % ACTORS];
        uint256 taskId = taskSeed % TASKS + 1;
        uint256 before = actor.balance;
        vm.prank(actor);
        try coordinator.withdrawStake(taskId) {
            withdrawn += actor.balance - before;
            ++withdrawals;
        } catch {}
    }

    function cancelTask(uint256 taskSeed) external {
        vm.prank(creator);
        try coordinator.cancelTask(taskSeed % TASKS + 1) {} catch {}
    }

    function startTask(uint256 taskSeed) external {
        vm.prank(creator);
        try coordinator.startTask(taskSeed % TASKS + 1) {} catch {}
    }

    function timeout(uint256 taskSeed) external {
        try coordinator.timeout(taskSeed % TASKS + 1) {} catch {}
    }

    /// @notice Let blocks pass, sometimes past every stake lock.
    function advance(uint256 blocks) external {
        vm.roll(block.number + bound(blocks, 1, 2 * coordinator.STAKE_LOCK_BLOCKS()));
    }
}

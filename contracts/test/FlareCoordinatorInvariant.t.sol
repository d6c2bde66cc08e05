// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IFlareCoordinator as IFC, Proposal, Round, Task, TaskStatus} from "../src/IFlareCoordinator.sol";
import {VRF} from "../src/VRF.sol";
import {CoordinatorHandler} from "./utils/CoordinatorHandler.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";

/// @notice Invariants of the coordinator under random call sequences (`CoordinatorHandler`): a
///         round never finalizes without a quorum of its committee; each member votes at most
///         once per attempt; the global model changes only through a finalization; every seat
///         was won with a valid VRF proof whose output is below the sortition threshold.
contract FlareCoordinatorInvariantTest is CoordinatorTestBase {
    CoordinatorHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new CoordinatorHandler(coordinator);
        handler.setUpTasks(6);
        bytes4[] memory selectors = new bytes4[](9);
        selectors[0] = CoordinatorHandler.register.selector;
        selectors[1] = CoordinatorHandler.submit.selector;
        selectors[2] = CoordinatorHandler.claimSeat.selector;
        selectors[3] = CoordinatorHandler.propose.selector;
        selectors[4] = CoordinatorHandler.vote.selector;
        selectors[5] = CoordinatorHandler.timeout.selector;
        selectors[6] = CoordinatorHandler.advance.selector;
        selectors[7] = CoordinatorHandler.progress.selector;
        selectors[8] = CoordinatorHandler.sealSeed.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// @dev Every finalization had approvals >= ceil(quorumBps · committeeSize / 10000), from
    ///      that many distinct members, with a committee of at least minCommittee.
    /// forge-config: default.invariant.runs = 16
    /// forge-config: default.invariant.depth = 128
    function invariant_finalizesOnlyWithQuorum() public view {
        for (uint256 i; i < handler.finalizationCount(); ++i) {
            CoordinatorHandler.Finalization memory done = handler.finalization(i);
            Task memory task = coordinator.getTask(done.taskId);
            uint256 threshold = (uint256(task.params.quorumBps) * done.committeeSize + 9_999) / 10_000;
            assertGe(done.committeeSize, task.params.minCommittee, "committee below minimum");
            assertGe(done.approvals, threshold, "finalized below quorum");
            assertGe(done.distinctApprovers, threshold, "approvals not from distinct members");
            assertLe(done.approvals, done.committeeSize, "more approvals than seats");
        }
    }

    /// @dev No member voted twice in one attempt, or without a seat in it; the stored counts of
    ///      every proposal equal the successful votes on it.
    /// forge-config: default.invariant.runs = 16
    /// forge-config: default.invariant.depth = 128
    function invariant_oneVotePerMemberPerAttempt() public view {
        assertEq(handler.doubleVotes(), 0, "a member voted twice in one attempt");
        assertEq(handler.votesWithoutSeat(), 0, "a vote without a seat");
        for (uint256 taskId = 1; taskId <= handler.TASKS(); ++taskId) {
            uint32 count = coordinator.getTask(taskId).proposalCount;
            for (uint32 id = 1; id <= count; ++id) {
                Proposal memory proposal = coordinator.getProposal(taskId, id);
                assertEq(proposal.approvals + proposal.rejections, handler.votesOn(taskId, id), "vote count");
                assertEq(proposal.approvals, handler.approversOf(taskId, id), "approval count");
            }
        }
    }

    /// @dev The model moved only inside finalizing votes, and is the last finalized proposal's.
    /// forge-config: default.invariant.runs = 16
    /// forge-config: default.invariant.depth = 128
    function invariant_modelChangesOnlyThroughFinalize() public view {
        assertEq(handler.modelChangesOutsideFinalize(), 0, "model changed outside a finalization");
        for (uint256 taskId = 1; taskId <= handler.TASKS(); ++taskId) {
            assertEq(coordinator.getTask(taskId).model.digest, handler.expectedModel(taskId), "model");
        }
    }

    /// @dev Every seat re-verifies from the logged proof: a valid BLS signature of the attempt's
    ///      VRF input under the member's key, output = keccak256(proof), output below the
    ///      threshold of the attempt's own expected committee (the task's, or one an under-filled
    ///      attempt doubled); and the current committee is exactly the seats claimed in this
    ///      attempt.
    /// forge-config: default.invariant.runs = 16
    /// forge-config: default.invariant.depth = 128
    function invariant_seatsAreValidDraws() public view {
        uint256[3] memory current;
        for (uint256 i; i < handler.seatCount(); ++i) {
            CoordinatorHandler.Seat memory held = handler.seat(i);
            assertTrue(VRF.verify(held.publicKey, held.input, held.proof), "seat without a valid proof");
            assertEq(held.output, keccak256(held.proof), "output");
            assertTrue(VRF.seatGranted(held.output, held.expectedCommittee, held.snapshot), "seat above the threshold");
            if (held.epoch == coordinator.getTask(held.taskId).epoch) ++current[held.taskId];
        }
        for (uint256 taskId = 1; taskId <= handler.TASKS(); ++taskId) {
            assertEq(coordinator.getRound(taskId).committeeSize, current[taskId], "committee size");
        }
    }

    /// @dev The stored submissions hash is the hash chain of the logged submissions (§2.3).
    /// forge-config: default.invariant.runs = 16
    /// forge-config: default.invariant.depth = 128
    function invariant_submissionsHashMatchesLogs() public view {
        for (uint256 taskId = 1; taskId <= handler.TASKS(); ++taskId) {
            Round memory current = coordinator.getRound(taskId);
            assertEq(current.submissionsHash, handler.ghostSubmissionsHash(taskId), "submissions hash");
        }
    }

    /// @dev The handler's guided steps reach what the invariants are about: seats, votes,
    ///      finalizations, timeouts and a completed task (so the invariants are not vacuous).
    function test_handler_reachesEveryTransition() public {
        for (uint256 i; i < 60; ++i) {
            handler.progress(uint256(keccak256(abi.encode("step", i))));
        }
        assertGt(handler.seatCount(), 10, "seats");
        assertGt(handler.successes(IFC.vote.selector), 10, "votes");
        assertGt(handler.finalizedCount(), 2, "finalizations");
        assertGt(handler.timeouts(), 0, "timeouts");
        assertGt(handler.seals(), 10, "seals");
        assertEq(uint8(coordinator.getTask(2).status), uint8(TaskStatus.Completed), "task 2 completed");
        invariant_finalizesOnlyWithQuorum();
        invariant_oneVotePerMemberPerAttempt();
        invariant_modelChangesOnlyThroughFinalize();
        invariant_seatsAreValidDraws();
        invariant_submissionsHashMatchesLogs();
    }
}

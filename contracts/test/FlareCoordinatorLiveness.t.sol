// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IFlareCoordinator as IFC, Round, Task, TaskParams, TaskStatus} from "../src/IFlareCoordinator.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";

/// @notice Committee escalation (docs/protocol.md §4.12, §11 "Liveness"): an attempt that seats
///         fewer than `minCommittee` hands the next attempt of its round twice its expected
///         committee, so idle keys cannot dilute every attempt below `minCommittee`.
contract FlareCoordinatorLivenessTest is CoordinatorTestBase {
    uint256 internal constant HONEST = 5;
    uint256 internal constant IDLE = 45;
    /// @dev Where the idle keys' actor indices start (clear of the honest ones).
    uint256 internal constant FIRST_IDLE = 100;

    /// @dev The flood of issue 11 at its committee size: k = 5 among 50 keys draws each key with
    ///      odds 1/10. Five attempts reach k = 80 >= 50, where every key is seated.
    function _floodParams() internal pure returns (TaskParams memory) {
        return TaskParams({
            minClients: 3,
            expectedCommittee: 5,
            minCommittee: 3,
            quorumBps: 6_667,
            submissionWindow: 30,
            voteWindow: 20,
            maxRounds: 1,
            maxAttempts: 5
        });
    }

    /// @dev 45 idle keys beside 5 honest participants, who submit, claim every seat they win and
    ///      finalize as soon as `minCommittee` of them sit. Without escalation every attempt
    ///      seats each honest key with odds 1/10 and three seats come up about once in 120
    ///      attempts; with it the task completes within its 5 attempts, however the draws fall,
    ///      and `k` doubled exactly after each under-filled attempt.
    function test_idleKeyFlood_finalizesBeforeTheAttemptCap() public {
        TaskParams memory params = _floodParams();
        uint256 taskId = _createTask(params);
        for (uint256 i; i < HONEST; ++i) {
            _register(taskId, i);
        }
        for (uint256 i = FIRST_IDLE; i < FIRST_IDLE + IDLE; ++i) {
            _register(taskId, i); // idle: never submits, never claims
        }
        _start(taskId);

        uint256 expected = params.expectedCommittee;
        while (coordinator.getTask(taskId).status == TaskStatus.Running) {
            Round memory current = coordinator.getRound(taskId);
            assertEq(current.expectedCommittee, expected, "k is not the escalation of the last attempt");
            if (_playHonestAttempt(taskId)) break;
            expected *= 2;
        }
        Task memory task = coordinator.getTask(taskId);
        assertEq(uint8(task.status), uint8(TaskStatus.Completed), "the flood stalled the task");
        assertEq(abi.encode(task.model), abi.encode(_cid("honest aggregate")));
        assertLt(task.attempt, params.maxAttempts);
        assertGe(coordinator.getRound(taskId).committeeSize, params.minCommittee);
    }

    /// @dev `k` doubles after an attempt with fewer than `minCommittee` seats only: a full
    ///      attempt that times out or is rejected keeps its `k`, and the next round starts
    ///      again at the task's.
    function test_escalation_doublesOnlyAfterAnUnderfilledAttempt_andResetsOnANewRound() public {
        TaskParams memory params = _params(); // k = 100 for 4 keys: every key is seated
        uint256 taskId = _started(params, 4);
        _submit(taskId, 0);
        _claim(taskId, 0); // 1 seat of minCommittee 3
        _expire(taskId);
        vm.expectEmit(address(coordinator));
        emit IFC.RoundOpened(
            taskId, 1, 1, 2, _cid("initial model"), 4, 200, uint64(block.number + 30), uint64(block.number + 50)
        );
        coordinator.timeout(taskId);
        assertEq(coordinator.getRound(taskId).expectedCommittee, 200, "under-filled: doubled");

        _seatAll(taskId); // full, but nobody proposes
        _expire(taskId);
        coordinator.timeout(taskId);
        assertEq(coordinator.getRound(taskId).expectedCommittee, 200, "full timeout: kept");

        _seatAll(taskId);
        _toVoting(taskId);
        uint32 proposalId = _propose(taskId, 0, _cid("rejected"), _all(4));
        _vote(taskId, 1, proposalId, false);
        _vote(taskId, 2, proposalId, false); // 2 > 4 - 3: quorum out of reach, rejected
        Round memory afterRejection = coordinator.getRound(taskId);
        assertEq(afterRejection.attempt, 3);
        assertEq(afterRejection.expectedCommittee, 200, "full rejection: kept");

        _seatAll(taskId);
        _toVoting(taskId);
        proposalId = _propose(taskId, 0, _cid("round 1"), _all(4));
        for (uint256 i; i < 3; ++i) {
            _vote(taskId, i, proposalId, true);
        }
        Round memory nextRound = coordinator.getRound(taskId);
        assertEq(nextRound.round, 2);
        assertEq(nextRound.expectedCommittee, params.expectedCommittee, "a new round: the task's k");
    }

    /// @dev The escalated `k` is written by the call that opens the attempt, from the closing
    ///      attempt's seat count, before any block can seal its seed; whatever `prevrandao` the
    ///      sealing block has, the attempt keeps that `k`, and no later call moves it. So an
    ///      adversary choosing whether to withhold its seats chooses a committee size, not a
    ///      draw (`test_grinding_throughTimeout` grinds keys for the escalated `k` in the
    ///      timing-out transaction itself and wins no seat).
    function test_escalation_isFixedBeforeTheSeed() public {
        uint256 taskId = _started(_params(), 4);
        _expire(taskId);
        coordinator.timeout(taskId); // nobody sat: k = 200
        Round memory opened = coordinator.getRound(taskId);
        assertEq(opened.seed, bytes32(0), "sealed in the opening block");
        assertEq(opened.expectedCommittee, 200);

        bytes32 firstSeed;
        for (uint256 randao = 1; randao <= 3; ++randao) {
            uint256 before = vm.snapshotState();
            _sealWith(taskId, bytes32(randao));
            for (uint256 i; i < 4; ++i) {
                _submit(taskId, i);
                _claim(taskId, i);
            }
            Round memory drawn = coordinator.getRound(taskId);
            assertEq(drawn.expectedCommittee, opened.expectedCommittee, "k moved after the opening");
            if (randao == 1) firstSeed = drawn.seed;
            else assertTrue(drawn.seed != firstSeed, "the randomness did not reach the seed");
            vm.revertToState(before);
        }
    }

    /// @dev Doubling saturates at the largest uint32 instead of overflowing, and a saturated `k`
    ///      seats every key.
    /// forge-config: default.fuzz.runs = 64
    function testFuzz_escalation_saturates(uint32 k) public {
        k = uint32(bound(k, 3, type(uint32).max));
        TaskParams memory params = _params();
        params.expectedCommittee = k;
        params.maxAttempts = 4;
        uint256 taskId = _started(params, 3);
        uint256 expected = k;
        for (uint256 attempt = 1; attempt < params.maxAttempts; ++attempt) {
            _expire(taskId);
            coordinator.timeout(taskId);
            expected = expected * 2 > type(uint32).max ? type(uint32).max : expected * 2;
            assertEq(coordinator.getRound(taskId).expectedCommittee, expected);
        }
        _seal(taskId);
        for (uint256 i; i < 3; ++i) {
            _claim(taskId, i);
        }
        assertEq(coordinator.getRound(taskId).committeeSize, 3);
    }

    /// @dev Seal, submit and claim every winning seat of the honest participants, then finalize
    ///      if at least `minCommittee` sit; otherwise time the attempt out. Whether it finalized.
    function _playHonestAttempt(uint256 taskId) internal returns (bool finalized) {
        _seal(taskId);
        uint256[] memory seated = new uint256[](HONEST);
        uint256 seats;
        for (uint256 i; i < HONEST; ++i) {
            _submit(taskId, i);
            if (_wins(taskId, i)) {
                _claim(taskId, i);
                seated[seats++] = i;
            }
        }
        if (seats < coordinator.getTask(taskId).params.minCommittee) {
            _expire(taskId);
            coordinator.timeout(taskId);
            return false;
        }
        _toVoting(taskId);
        uint32 proposalId = _propose(taskId, seated[0], _cid("honest aggregate"), _all(HONEST));
        for (uint256 i; i < seats && coordinator.getTask(taskId).status == TaskStatus.Running; ++i) {
            _vote(taskId, seated[i], proposalId, true);
        }
        return true;
    }

    /// @dev Seal the current attempt and seat actors 0 to 3 (k = 100 or more seats them all).
    function _seatAll(uint256 taskId) internal {
        _seal(taskId);
        for (uint256 i; i < 4; ++i) {
            _submit(taskId, i);
            _claim(taskId, i);
        }
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Cid} from "../src/CID.sol";
import {FlareCoordinator} from "../src/FlareCoordinator.sol";
import {IFlareCoordinator as IFC, TaskParams} from "../src/IFlareCoordinator.sol";
import {VRF} from "../src/VRF.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";

/// @notice A participant whose receive hook re-enters `withdrawStake` (and `registerStaked`)
///         while its stake is being paid out, recording how each re-entry was refused.
contract ReentrantStaker {
    FlareCoordinator internal immutable coordinator;
    uint256 public received;
    bytes public withdrawRefusal;
    bool public reentered;
    uint256 internal withdrawing;

    constructor(FlareCoordinator coordinator_) {
        coordinator = coordinator_;
    }

    function register(uint256 taskId, bytes calldata key, bytes calldata pop) external payable {
        coordinator.registerStaked{value: msg.value}(taskId, key, pop);
    }

    function withdraw(uint256 taskId_) external {
        withdrawing = taskId_;
        coordinator.withdrawStake(taskId_);
    }

    receive() external payable {
        received += msg.value;
        if (reentered) return;
        reentered = true;
        try coordinator.withdrawStake(withdrawing) {}
        catch (bytes memory reason) {
            withdrawRefusal = reason;
        }
    }
}

/// @notice A staked grinder as a contract: in one transaction it bonds a large stake on a key
///         and times the current attempt out, so that the next attempt opens in the very block
///         of the bond.
contract StakedGrinder {
    function bondAndTimeout(FlareCoordinator coordinator, uint256 taskId, bytes calldata key, bytes calldata pop)
        external
        payable
    {
        coordinator.registerStaked{value: msg.value}(taskId, key, pop);
        coordinator.timeout(taskId);
    }

    function claimSeat(FlareCoordinator coordinator, uint256 taskId, bytes calldata key, bytes calldata proof)
        external
    {
        coordinator.claimSeat(taskId, key, proof);
    }
}

/// @notice A participant that refuses any payment.
contract RefusingStaker {
    function register(FlareCoordinator coordinator, uint256 taskId, bytes calldata key, bytes calldata pop)
        external
        payable
    {
        coordinator.registerStaked{value: msg.value}(taskId, key, pop);
    }

    function withdraw(FlareCoordinator coordinator, uint256 taskId) external {
        coordinator.withdrawStake(taskId);
    }
}

/// @notice Staked tasks (docs/protocol.md §2.6): deposits held by the contract, seats drawn in
///         proportion to stake (so a stake split over many keys buys no more seats), stake
///         bonded in an attempt's opening block left out of its divisor, and withdrawals only
///         once the task ended or the lock passed, exactly once, safe against re-entry.
contract FlareCoordinatorStakeTest is CoordinatorTestBase {
    uint256 internal constant MIN_STAKE = 1 ether;

    function _createStaked(TaskParams memory params, uint256 minStake) internal returns (uint256 taskId) {
        vm.prank(creator);
        taskId = coordinator.createStakedTask(
            _cid("initial model"), Cid(DAG_PB, keccak256("validation set")), params, minStake
        );
    }

    function _bond(uint256 taskId, uint256 index, uint256 amount) internal {
        bytes memory key = _key(index);
        bytes memory pop = _pop(taskId, index);
        vm.deal(_addr(index), amount);
        vm.prank(_addr(index));
        coordinator.registerStaked{value: amount}(taskId, key, pop);
    }

    /// @dev Actor `index` claims a seat, refused `NotSelected` unless `granted`.
    function _claimOrRefused(uint256 taskId, uint256 index, bool granted) internal {
        bytes memory key = _key(index);
        bytes memory proof = _proof(taskId, index);
        if (!granted) {
            vm.expectRevert(abi.encodeWithSelector(IFC.NotSelected.selector, taskId, keccak256(proof)));
        }
        vm.prank(_addr(index));
        coordinator.claimSeat(taskId, key, proof);
    }

    /// @dev Expected committee 3 of a task with `minClients` 3.
    function _stakedParams() internal pure returns (TaskParams memory params) {
        params = _params();
        params.expectedCommittee = 3;
        params.minCommittee = 2;
    }

    function test_createStakedTask_storesTheMinimumAndEmitsIt() public {
        vm.expectEmit(address(coordinator));
        emit IFC.MinStakeSet(1, MIN_STAKE);
        uint256 taskId = _createStaked(_params(), MIN_STAKE);
        assertEq(coordinator.minStake(taskId), MIN_STAKE);
        assertEq(coordinator.minStake(_createTask(_params())), 0);

        vm.prank(creator);
        vm.expectRevert(IFC.ZeroMinStake.selector);
        coordinator.createStakedTask(_cid("m"), _cid("v"), _params(), 0);
        vm.prank(creator);
        vm.expectRevert(abi.encodeWithSelector(IFC.StakeOverflow.selector, 3, uint256(1) << 128));
        coordinator.createStakedTask(_cid("m"), _cid("v"), _params(), uint256(1) << 128);
    }

    function test_registration_bondsTheDeposit_andRefusesOtherPaths() public {
        uint256 taskId = _createStaked(_params(), MIN_STAKE);
        bytes memory key = _key(0);
        bytes memory pop = _pop(taskId, 0);
        vm.deal(_addr(0), 10 ether);

        vm.prank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.StakeRequired.selector, taskId));
        coordinator.register(taskId, key, pop);
        vm.prank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.StakeTooLow.selector, taskId, MIN_STAKE - 1, MIN_STAKE));
        coordinator.registerStaked{value: MIN_STAKE - 1}(taskId, key, pop);
        vm.prank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.OpenAdmission.selector, taskId));
        coordinator.registerAdmitted(taskId, key, pop, new bytes32[](0));

        vm.expectEmit(address(coordinator));
        emit IFC.StakeBonded(taskId, _addr(0), 3 ether, uint64(block.number) + coordinator.STAKE_LOCK_BLOCKS());
        vm.prank(_addr(0));
        coordinator.registerStaked{value: 3 ether}(taskId, key, pop);
        assertEq(coordinator.stakeOf(taskId, _addr(0)), 3 ether);
        assertEq(address(coordinator).balance, 3 ether);
        assertEq(_addr(0).balance, 7 ether);

        // An open task takes no deposit, whether by `registerStaked` or any other call.
        uint256 open = _createTask(_params());
        bytes memory openKey = _key(1);
        bytes memory openPop = _pop(open, 1);
        vm.deal(_addr(1), 1 ether);
        vm.prank(_addr(1));
        vm.expectRevert(abi.encodeWithSelector(IFC.NotStaked.selector, open));
        coordinator.registerStaked{value: 1 ether}(open, openKey, openPop);
        bytes memory data = abi.encodeCall(IFC.register, (open, openKey, openPop));
        vm.prank(_addr(1));
        (bool ok,) = address(coordinator).call{value: 1 ether}(data);
        assertFalse(ok, "a non-payable call took a deposit");
        assertEq(address(coordinator).balance, 3 ether);
    }

    /// @dev The sortition divides by the stake of the snapshot and weighs each claim by the
    ///      claimer's stake: with k = 3 and stakes 1, 1, 1, 30 (ether), the whale's draw wins for
    ///      every output (3 · 30 >= 33) while the others win only below k/33 of the range (k is
    ///      the attempt's: an under-filled attempt doubles it for the next).
    function test_seats_areDrawnByStake() public {
        uint256 taskId = _createStaked(_stakedParams(), MIN_STAKE);
        for (uint256 i; i < 3; ++i) {
            _bond(taskId, i, 1 ether);
        }
        _bond(taskId, 3, 30 ether);
        _start(taskId);
        assertEq(coordinator.stakeSnapshot(taskId), 33 ether);
        bool smallLost;
        for (uint256 attempt; attempt < 4; ++attempt) {
            _seal(taskId);
            _claim(taskId, 3);
            for (uint256 i; i < 3; ++i) {
                uint256 k = coordinator.getRound(taskId).expectedCommittee;
                bool granted = VRF.seatGranted(keccak256(_proof(taskId, i)), k * 1 ether, 33 ether);
                _claimOrRefused(taskId, i, granted);
                smallLost = smallLost || !granted;
            }
            _expire(taskId);
            coordinator.timeout(taskId);
        }
        assertTrue(smallLost, "a 1-ether draw never lost: the divisor is not the stake");
    }

    /// @dev A Sybil flood: the attacker splits its stake over 50 keys. Each key's odds are
    ///      `k · stake_i / T`, so the split's expected seats equal those of one key holding the
    ///      whole stake (while `k · stake <= T`, where one key's odds are not capped at 1); the
    ///      contract grants exactly the claims that rule grants.
    /// forge-config: default.fuzz.runs = 8
    function testFuzz_stakeSplitOverFiftyKeys_buysNoSeats(uint256 entropy, uint64 honestEther) public {
        uint256 honest = bound(honestEther, 25, 1_000) * 1 ether;
        uint256 sybils = 50;
        uint256 taskId = _createStaked(_stakedParams(), 0.01 ether);
        for (uint256 i; i < 5; ++i) {
            _bond(taskId, i, honest);
        }
        uint256 attackerStake;
        uint256[] memory shares = new uint256[](sybils);
        for (uint256 i; i < sybils; ++i) {
            shares[i] = 0.01 ether + uint256(keccak256(abi.encode(entropy, i))) % 1 ether;
            attackerStake += shares[i];
            _bond(taskId, 100 + i, shares[i]);
        }
        _start(taskId);
        uint256 total = coordinator.stakeSnapshot(taskId);
        assertEq(total, 5 * honest + attackerStake);
        assertLe(3 * attackerStake, total, "one key of the whole stake would be capped");

        // Expected seats in units of 1e-18 seat: the sum over the split, and one key.
        uint256 splitExpectation;
        for (uint256 i; i < sybils; ++i) {
            splitExpectation += 3 * shares[i] * 1e18 / total;
        }
        uint256 wholeExpectation = 3 * attackerStake * 1e18 / total;
        assertApproxEqAbs(splitExpectation, wholeExpectation, sybils, "splitting changed the odds");

        _sealWith(taskId, bytes32(entropy));
        for (uint256 i; i < sybils; ++i) {
            bool granted = VRF.seatGranted(keccak256(_proof(taskId, 100 + i)), 3 * shares[i], total);
            _claimOrRefused(taskId, 100 + i, granted);
        }
    }

    /// @dev Staked grinding: stake bonded in the block that opens an attempt (when its
    ///      builder may know the seed's randomness) is neither in the divisor nor allowed a
    ///      seat, and a stake withdrawn in that block still counts in the divisor.
    function test_grinding_stakeBondedInTheOpeningBlockDoesNotCount() public {
        uint256 taskId = _createStaked(_stakedParams(), MIN_STAKE);
        for (uint256 i; i < 3; ++i) {
            _bond(taskId, i, 2 ether);
        }
        vm.roll(block.number + 1);
        _bond(taskId, 50, 1_000 ether);
        vm.prank(creator);
        coordinator.startTask(taskId);
        assertEq(coordinator.stakeSnapshot(taskId), 6 ether);
        _seal(taskId);
        bytes memory key = _key(50);
        bytes memory proof = _proof(taskId, 50);
        vm.prank(_addr(50));
        vm.expectRevert(abi.encodeWithSelector(IFC.RegisteredAfterSnapshot.selector, taskId, _addr(50)));
        coordinator.claimSeat(taskId, key, proof);

        // Past the lock, actor 0 withdraws in the block whose timeout opens the next attempt:
        // the late bond now counts, the same-block withdrawal not yet.
        vm.roll(block.number + coordinator.STAKE_LOCK_BLOCKS());
        vm.prank(_addr(0));
        coordinator.withdrawStake(taskId);
        coordinator.timeout(taskId);
        assertEq(coordinator.stakeSnapshot(taskId), 1_006 ether, "a same-block change moved the divisor");
        _seal(taskId);
        // The withdrawn key weighs nothing: no output wins it a seat.
        _claimOrRefused(taskId, 0, false);
        // The next attempt's divisor has both the late bond and the withdrawal.
        _expire(taskId);
        coordinator.timeout(taskId);
        assertEq(coordinator.stakeSnapshot(taskId), 1_004 ether);
    }

    /// @dev Through `timeout`, from a contract, in one transaction: the stake bonded in the
    ///      block that opens the attempt is not in its divisor and its key draws no seat.
    function test_grinding_throughTimeoutFromAContract() public {
        uint256 taskId = _createStaked(_stakedParams(), MIN_STAKE);
        for (uint256 i; i < 3; ++i) {
            _bond(taskId, i, 2 ether);
        }
        _start(taskId);
        _expire(taskId);
        StakedGrinder grinder = new StakedGrinder();
        bytes memory key = _key(60);
        bytes memory pop = _popFor(taskId, 60, address(grinder));
        vm.deal(address(this), 1_000 ether);
        grinder.bondAndTimeout{value: 1_000 ether}(coordinator, taskId, key, pop);
        assertEq(coordinator.getRound(taskId).attempt, 1);
        assertEq(coordinator.stakeSnapshot(taskId), 6 ether, "the same-block bond is in the divisor");
        _seal(taskId);
        bytes memory proof = _proof(taskId, 60);
        vm.expectRevert(abi.encodeWithSelector(IFC.RegisteredAfterSnapshot.selector, taskId, address(grinder)));
        grinder.claimSeat(coordinator, taskId, key, proof);
    }

    function test_withdraw_refusedWhileLocked_thenOnceAfterTheEnd() public {
        uint256 taskId = _createStaked(_params(), MIN_STAKE);
        for (uint256 i; i < 3; ++i) {
            _bond(taskId, i, 2 ether);
        }
        uint64 unlock = uint64(block.number) + coordinator.STAKE_LOCK_BLOCKS();
        _start(taskId);
        vm.prank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.StakeLocked.selector, taskId, unlock));
        coordinator.withdrawStake(taskId);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IFC.NothingToWithdraw.selector, taskId, stranger));
        coordinator.withdrawStake(taskId);
        uint256 open = _createTask(_params());
        vm.prank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.NotStaked.selector, open));
        coordinator.withdrawStake(open);

        vm.prank(creator);
        coordinator.cancelTask(taskId);
        vm.expectEmit(address(coordinator));
        emit IFC.StakeWithdrawn(taskId, _addr(0), 2 ether);
        vm.prank(_addr(0));
        coordinator.withdrawStake(taskId);
        assertEq(_addr(0).balance, 2 ether);
        assertEq(coordinator.stakeOf(taskId, _addr(0)), 0);
        assertEq(address(coordinator).balance, 4 ether);
        vm.prank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.NothingToWithdraw.selector, taskId, _addr(0)));
        coordinator.withdrawStake(taskId);
    }

    function test_withdraw_afterTheLockWhileTheTaskRuns() public {
        uint256 taskId = _createStaked(_params(), MIN_STAKE);
        for (uint256 i; i < 3; ++i) {
            _bond(taskId, i, 2 ether);
        }
        uint64 unlock = uint64(block.number) + coordinator.STAKE_LOCK_BLOCKS();
        _start(taskId);
        vm.roll(unlock - 1);
        vm.prank(_addr(1));
        vm.expectRevert(abi.encodeWithSelector(IFC.StakeLocked.selector, taskId, unlock));
        coordinator.withdrawStake(taskId);
        vm.roll(unlock);
        vm.prank(_addr(1));
        coordinator.withdrawStake(taskId);
        assertEq(_addr(1).balance, 2 ether);
    }

    /// @dev The stake is zeroed before the transfer: a receiver that re-enters is refused
    ///      `NothingToWithdraw` and is paid once.
    function test_withdraw_reentrancyIsRefused() public {
        uint256 taskId = _createStaked(_params(), MIN_STAKE);
        ReentrantStaker attacker = new ReentrantStaker(coordinator);
        bytes memory pop = _popFor(taskId, 7, address(attacker));
        vm.deal(address(this), 5 ether);
        attacker.register{value: 5 ether}(taskId, _key(7), pop);
        _bond(taskId, 0, 2 ether);
        vm.prank(creator);
        coordinator.cancelTask(taskId);

        attacker.withdraw(taskId);
        assertEq(attacker.received(), 5 ether, "paid more or less than once");
        assertEq(address(attacker).balance, 5 ether);
        assertEq(
            attacker.withdrawRefusal(),
            abi.encodeWithSelector(IFC.NothingToWithdraw.selector, taskId, address(attacker))
        );
        assertEq(address(coordinator).balance, 2 ether);
    }

    function test_withdraw_toAReceiverThatRefusesReverts_andKeepsTheStake() public {
        uint256 taskId = _createStaked(_params(), MIN_STAKE);
        RefusingStaker refusing = new RefusingStaker();
        bytes memory pop = _popFor(taskId, 8, address(refusing));
        vm.deal(address(this), 1 ether);
        refusing.register{value: 1 ether}(coordinator, taskId, _key(8), pop);
        vm.prank(creator);
        coordinator.cancelTask(taskId);
        vm.expectRevert(abi.encodeWithSelector(IFC.WithdrawalFailed.selector, taskId, address(refusing)));
        refusing.withdraw(coordinator, taskId);
        assertEq(coordinator.stakeOf(taskId, address(refusing)), 1 ether);
        assertEq(address(coordinator).balance, 1 ether);
    }

    function test_stakeSnapshot_ofATaskNotStarted_isRefused() public {
        uint256 taskId = _createStaked(_params(), MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(IFC.TaskNotStarted.selector, taskId));
        coordinator.stakeSnapshot(taskId);
    }
}

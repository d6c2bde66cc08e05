// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {console} from "forge-std/console.sol";
import {Vm} from "forge-std/Vm.sol";
import {Cid} from "../src/CID.sol";
import {IFlareCoordinator, Round, TaskParams} from "../src/IFlareCoordinator.sol";
import {VRF} from "../src/VRF.sol";
import {BlsSigner} from "./utils/BlsSigner.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";
import {Fleet} from "./FlareCoordinatorAdmission.t.sol";

/// @notice Gas of coordinator calls as a transaction would pay it (docs/gas.md). Each measured
///         call starts with the contract's account and storage cold (`vm.cool`), as at the start
///         of a transaction; execution gas is the callee's gas (`vm.lastCallGas`), and
///         transaction gas adds the 21,000 intrinsic gas and the calldata (Prague: 4 per zero
///         byte, 16 per non-zero byte, or the EIP-7623 floor of 10 per token when that is
///         higher). The budgets of docs/protocol.md §10 fail the test on a regression. Run with
///         `-vv` for the table.
abstract contract RoundGasBase is CoordinatorTestBase {
    /// @dev PAIRING_CHECK with two pairs: 37,700 + 2 × 32,600.
    uint256 internal constant PAIRING_FLOOR = 102_900;
    uint256 internal constant SUBMIT_BUDGET = 70_000;
    uint256 internal constant VOTE_BUDGET = 60_000;
    /// @dev Execution budget of a seat claim: 1.3 × the pairing floor for the cryptography, plus
    ///      what the rules around it cost (cold reads, two stores, the 128-byte-proof log).
    uint256 internal constant CLAIM_BUDGET = PAIRING_FLOOR * 13 / 10 + 25_000;

    uint256 internal taskId;
    /// @dev The actors that won a seat in the current attempt (the first `_committee()` of them).
    uint256[] internal members;

    /// @dev Registered clients, all of which submit every round.
    function _clients() internal pure virtual returns (uint32);

    /// @dev The expected committee `k`; the tests seat exactly this many members.
    function _committee() internal pure virtual returns (uint32);

    function setUp() public virtual override {
        super.setUp();
        TaskParams memory params = TaskParams({
            minClients: _clients(),
            expectedCommittee: _committee(),
            minCommittee: 3,
            quorumBps: 6_667,
            submissionWindow: 2 * _clients() + 10,
            voteWindow: _clients() + 10,
            maxRounds: 3,
            maxAttempts: 20
        });
        taskId = _createTask(params);
        for (uint256 i; i < _clients(); ++i) {
            _register(taskId, i);
        }
        _start(taskId);
    }

    /// @dev Approvals that finalize with `_committee()` seats: ⌈0.6667 × k⌉.
    function _threshold() internal pure returns (uint256) {
        return (uint256(6_667) * _committee() + 9_999) / 10_000;
    }

    /// @dev Play the current round to its quorum vote; returns its transaction gas if `measure`.
    function _playRound(bool measure) internal returns (uint256 total) {
        Round memory current = coordinator.getRound(taskId);
        total += _submitAll(measure);
        total += _claimMembers(measure);
        _toVoting(taskId);
        Cid memory model = _cid(string.concat("round ", vm.toString(current.round)));
        bytes memory data = abi.encodeCall(IFlareCoordinator.propose, (taskId, model, _all(_clients())));
        uint32 proposalId = coordinator.getTask(taskId).proposalCount + 1;
        total += _send("propose", _addr(members[0]), data, measure);
        uint256 threshold = _threshold();
        for (uint256 j; j + 1 < threshold; ++j) {
            data = abi.encodeCall(IFlareCoordinator.vote, (taskId, proposalId, true));
            uint256 used = _send("vote", _addr(members[j]), data, measure);
            if (measure) assertLe(used, VOTE_BUDGET, "vote");
            total += used;
        }
        data = abi.encodeCall(IFlareCoordinator.vote, (taskId, proposalId, true));
        total += _send("vote reaching quorum (finalize, open next round)", _addr(members[threshold - 1]), data, measure);
    }

    /// @dev Every client submits, in the block after the attempt opened; the first submission
    ///      seals the seed, from a prevrandao picked so that at least `_committee()` actors win.
    function _submitAll(bool measure) internal returns (uint256 total) {
        _pickRandao();
        for (uint64 i; i < _clients(); ++i) {
            bytes memory data = abi.encodeCall(
                IFlareCoordinator.submit, (taskId, _cid(string.concat("update ", vm.toString(i))), 1000 + i)
            );
            string memory label = i == 0 ? "submit sealing the seed" : "submit";
            uint256 used = _send(label, _addr(i), data, measure);
            if (measure) assertLe(used, SUBMIT_BUDGET, label);
            total += used;
        }
        _findMembers();
    }

    function _claimMembers(bool measure) internal returns (uint256 total) {
        for (uint256 j; j < members.length; ++j) {
            uint256 index = members[j];
            bytes memory data =
                abi.encodeCall(IFlareCoordinator.claimSeat, (taskId, _key(index), _proof(taskId, index)));
            if (!measure) {
                vm.prank(_addr(index));
                (bool ok,) = address(coordinator).call(data);
                assertTrue(ok, "claimSeat");
                continue;
            }
            (uint256 execution, uint256 used) = _measureBoth("claimSeat", _addr(index), data);
            assertLe(execution, CLAIM_BUDGET, "claimSeat");
            total += used;
        }
    }

    /// @dev Move to the block after the current attempt opened and give it a prevrandao whose
    ///      seed seats at least `_committee()` of the actors.
    function _pickRandao() internal {
        Round memory current = coordinator.getRound(taskId);
        vm.roll(current.openedAt + 1);
        bytes32 model = coordinator.getTask(taskId).model.digest;
        for (uint256 randao = 1;; ++randao) {
            bytes32 seed = keccak256(
                abi.encode(
                    block.chainid,
                    address(coordinator),
                    taskId,
                    uint256(current.round),
                    uint256(current.attempt),
                    model,
                    randao
                )
            );
            bytes memory input =
                VRF.input(block.chainid, address(coordinator), taskId, current.round, current.attempt, seed);
            uint256 seats;
            for (uint256 i; i < _clients(); ++i) {
                bytes memory proof = BlsSigner.sign(_secret(i), input, VRF.DST);
                if (VRF.seatGranted(keccak256(proof), _committee(), _clients())) ++seats;
            }
            if (seats >= _committee()) {
                vm.prevrandao(bytes32(randao));
                return;
            }
        }
    }

    /// @dev The first `_committee()` winners of the current attempt.
    function _findMembers() internal {
        delete members;
        for (uint256 i; i < _clients() && members.length < _committee(); ++i) {
            if (_wins(taskId, i)) members.push(i);
        }
        assertEq(members.length, _committee());
    }

    function _send(string memory label, address sender, bytes memory data, bool measure)
        internal
        returns (uint256 used)
    {
        if (measure) return _measure(label, sender, data);
        vm.prank(sender);
        (bool ok,) = address(coordinator).call(data);
        assertTrue(ok, label);
    }

    function _measure(string memory label, address sender, bytes memory data) internal returns (uint256 used) {
        (, used) = _measureBoth(label, sender, data);
    }

    /// @dev Execution gas and transaction gas of `data` sent by `sender` as its own transaction.
    function _measureBoth(string memory label, address sender, bytes memory data)
        internal
        returns (uint256 execution, uint256 used)
    {
        return _measurePaying(label, sender, data, 0);
    }

    /// @dev `_measureBoth` of a call that carries `value` wei.
    function _measurePaying(string memory label, address sender, bytes memory data, uint256 value)
        internal
        returns (uint256 execution, uint256 used)
    {
        if (value != 0) vm.deal(sender, sender.balance + value);
        vm.cool(address(coordinator));
        vm.prank(sender);
        (bool ok,) = address(coordinator).call{value: value}(data);
        Vm.Gas memory gas = vm.lastCallGas();
        assertTrue(ok, label);
        execution = gas.gasTotalUsed;
        uint256 tokens;
        for (uint256 i; i < data.length; ++i) {
            tokens += data[i] == 0 ? 1 : 4;
        }
        uint256 standard = 21_000 + 4 * tokens + execution;
        uint256 floor = 21_000 + 10 * tokens;
        used = standard > floor ? standard : floor;
        console.log(string.concat(label, ": execution ", vm.toString(execution), ", transaction ", vm.toString(used)));
    }
}

/// @notice Every call, and whole rounds, at the default committee: 10 clients, expected
///         committee 5, minimum 3, quorum 66.67 % (threshold 4).
contract FlareCoordinatorGasTest is RoundGasBase {
    function _clients() internal pure override returns (uint32) {
        return 10;
    }

    function _committee() internal pure override returns (uint32) {
        return 5;
    }

    /// @dev A registration after the first (the first also turns the participant count non-zero).
    function test_gas_register() public {
        uint256 index = _clients();
        bytes memory data = abi.encodeCall(IFlareCoordinator.register, (taskId, _key(index), _pop(taskId, index)));
        _measure("register", _addr(index), data);
    }

    function test_gas_createTask() public {
        bytes memory data = abi.encodeCall(
            IFlareCoordinator.createTask, (_cid("model"), Cid(DAG_PB, keccak256("validation")), _params())
        );
        _measure("createTask", creator, data);
    }

    /// @dev Opening round 1 writes the attempt's slots for the first time.
    function test_gas_startTask() public {
        uint256 other = _createTask(_params());
        for (uint256 i; i < 3; ++i) {
            _register(other, i);
        }
        vm.roll(block.number + 1);
        _measure("startTask", creator, abi.encodeCall(IFlareCoordinator.startTask, (other)));
    }

    /// @dev Sealing by its own transaction (anyone may; the first submission does it otherwise).
    function test_gas_sealSeed() public {
        vm.roll(block.number + 1);
        _measure("sealSeed", stranger, abi.encodeCall(IFlareCoordinator.sealSeed, (taskId)));
    }

    /// @dev Round 1: the first finalization of a task also turns `historyHash` from zero to
    ///      non-zero (a 20,000-gas store instead of 2,900).
    function test_gas_round1() public {
        uint256 total = _playRound(true);
        assertEq(coordinator.getTask(taskId).round, 2);
        console.log("round 1 (10 clients, committee of 5), transaction gas:", total);
    }

    /// @dev Round 2, the steady state: every store of the quorum vote hits a non-zero slot.
    function test_gas_round2() public {
        _playRound(false);
        uint256 total = _playRound(true);
        assertEq(coordinator.getTask(taskId).round, 3);
        console.log("round 2 (10 clients, committee of 5), transaction gas:", total);
    }

    /// @dev The quorum vote of the last round finalizes and completes the task.
    function test_gas_voteCompletes() public {
        _playRound(false);
        _playRound(false);
        _submitAll(false);
        _claimMembers(false);
        _toVoting(taskId);
        uint32 proposalId = _propose(taskId, members[0], _cid("round 3"), _all(_clients()));
        for (uint256 j; j + 1 < _threshold(); ++j) {
            _vote(taskId, members[j], proposalId, true);
        }
        _measure(
            "vote reaching quorum (finalize, complete task)",
            _addr(members[_threshold() - 1]),
            abi.encodeCall(IFlareCoordinator.vote, (taskId, proposalId, true))
        );
        assertEq(uint8(coordinator.getTask(taskId).status), 2);
    }

    function test_gas_voteReject() public {
        _submitAll(false);
        _claimMembers(false);
        _toVoting(taskId);
        _propose(taskId, members[0], _cid("round 1"), _all(_clients()));
        uint256 used = _measure(
            "vote (reject)", _addr(members[0]), abi.encodeCall(IFlareCoordinator.vote, (taskId, uint32(1), false))
        );
        assertLe(used, VOTE_BUDGET, "vote");
    }

    /// @dev With 5 seats and a threshold of 4, the second rejection leaves quorum out of reach:
    ///      it closes the attempt and opens the next one.
    function test_gas_voteRejectCloses() public {
        _submitAll(false);
        _claimMembers(false);
        _toVoting(taskId);
        _propose(taskId, members[0], _cid("round 1"), _all(_clients()));
        _vote(taskId, members[0], 1, false);
        _measure(
            "vote (reject, closes the attempt, opens the next)",
            _addr(members[1]),
            abi.encodeCall(IFlareCoordinator.vote, (taskId, uint32(1), false))
        );
        assertEq(coordinator.getRound(taskId).attempt, 1);
    }

    function test_gas_timeout() public {
        _submitAll(false);
        _expire(taskId);
        _measure("timeout", stranger, abi.encodeCall(IFlareCoordinator.timeout, (taskId)));
    }

    function test_gas_cancelTask() public {
        _measure("cancelTask", creator, abi.encodeCall(IFlareCoordinator.cancelTask, (taskId)));
    }
}

/// @notice A whole round with 64 seats: 64 clients, expected committee 64 (every client wins a
///         seat), quorum 66.67 % (threshold 43).
contract FlareCoordinatorWideGasTest is RoundGasBase {
    function _clients() internal pure override returns (uint32) {
        return 64;
    }

    function _committee() internal pure override returns (uint32) {
        return 64;
    }

    /// @dev Round 2, the steady state.
    function test_gas_round2_64Seats() public {
        _playRound(false);
        uint256 total = _playRound(true);
        assertEq(coordinator.getTask(taskId).round, 3);
        console.log("round 2 (64 clients, committee of 64), transaction gas:", total);
    }
}

/// @notice A whole round at the default committee of `flare task create` and `flare simulate`:
///         expected committee 40 (docs/protocol.md §11, the safety bound), here with 40 clients
///         so that every one wins a seat, quorum 66.67 % (threshold 27).
contract FlareCoordinatorDefaultCommitteeGasTest is RoundGasBase {
    function _clients() internal pure override returns (uint32) {
        return 40;
    }

    function _committee() internal pure override returns (uint32) {
        return 40;
    }

    /// @dev Round 2, the steady state.
    function test_gas_round2_40Seats() public {
        _playRound(false);
        uint256 total = _playRound(true);
        assertEq(coordinator.getTask(taskId).round, 3);
        console.log("round 2 (40 clients, committee of 40), transaction gas:", total);
    }
}

/// @notice What a permissioned task adds: creating it with a root, replacing the root, and a
///         registration that proves admission in a fleet of 1,024 devices (a 10-word proof).
contract FlareCoordinatorAdmissionGasTest is RoundGasBase {
    uint256 internal constant FLEET_SIZE = 1024;

    function _clients() internal pure override returns (uint32) {
        return 3;
    }

    function _committee() internal pure override returns (uint32) {
        return 3;
    }

    function _fleet() internal pure returns (address[] memory accounts) {
        accounts = new address[](FLEET_SIZE);
        for (uint256 i; i < FLEET_SIZE; ++i) {
            accounts[i] = _addr(i);
        }
    }

    function test_gas_admission() public {
        address[] memory fleet = _fleet();
        bytes32 root = Fleet.root(fleet);
        bytes memory data = abi.encodeCall(
            IFlareCoordinator.createPermissionedTask,
            (_cid("model"), Cid(DAG_PB, keccak256("validation")), _params(), root)
        );
        _measure("createPermissionedTask", creator, data);
        uint256 permissioned = coordinator.taskCount();
        _measure(
            "setAdmissionRoot",
            creator,
            abi.encodeCall(IFlareCoordinator.setAdmissionRoot, (permissioned, keccak256("next")))
        );
        vm.prank(creator);
        coordinator.setAdmissionRoot(permissioned, root);
        // A registration after the first, as `test_gas_register` measures `register`.
        _registerAdmitted(permissioned, fleet, 0, false);
        _registerAdmitted(permissioned, fleet, 1, true);
    }

    function _registerAdmitted(uint256 task, address[] memory fleet, uint256 index, bool measure) internal {
        bytes32[] memory proof = Fleet.proof(fleet, index);
        assertEq(proof.length, 10);
        bytes memory data =
            abi.encodeCall(IFlareCoordinator.registerAdmitted, (task, _key(index), _pop(task, index), proof));
        _send("registerAdmitted (fleet of 1,024)", _addr(index), data, measure);
    }
}

/// @notice What a staked task adds: creating it, a registration that bonds a stake (after the
///         first), a stake-weighted seat claim, and a withdrawal once the task is cancelled.
contract FlareCoordinatorStakeGasTest is RoundGasBase {
    uint256 internal constant MIN_STAKE = 1 ether;

    function _clients() internal pure override returns (uint32) {
        return 3;
    }

    function _committee() internal pure override returns (uint32) {
        return 3;
    }

    function _registerStaked(uint256 task, uint256 index, bool measure) internal {
        bytes memory data = abi.encodeCall(IFlareCoordinator.registerStaked, (task, _key(index), _pop(task, index)));
        string memory label = "registerStaked (bonds 1 ether)";
        if (measure) {
            _measurePaying(label, _addr(index), data, MIN_STAKE);
            return;
        }
        vm.deal(_addr(index), MIN_STAKE);
        vm.prank(_addr(index));
        (bool ok,) = address(coordinator).call{value: MIN_STAKE}(data);
        assertTrue(ok, label);
    }

    function test_gas_stake() public {
        bytes memory data = abi.encodeCall(
            IFlareCoordinator.createStakedTask,
            (_cid("model"), Cid(DAG_PB, keccak256("validation")), _params(), MIN_STAKE)
        );
        _measure("createStakedTask", creator, data);
        uint256 staked = coordinator.taskCount();
        _registerStaked(staked, 0, false);
        _registerStaked(staked, 1, true);
        _registerStaked(staked, 2, false);
        _start(staked);
        _seal(staked);
        // k = 100 against three equal stakes: every stake-weighted draw wins.
        _measure(
            "claimSeat (staked task)",
            _addr(0),
            abi.encodeCall(IFlareCoordinator.claimSeat, (staked, _key(0), _proof(staked, 0)))
        );
        vm.prank(creator);
        coordinator.cancelTask(staked);
        _measure("withdrawStake", _addr(1), abi.encodeCall(IFlareCoordinator.withdrawStake, (staked)));
        assertEq(_addr(1).balance, MIN_STAKE);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {console} from "forge-std/console.sol";
import {Vm} from "forge-std/Vm.sol";
import {Cid} from "../src/CID.sol";
import {IFlareCoordinator, Round, TaskParams} from "../src/IFlareCoordinator.sol";
import {VRF} from "../src/VRF.sol";
import {BlsSigner} from "./utils/BlsSigner.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";

/// @notice Gas of every coordinator call as a transaction would pay it, and of a whole round with
///         10 clients and a committee of 5 (docs/gas.md). Each measured call starts with the
///         contract's account and storage cold (`vm.cool`), as at the start of a transaction;
///         execution gas is the callee's gas (`vm.lastCallGas`), and transaction gas adds the
///         21,000 intrinsic gas and the calldata (Prague: 4 per zero byte, 16 per non-zero byte,
///         or the EIP-7623 floor of 10 per token when that is higher). The budgets of
///         docs/protocol.md §10 fail the test on a regression. Run with `-vv` for the table.
contract FlareCoordinatorGasTest is CoordinatorTestBase {
    uint32 internal constant CLIENTS = 10;
    uint32 internal constant COMMITTEE = 5;
    /// @dev PAIRING_CHECK with two pairs: 37,700 + 2 × 32,600.
    uint256 internal constant PAIRING_FLOOR = 102_900;
    uint256 internal constant SUBMIT_BUDGET = 70_000;
    uint256 internal constant VOTE_BUDGET = 60_000;
    /// @dev Execution budget of a seat claim: 1.3 × the pairing floor for the cryptography, plus
    ///      what the rules around it cost (cold reads, two stores, the 128-byte-proof log).
    uint256 internal constant CLAIM_BUDGET = PAIRING_FLOOR * 13 / 10 + 25_000;

    uint256 internal taskId;
    /// @dev The actors that won a seat in the current attempt (the first COMMITTEE of them).
    uint256[] internal members;

    function setUp() public override {
        super.setUp();
        TaskParams memory params = TaskParams({
            minClients: CLIENTS,
            expectedCommittee: COMMITTEE,
            minCommittee: 3,
            quorumBps: 6_000,
            submissionWindow: 30,
            voteWindow: 20,
            maxRounds: 3
        });
        taskId = _createTask(params);
        for (uint256 i; i < CLIENTS; ++i) {
            _register(taskId, i);
        }
        _pickRandao(1, keccak256("initial model"));
        coordinator.startTask(taskId);
        _findMembers();
    }

    /// @dev A registration after the first (the first also turns the participant count non-zero).
    function test_gas_register() public {
        uint256 index = CLIENTS;
        bytes memory data = abi.encodeCall(IFlareCoordinator.register, (taskId, _key(index), _pop(index)));
        _measure("register", _addr(index), data);
    }

    function test_gas_createTask() public {
        bytes memory data = abi.encodeCall(
            IFlareCoordinator.createTask, (_cid("model"), Cid(DAG_PB, keccak256("validation")), _params())
        );
        _measure("createTask", creator, data);
    }

    /// @dev Opening round 1 writes the attempt's four slots for the first time.
    function test_gas_startTask() public {
        uint256 other = _createTask(_params());
        for (uint256 i; i < 3; ++i) {
            _register(other, i);
        }
        _measure("startTask", stranger, abi.encodeCall(IFlareCoordinator.startTask, (other)));
    }

    /// @dev Round 1 with 10 clients and a committee of 5: 10 submissions, 5 seats, 1 proposal,
    ///      3 votes (the third reaches the quorum of ceil(60 % × 5) = 3, finalizes round 1 and
    ///      opens round 2). The first finalization of a task also turns `historyHash` from zero
    ///      to non-zero (a 20,000-gas store instead of 2,900).
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
        uint32 proposalId = _propose(taskId, members[0], _cid("round 3"), _all(CLIENTS));
        _vote(taskId, members[0], proposalId, true);
        _vote(taskId, members[1], proposalId, true);
        _measure(
            "vote reaching quorum (finalize, complete task)",
            _addr(members[2]),
            abi.encodeCall(IFlareCoordinator.vote, (taskId, proposalId, true))
        );
        assertEq(uint8(coordinator.getTask(taskId).status), 2);
    }

    function test_gas_voteReject() public {
        _submitAll(false);
        _claimMembers(false);
        _toVoting(taskId);
        _propose(taskId, members[0], _cid("round 1"), _all(CLIENTS));
        uint256 used = _measure(
            "vote (reject)", _addr(members[0]), abi.encodeCall(IFlareCoordinator.vote, (taskId, uint32(1), false))
        );
        assertLe(used, VOTE_BUDGET, "vote");
    }

    function test_gas_timeout() public {
        _expire(taskId);
        _measure("timeout", stranger, abi.encodeCall(IFlareCoordinator.timeout, (taskId)));
    }

    // -- helpers --------------------------------------------------------------------------------

    /// @dev Play the current round to its quorum vote; returns its transaction gas if `measure`.
    function _playRound(bool measure) internal returns (uint256 total) {
        Round memory current = coordinator.getRound(taskId);
        total += _submitAll(measure);
        total += _claimMembers(measure);
        _toVoting(taskId);
        Cid memory model = _cid(string.concat("round ", vm.toString(current.round)));
        bytes memory data = abi.encodeCall(IFlareCoordinator.propose, (taskId, model, _all(CLIENTS)));
        uint32 proposalId = coordinator.getTask(taskId).proposalCount + 1;
        total += _send("propose (10 submissions)", _addr(members[0]), data, measure);
        for (uint256 j; j < 2; ++j) {
            data = abi.encodeCall(IFlareCoordinator.vote, (taskId, proposalId, true));
            uint256 used = _send("vote", _addr(members[j]), data, measure);
            if (measure) assertLe(used, VOTE_BUDGET, "vote");
            total += used;
        }
        _pickRandao(current.round + 1, model.digest);
        data = abi.encodeCall(IFlareCoordinator.vote, (taskId, proposalId, true));
        total += _send("vote reaching quorum (finalize, open next round)", _addr(members[2]), data, measure);
        _findMembers();
    }

    function _submitAll(bool measure) internal returns (uint256 total) {
        for (uint64 i; i < CLIENTS; ++i) {
            bytes memory data = abi.encodeCall(
                IFlareCoordinator.submit, (taskId, _cid(string.concat("update ", vm.toString(i))), 1000 + i)
            );
            uint256 used = _send("submit", _addr(i), data, measure);
            if (measure) assertLe(used, SUBMIT_BUDGET, "submit");
            total += used;
        }
    }

    function _claimMembers(bool measure) internal returns (uint256 total) {
        for (uint256 j; j < COMMITTEE; ++j) {
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

    /// @dev Set the next block's prevrandao so that the attempt (round, 0) opened from `model`
    ///      seats at least COMMITTEE of the actors.
    function _pickRandao(uint256 round, bytes32 model) internal {
        for (uint256 randao = 1;; ++randao) {
            bytes32 seed = keccak256(abi.encode(block.chainid, address(coordinator), taskId, round, 0, model, randao));
            bytes memory input = VRF.input(block.chainid, address(coordinator), taskId, round, 0, seed);
            uint256 seats;
            for (uint256 i; i < CLIENTS; ++i) {
                bytes memory proof = BlsSigner.sign(_secret(i), input, VRF.DST);
                if (VRF.seatGranted(keccak256(proof), COMMITTEE, CLIENTS)) ++seats;
            }
            if (seats >= COMMITTEE) {
                vm.prevrandao(bytes32(randao));
                return;
            }
        }
    }

    /// @dev The first COMMITTEE winners of the current attempt.
    function _findMembers() internal {
        delete members;
        for (uint256 i; i < CLIENTS && members.length < COMMITTEE; ++i) {
            if (_wins(taskId, i)) members.push(i);
        }
        assertEq(members.length, COMMITTEE);
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
        vm.cool(address(coordinator));
        vm.prank(sender);
        (bool ok,) = address(coordinator).call(data);
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

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Vm} from "forge-std/Vm.sol";
import {CID, Cid} from "../src/CID.sol";
import {
    IFlareCoordinator as IFC,
    Participant,
    Proposal,
    Round,
    Task,
    TaskParams,
    TaskStatus
} from "../src/IFlareCoordinator.sol";
import {ProofOfPossession} from "../src/ProofOfPossession.sol";
import {VRF} from "../src/VRF.sol";
import {BlsSigner} from "./utils/BlsSigner.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";

/// @notice Unit tests of every call, view, transition and custom error of docs/protocol.md, with
///         real BLS keys, proofs of possession and VRF proofs (made by `BlsSigner`, which
///         FlareCoordinatorTrace.t.sol checks against flare.crypto).
contract FlareCoordinatorTest is CoordinatorTestBase {
    // -- createTask ----------------------------------------------------------------------------

    function test_createTask_storesTheTask() public {
        TaskParams memory params = _params();
        Cid memory model = _cid("initial model");
        Cid memory manifest = Cid(DAG_PB, keccak256("validation set"));
        vm.expectEmit(address(coordinator));
        emit IFC.TaskCreated(1, creator, model, manifest, params);
        uint256 taskId = _createTask(params);
        assertEq(taskId, 1);
        assertEq(coordinator.taskCount(), 1);
        Task memory task = coordinator.getTask(1);
        assertEq(task.creator, creator);
        assertEq(abi.encode(task.params), abi.encode(params));
        assertEq(abi.encode(task.model), abi.encode(model));
        assertEq(abi.encode(task.manifest), abi.encode(manifest));
        assertEq(uint8(task.status), uint8(TaskStatus.Registering));
        assertEq(task.registeredCount, 0);
        assertEq(task.round, 0);
        assertEq(task.attempt, 0);
        assertEq(task.epoch, 0);
        assertEq(task.proposalCount, 0);
        assertEq(task.historyHash, bytes32(0));
        assertEq(_createTask(params), 2);
        assertEq(coordinator.taskCount(), 2);
    }

    function test_createTask_checksCodecsBeforeParameters() public {
        TaskParams memory bad = _params();
        bad.minClients = 0;
        vm.expectRevert(abi.encodeWithSelector(CID.UnsupportedCodec.selector, uint64(0x71)));
        coordinator.createTask(Cid(0x71, 0), Cid(0x12, 0), bad);
        vm.expectRevert(abi.encodeWithSelector(CID.UnsupportedCodec.selector, uint64(0x12)));
        coordinator.createTask(_cid("m"), Cid(0x12, 0), bad);
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidTaskParameter.selector, uint8(0)));
        coordinator.createTask(_cid("m"), _cid("v"), bad);
    }

    function test_createTask_reportsTheFirstInvalidParameter() public {
        for (uint8 index; index < 8; ++index) {
            TaskParams memory bad = _params();
            if (index == 0) bad.minClients = 0;
            if (index == 1) bad.expectedCommittee = 0;
            if (index == 2) bad.minCommittee = 0;
            if (index == 3) bad.quorumBps = 0;
            if (index == 4) bad.submissionWindow = 0;
            if (index == 5) bad.voteWindow = 0;
            if (index == 6) bad.maxRounds = 0;
            if (index == 7) bad.maxAttempts = 0;
            vm.expectRevert(abi.encodeWithSelector(IFC.InvalidTaskParameter.selector, index));
            coordinator.createTask(_cid("m"), _cid("v"), bad);
        }
        TaskParams memory params = _params();
        params.quorumBps = 10_001;
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidTaskParameter.selector, uint8(3)));
        coordinator.createTask(_cid("m"), _cid("v"), params);
        params = TaskParams(1, 0, 0, 0, 0, 0, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidTaskParameter.selector, uint8(1)));
        coordinator.createTask(_cid("m"), _cid("v"), params);
        params = TaskParams(1, 1, 1, 10_000, 1, 1, 1, 1);
        coordinator.createTask(_cid("m"), _cid("v"), params);
    }

    /// @dev No quorum below a strict majority of the committee, and no minimum committee the
    ///      sortition is not even expected to reach.
    function test_createTask_refusesMinorityQuorumsAndUnreachableMinimums() public {
        TaskParams memory params = _params();
        uint16[3] memory minority = [uint16(1), 3_333, 5_000];
        for (uint256 i; i < minority.length; ++i) {
            params.quorumBps = minority[i];
            vm.expectRevert(abi.encodeWithSelector(IFC.InvalidTaskParameter.selector, uint8(3)));
            coordinator.createTask(_cid("m"), _cid("v"), params);
        }
        params.quorumBps = 5_001;
        coordinator.createTask(_cid("m"), _cid("v"), params);
        params.minCommittee = params.expectedCommittee + 1;
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidTaskParameter.selector, uint8(2)));
        coordinator.createTask(_cid("m"), _cid("v"), params);
        params.minCommittee = params.expectedCommittee;
        coordinator.createTask(_cid("m"), _cid("v"), params);
    }

    // -- register ------------------------------------------------------------------------------

    function test_register_recordsTheParticipant() public {
        uint256 taskId = _createTask(_params());
        vm.expectEmit(address(coordinator));
        emit IFC.ParticipantRegistered(taskId, _addr(0), 0, _key(0));
        _register(taskId, 0);
        vm.expectEmit(address(coordinator));
        emit IFC.ParticipantRegistered(taskId, _addr(1), 1, _key(1));
        _register(taskId, 1);

        Participant memory participant = coordinator.getParticipant(taskId, _addr(1));
        assertTrue(participant.registered);
        assertEq(participant.index, 1);
        assertEq(participant.publicKeyHash, keccak256(_key(1)));
        assertEq(participant.submitEpoch, 0);
        assertEq(participant.seatEpoch, 0);
        assertEq(participant.proposeEpoch, 0);
        assertEq(participant.voteEpoch, 0);
        assertEq(coordinator.getTask(taskId).registeredCount, 2);
    }

    function test_register_revertsOnUnknownTask() public {
        bytes memory key = _key(0);
        bytes memory pop = _pop(1, 0);
        _expectError(IFC.UnknownTask.selector, 0);
        coordinator.register(0, key, pop);
        _createTask(_params());
        _expectError(IFC.UnknownTask.selector, 2);
        coordinator.register(2, key, pop);
    }

    function test_register_revertsOnCompletedTask() public {
        uint256 taskId = _completedTask();
        _expectEnded(taskId, TaskStatus.Completed);
        vm.prank(stranger);
        coordinator.register(taskId, "", "");
    }

    function test_register_revertsWhenAlreadyRegistered() public {
        uint256 taskId = _createTask(_params());
        _register(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(IFC.AlreadyRegistered.selector, taskId, _addr(0)));
        vm.prank(_addr(0));
        coordinator.register(taskId, "", "");
    }

    function test_register_checksKeyLengthThenProofLength() public {
        uint256 taskId = _createTask(_params());
        bytes memory key = _key(0);
        vm.startPrank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidLength.selector, 256, 255));
        coordinator.register(taskId, _slice(key, 255), "");
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidLength.selector, 256, 257));
        coordinator.register(taskId, bytes.concat(key, hex"00"), "");
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidLength.selector, 128, 0));
        coordinator.register(taskId, key, "");
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidLength.selector, 128, 129));
        coordinator.register(taskId, key, new bytes(129));
        vm.stopPrank();
    }

    function test_register_revertsOnTakenKey() public {
        uint256 taskId = _createTask(_params());
        _register(taskId, 0);
        bytes memory key = _key(0);
        vm.expectRevert(abi.encodeWithSelector(IFC.PublicKeyTaken.selector, taskId, keccak256(key)));
        vm.prank(_addr(1));
        coordinator.register(taskId, key, new bytes(128));
    }

    function test_register_keysAreUniquePerTaskOnly() public {
        uint256 first = _createTask(_params());
        uint256 second = _createTask(_params());
        _register(first, 0);
        _register(second, 0);
        assertEq(coordinator.getParticipant(second, _addr(0)).publicKeyHash, keccak256(_key(0)));
    }

    function test_register_revertsOnInvalidPossessionProof() public {
        uint256 taskId = _createTask(_params());
        bytes memory key = _key(0);
        bytes memory pop = _pop(taskId, 0);
        // Another account's proof, another key's proof, and a proof over another address.
        _expectInvalidPossession(taskId, _addr(1), key, pop);
        _expectInvalidPossession(taskId, _addr(0), key, _pop(taskId, 1));
        _expectInvalidPossession(taskId, _addr(0), key, _popFor(taskId, 0, _addr(1)));
        // Infinity: key and proof, or proof alone.
        _expectInvalidPossession(taskId, _addr(0), new bytes(256), new bytes(128));
        _expectInvalidPossession(taskId, _addr(0), key, new bytes(128));
        // Encodings the precompile refuses: off the curve, non-zero padding, a coordinate >= p.
        _expectInvalidPossession(taskId, _addr(0), key, _flip(pop, 127, 0x01));
        _expectInvalidPossession(taskId, _addr(0), key, _flip(pop, 0, 0x80));
        _expectInvalidPossession(taskId, _addr(0), _flip(key, 255, 0x01), pop);
        _expectInvalidPossession(taskId, _addr(0), _flip(key, 16, 0xff), pop);
        // A signature of the same message under the VRF's domain tag is no proof of possession.
        bytes memory message = ProofOfPossession.message(block.chainid, address(coordinator), taskId, _addr(0));
        _expectInvalidPossession(taskId, _addr(0), key, BlsSigner.sign(_secret(0), message, VRF.DST));
        assertFalse(coordinator.getParticipant(taskId, _addr(0)).registered);
        _register(taskId, 0);
    }

    function test_register_staysOpenWhileRunning() public {
        uint256 taskId = _started(_params(), 3);
        _register(taskId, 3);
        assertEq(coordinator.getParticipant(taskId, _addr(3)).index, 3);
        assertEq(coordinator.getTask(taskId).registeredCount, 4);
        assertEq(coordinator.getRound(taskId).registeredSnapshot, 3);
    }

    // -- startTask -----------------------------------------------------------------------------

    function test_startTask_opensRoundOne() public {
        uint256 taskId = _createTask(_params());
        for (uint256 i; i < 3; ++i) {
            _register(taskId, i);
        }
        vm.roll(100);
        vm.expectEmit(address(coordinator));
        emit IFC.RoundOpened(taskId, 1, 0, 1, _cid("initial model"), 3, 100, 130, 150);
        vm.prank(creator);
        coordinator.startTask(taskId);

        Round memory current = coordinator.getRound(taskId);
        assertEq(current.round, 1);
        assertEq(current.attempt, 0);
        assertEq(current.epoch, 1);
        assertEq(current.seed, bytes32(0), "no seed before a later block seals one");
        assertEq(current.openedAt, 100);
        assertEq(current.submissionDeadline, 130);
        assertEq(current.voteDeadline, 150);
        assertEq(current.registeredSnapshot, 3);
        assertEq(current.expectedCommittee, 100);
        assertEq(current.submissionCount, 0);
        assertEq(current.submissionsHash, bytes32(0));
        assertEq(current.committeeSize, 0);
        assertEq(current.quorumThreshold, 0);
        assertEq(current.rejections, 0);
        Task memory task = coordinator.getTask(taskId);
        assertEq(uint8(task.status), uint8(TaskStatus.Running));
        assertEq(task.round, 1);
        assertEq(task.epoch, 1);
    }

    function test_startTask_errors() public {
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.startTask(1);
        uint256 taskId = _createTask(_params());
        _register(taskId, 0);
        _register(taskId, 1);
        vm.roll(block.number + 1);
        vm.expectRevert(abi.encodeWithSelector(IFC.NotTaskCreator.selector, taskId, _addr(0)));
        vm.prank(_addr(0));
        coordinator.startTask(taskId);
        vm.startPrank(creator);
        vm.expectRevert(abi.encodeWithSelector(IFC.TooFewParticipants.selector, taskId, 2, 3));
        coordinator.startTask(taskId);
        // A key registered in this very block does not count: the snapshot would leave it out.
        vm.stopPrank();
        _register(taskId, 2);
        vm.expectRevert(abi.encodeWithSelector(IFC.TooFewParticipants.selector, taskId, 2, 3));
        vm.prank(creator);
        coordinator.startTask(taskId);
        _start(taskId);
        vm.expectRevert(abi.encodeWithSelector(IFC.NotTaskCreator.selector, taskId, stranger));
        vm.prank(stranger);
        coordinator.startTask(taskId);
        _expectError(IFC.TaskAlreadyStarted.selector, taskId);
        vm.prank(creator);
        coordinator.startTask(taskId);
        uint256 completed = _completedTask();
        _expectEnded(completed, TaskStatus.Completed);
        coordinator.startTask(completed);
    }

    // -- cancelTask ----------------------------------------------------------------------------

    function test_cancelTask_endsTheTask() public {
        uint256 registering = _createTask(_params());
        vm.expectRevert(abi.encodeWithSelector(IFC.NotTaskCreator.selector, registering, stranger));
        vm.prank(stranger);
        coordinator.cancelTask(registering);
        vm.expectEmit(address(coordinator));
        emit IFC.TaskCancelled(registering, 0, 0);
        vm.prank(creator);
        coordinator.cancelTask(registering);
        assertEq(uint8(coordinator.getTask(registering).status), uint8(TaskStatus.Cancelled));

        uint256 running = _readyToVote(_params(), 3);
        uint32 proposalId = _propose(running, 0, _cid("g"), hex"07");
        vm.expectEmit(address(coordinator));
        emit IFC.TaskCancelled(running, 1, 0);
        vm.prank(creator);
        coordinator.cancelTask(running);
        bytes[9] memory calls = [
            abi.encodeCall(IFC.register, (running, _key(5), _pop(running, 5))),
            abi.encodeCall(IFC.startTask, (running)),
            abi.encodeCall(IFC.cancelTask, (running)),
            abi.encodeCall(IFC.sealSeed, (running)),
            abi.encodeCall(IFC.submit, (running, _cid("u"), 1)),
            abi.encodeCall(IFC.claimSeat, (running, _key(0), "")),
            abi.encodeCall(IFC.propose, (running, _cid("g"), hex"07")),
            abi.encodeCall(IFC.vote, (running, proposalId, true)),
            abi.encodeCall(IFC.timeout, (running))
        ];
        for (uint256 i; i < calls.length; ++i) {
            vm.prank(i == 1 || i == 2 ? creator : _addr(i == 0 ? 5 : 1));
            (bool ok, bytes memory revertData) = address(coordinator).call(calls[i]);
            assertFalse(ok, vm.toString(i));
            assertEq(revertData, abi.encodeWithSelector(IFC.TaskEnded.selector, running, TaskStatus.Cancelled));
        }
        assertEq(abi.encode(coordinator.getTask(running).model), abi.encode(_cid("initial model")));
    }

    // -- sealSeed ------------------------------------------------------------------------------

    function test_sealSeed_fixesTheSeedFromALaterBlock() public {
        uint256 taskId = _createTask(_params());
        for (uint256 i; i < 3; ++i) {
            _register(taskId, i);
        }
        _start(taskId);
        uint64 openedAt = uint64(block.number);
        vm.expectRevert(abi.encodeWithSelector(IFC.SeedTooEarly.selector, taskId, openedAt));
        coordinator.sealSeed(taskId);
        vm.expectRevert(abi.encodeWithSelector(IFC.SeedNotSealed.selector, taskId));
        vm.prank(_addr(0));
        coordinator.claimSeat(taskId, "", "");

        vm.roll(openedAt + 1);
        vm.prevrandao(bytes32(uint256(42)));
        bytes32 seed = keccak256(
            abi.encode(block.chainid, address(coordinator), taskId, 1, 0, keccak256("initial model"), uint256(42))
        );
        vm.expectEmit(address(coordinator));
        emit IFC.SeedSealed(taskId, 1, 0, seed);
        vm.prank(stranger);
        coordinator.sealSeed(taskId);
        Round memory current = coordinator.getRound(taskId);
        assertEq(current.seed, seed);
        assertEq(current.submissionsHash, seed);
        vm.expectRevert(abi.encodeWithSelector(IFC.SeedAlreadySealed.selector, taskId));
        coordinator.sealSeed(taskId);
        _claim(taskId, 0);
    }

    function test_sealSeed_errorsInOrder() public {
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.sealSeed(1);
        uint256 taskId = _createTask(_params());
        _expectError(IFC.TaskNotStarted.selector, taskId);
        coordinator.sealSeed(taskId);
        for (uint256 i; i < 3; ++i) {
            _register(taskId, i);
        }
        _start(taskId);
        uint64 deadline = coordinator.getRound(taskId).submissionDeadline;
        vm.roll(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IFC.SubmissionWindowClosed.selector, taskId, deadline));
        coordinator.sealSeed(taskId);
        uint256 completed = _completedTask();
        _expectEnded(completed, TaskStatus.Completed);
        coordinator.sealSeed(completed);
    }

    function test_submit_sealsTheSeedOnce() public {
        uint256 taskId = _createTask(_params());
        for (uint256 i; i < 3; ++i) {
            _register(taskId, i);
        }
        _start(taskId);
        vm.expectRevert(abi.encodeWithSelector(IFC.SeedTooEarly.selector, taskId, uint64(block.number)));
        vm.prank(_addr(0));
        coordinator.submit(taskId, _cid("u"), 1);

        vm.roll(block.number + 1);
        vm.prevrandao(bytes32(uint256(7)));
        bytes32 seed = keccak256(
            abi.encode(block.chainid, address(coordinator), taskId, 1, 0, keccak256("initial model"), uint256(7))
        );
        vm.recordLogs();
        _submit(taskId, 0);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2);
        assertEq(logs[0].topics[0], IFC.SeedSealed.selector);
        assertEq(logs[0].data, abi.encode(uint32(0), seed));
        assertEq(logs[1].topics[0], IFC.UpdateSubmitted.selector);
        bytes32 chained = keccak256(abi.encode(seed, _addr(0), RAW, keccak256("update 0"), uint64(10)));
        assertEq(coordinator.getRound(taskId).submissionsHash, chained);
        vm.recordLogs();
        _submit(taskId, 1);
        assertEq(vm.getRecordedLogs().length, 1);
        assertEq(coordinator.getRound(taskId).seed, seed);
    }

    // -- submit --------------------------------------------------------------------------------

    function test_submit_extendsTheSubmissionsHash() public {
        uint256 taskId = _started(_params(), 3);
        Round memory opened = coordinator.getRound(taskId);
        Cid memory update = Cid(DAG_PB, keccak256("update"));
        vm.expectEmit(address(coordinator));
        emit IFC.UpdateSubmitted(taskId, 1, _addr(1), 0, 0, update, 7);
        vm.prank(_addr(1));
        coordinator.submit(taskId, update, 7);
        bytes32 expected = keccak256(abi.encode(opened.seed, _addr(1), DAG_PB, update.digest, uint64(7)));
        vm.expectEmit(address(coordinator));
        emit IFC.UpdateSubmitted(taskId, 1, _addr(0), 0, 1, update, type(uint64).max);
        vm.prank(_addr(0));
        coordinator.submit(taskId, update, type(uint64).max);
        expected = keccak256(abi.encode(expected, _addr(0), DAG_PB, update.digest, type(uint64).max));

        Round memory current = coordinator.getRound(taskId);
        assertEq(current.submissionCount, 2);
        assertEq(current.submissionsHash, expected);
        assertEq(coordinator.getParticipant(taskId, _addr(1)).submitEpoch, 1);
    }

    function test_submit_acceptsTheDeadlineBlockOnly() public {
        uint256 taskId = _started(_params(), 3);
        uint64 deadline = coordinator.getRound(taskId).submissionDeadline;
        vm.roll(deadline);
        _submit(taskId, 0);
        vm.roll(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IFC.SubmissionWindowClosed.selector, taskId, deadline));
        vm.prank(_addr(1));
        coordinator.submit(taskId, _cid("u"), 1);
    }

    function test_submit_errorsInOrder() public {
        Cid memory bad = Cid(0x71, 0);
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.submit(1, bad, 0);
        uint256 taskId = _createTask(_params());
        _expectError(IFC.TaskNotStarted.selector, taskId);
        coordinator.submit(taskId, bad, 0);
        for (uint256 i; i < 3; ++i) {
            _register(taskId, i);
        }
        _start(taskId);
        vm.roll(block.number + 1);
        vm.expectRevert(abi.encodeWithSelector(IFC.NotRegistered.selector, taskId, stranger));
        vm.prank(stranger);
        coordinator.submit(taskId, bad, 0);
        vm.startPrank(_addr(0));
        _expectError(IFC.ZeroSampleCount.selector, taskId);
        coordinator.submit(taskId, bad, 0);
        vm.expectRevert(abi.encodeWithSelector(CID.UnsupportedCodec.selector, uint64(0x71)));
        coordinator.submit(taskId, bad, 1);
        coordinator.submit(taskId, _cid("u"), 1);
        vm.expectRevert(abi.encodeWithSelector(IFC.AlreadySubmitted.selector, taskId, _addr(0)));
        coordinator.submit(taskId, bad, 0);
        vm.stopPrank();
        uint256 completed = _completedTask();
        _expectEnded(completed, TaskStatus.Completed);
        coordinator.submit(completed, bad, 0);
    }

    function test_submit_anyRegisteredParticipant() public {
        uint256 taskId = _started(_params(), 3);
        _register(taskId, 3);
        _submit(taskId, 3);
        assertEq(coordinator.getRound(taskId).submissionCount, 1);
    }

    // -- claimSeat -----------------------------------------------------------------------------

    function test_claimSeat_grantsASeat() public {
        uint256 taskId = _started(_params(), 3);
        bytes memory proof = _proof(taskId, 2);
        vm.expectEmit(address(coordinator));
        emit IFC.SeatClaimed(taskId, 1, _addr(2), 0, keccak256(proof), proof, 1);
        _claim(taskId, 2);
        Round memory current = coordinator.getRound(taskId);
        assertEq(current.committeeSize, 1);
        assertEq(current.quorumThreshold, 1);
        assertEq(coordinator.getParticipant(taskId, _addr(2)).seatEpoch, 1);
        _claim(taskId, 0);
        _claim(taskId, 1);
        current = coordinator.getRound(taskId);
        assertEq(current.committeeSize, 3);
        assertEq(current.quorumThreshold, 2); // ceil(60 % of 3)
    }

    function test_claimSeat_errorsInOrder() public {
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.claimSeat(1, "", "");
        uint256 taskId = _createTask(_params());
        _expectError(IFC.TaskNotStarted.selector, taskId);
        coordinator.claimSeat(taskId, "", "");
        for (uint256 i; i < 3; ++i) {
            _register(taskId, i);
        }
        _start(taskId);
        _register(taskId, 3);
        vm.expectRevert(abi.encodeWithSelector(IFC.SeedNotSealed.selector, taskId));
        vm.prank(stranger);
        coordinator.claimSeat(taskId, "", "");
        _seal(taskId);
        bytes memory key = _key(0);
        bytes memory proof = _proof(taskId, 0);

        vm.expectRevert(abi.encodeWithSelector(IFC.NotRegistered.selector, taskId, stranger));
        vm.prank(stranger);
        coordinator.claimSeat(taskId, "", "");
        vm.expectRevert(abi.encodeWithSelector(IFC.RegisteredAfterSnapshot.selector, taskId, _addr(3)));
        vm.prank(_addr(3));
        coordinator.claimSeat(taskId, "", "");

        vm.startPrank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidLength.selector, 256, 0));
        coordinator.claimSeat(taskId, "", "");
        bytes memory otherKey = _key(1);
        vm.expectRevert(abi.encodeWithSelector(IFC.PublicKeyMismatch.selector, taskId, _addr(0)));
        coordinator.claimSeat(taskId, otherKey, "");
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidLength.selector, 128, 127));
        coordinator.claimSeat(taskId, key, _slice(proof, 127));
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidVrfProof.selector, taskId, _addr(0)));
        coordinator.claimSeat{gas: CALL_GAS}(taskId, key, new bytes(128));
        coordinator.claimSeat(taskId, key, proof);
        vm.expectRevert(abi.encodeWithSelector(IFC.SeatAlreadyClaimed.selector, taskId, _addr(0)));
        coordinator.claimSeat(taskId, "", "");
        vm.stopPrank();

        vm.roll(coordinator.getRound(taskId).submissionDeadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFC.SubmissionWindowClosed.selector, taskId, coordinator.getRound(taskId).submissionDeadline
            )
        );
        vm.prank(stranger);
        coordinator.claimSeat(taskId, "", "");
        uint256 completed = _completedTask();
        _expectEnded(completed, TaskStatus.Completed);
        coordinator.claimSeat(completed, "", "");
    }

    function test_claimSeat_rejectsProofsOfOtherDraws() public {
        uint256 taskId = _started(_params(), 3);
        Round memory current = coordinator.getRound(taskId);
        bytes memory key = _key(0);
        uint256 secret = _secret(0);
        uint256 chainId = block.chainid;
        bytes[] memory wrong = new bytes[](8);
        wrong[0] = _signDraw(secret, chainId + 1, address(coordinator), taskId, 1, 0, current.seed);
        wrong[1] = _signDraw(secret, chainId, address(this), taskId, 1, 0, current.seed);
        wrong[2] = _signDraw(secret, chainId, address(coordinator), taskId + 1, 1, 0, current.seed);
        wrong[3] = _signDraw(secret, chainId, address(coordinator), taskId, 2, 0, current.seed);
        wrong[4] = _signDraw(secret, chainId, address(coordinator), taskId, 1, 1, current.seed);
        wrong[5] = _signDraw(secret, chainId, address(coordinator), taskId, 1, 0, ~current.seed);
        wrong[6] = _signDraw(_secret(1), chainId, address(coordinator), taskId, 1, 0, current.seed);
        wrong[7] = _flip(_proof(taskId, 0), 64, 0x80); // non-zero padding: the precompile refuses
        for (uint256 i; i < wrong.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IFC.InvalidVrfProof.selector, taskId, _addr(0)));
            vm.prank(_addr(0));
            coordinator.claimSeat{gas: CALL_GAS}(taskId, key, wrong[i]);
        }
        // A proof of possession is a signature under another domain tag.
        bytes memory pop = _pop(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidVrfProof.selector, taskId, _addr(0)));
        vm.prank(_addr(0));
        coordinator.claimSeat(taskId, key, pop);
    }

    function test_claimSeat_revertsWhenNotSelected() public {
        TaskParams memory params = _params();
        params.expectedCommittee = 1;
        params.minCommittee = 1;
        uint256 taskId = _started(params, 6);
        uint256 loser = type(uint256).max;
        uint256 seats;
        for (uint256 i; i < 6; ++i) {
            bytes memory proof = _proof(taskId, i);
            bool wins = VRF.seatGranted(keccak256(proof), 1, 6);
            if (wins) {
                _claim(taskId, i);
                ++seats;
            } else if (loser == type(uint256).max) {
                loser = i;
                bytes memory key = _key(i);
                vm.expectRevert(abi.encodeWithSelector(IFC.NotSelected.selector, taskId, keccak256(proof)));
                vm.prank(_addr(i));
                coordinator.claimSeat(taskId, key, proof);
            }
        }
        assertLt(loser, 6, "no loser among 6 draws with k = 1");
        assertEq(coordinator.getRound(taskId).committeeSize, seats);
    }

    /// @dev The sortition threshold uses the snapshot, not the current registration count.
    function test_claimSeat_drawsAgainstTheSnapshot() public {
        TaskParams memory params = _params();
        params.expectedCommittee = 3;
        uint256 taskId = _started(params, 3);
        for (uint256 i = 3; i < 8; ++i) {
            _register(taskId, i);
        }
        for (uint256 i; i < 3; ++i) {
            _claim(taskId, i); // k = n = 3 at the snapshot: every draw wins
        }
        assertEq(coordinator.getRound(taskId).committeeSize, 3);
    }

    // -- propose -------------------------------------------------------------------------------

    function test_propose_recordsTheProposal() public {
        uint256 taskId = _readyToVote(_params(), 3);
        Cid memory model = Cid(DAG_PB, keccak256("aggregate"));
        bytes memory accepted = hex"05";
        vm.expectEmit(address(coordinator));
        emit IFC.Proposed(taskId, 1, _addr(1), 0, 1, model, accepted);
        assertEq(_propose(taskId, 1, model, accepted), 1);
        Proposal memory proposal = coordinator.getProposal(taskId, 1);
        assertEq(proposal.proposer, _addr(1));
        assertEq(proposal.epoch, 1);
        assertEq(proposal.round, 1);
        assertEq(proposal.attempt, 0);
        assertEq(abi.encode(proposal.model), abi.encode(model));
        assertEq(proposal.acceptedHash, keccak256(accepted));
        assertEq(proposal.approvals, 0);
        assertEq(proposal.rejections, 0);
        assertEq(coordinator.getParticipant(taskId, _addr(1)).proposeEpoch, 1);
        assertEq(coordinator.getTask(taskId).proposalCount, 1);
        // Another member may propose too; an all-zero bitmap is valid.
        assertEq(_propose(taskId, 2, _cid("other"), hex"00"), 2);
    }

    function test_propose_windowErrors() public {
        uint256 taskId = _started(_params(), 3);
        _fill(taskId, 3);
        Round memory current = coordinator.getRound(taskId);
        vm.roll(current.submissionDeadline);
        vm.expectRevert(abi.encodeWithSelector(IFC.SubmissionWindowOpen.selector, taskId, current.submissionDeadline));
        vm.prank(_addr(0));
        coordinator.propose(taskId, _cid("g"), hex"07");
        vm.roll(current.voteDeadline);
        _propose(taskId, 0, _cid("g"), hex"07");
        vm.roll(current.voteDeadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IFC.VoteWindowClosed.selector, taskId, current.voteDeadline));
        vm.prank(_addr(1));
        coordinator.propose(taskId, _cid("g"), hex"07");
    }

    function test_propose_errorsInOrder() public {
        Cid memory bad = Cid(0x71, 0);
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.propose(1, bad, "");
        uint256 taskId = _createTask(_params());
        _expectError(IFC.TaskNotStarted.selector, taskId);
        coordinator.propose(taskId, bad, "");
        for (uint256 i; i < 5; ++i) {
            _register(taskId, i);
        }
        _start(taskId);
        _seal(taskId);
        _submit(taskId, 0);
        _submit(taskId, 1);
        _claim(taskId, 0);
        _claim(taskId, 1);
        _toVoting(taskId);

        vm.expectRevert(abi.encodeWithSelector(IFC.NotCommitteeMember.selector, taskId, stranger));
        vm.prank(stranger);
        coordinator.propose(taskId, bad, "");
        vm.expectRevert(abi.encodeWithSelector(IFC.NotCommitteeMember.selector, taskId, _addr(4)));
        vm.prank(_addr(4));
        coordinator.propose(taskId, bad, "");
        vm.expectRevert(abi.encodeWithSelector(IFC.CommitteeTooSmall.selector, taskId, 2, 3));
        vm.prank(_addr(0));
        coordinator.propose(taskId, bad, "");

        // Next attempt: a committee of 3, still only 2 submissions.
        _expire(taskId);
        coordinator.timeout(taskId);
        _seal(taskId);
        _submit(taskId, 0);
        _submit(taskId, 1);
        for (uint256 i; i < 3; ++i) {
            _claim(taskId, i);
        }
        _toVoting(taskId);
        vm.startPrank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.TooFewSubmissions.selector, taskId, 2, 3));
        coordinator.propose(taskId, bad, "");
        vm.stopPrank();

        // Next attempt: 5 submissions.
        _expire(taskId);
        coordinator.timeout(taskId);
        _seal(taskId);
        _fill(taskId, 5);
        _toVoting(taskId);
        vm.startPrank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(CID.UnsupportedCodec.selector, uint64(0x71)));
        coordinator.propose(taskId, bad, "");
        bytes[4] memory malformed = [bytes(""), hex"1f00", hex"20", hex"ff"];
        for (uint256 i; i < malformed.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IFC.InvalidAcceptedBitmap.selector, taskId, 5));
            coordinator.propose(taskId, _cid("g"), malformed[i]);
        }
        coordinator.propose(taskId, _cid("g"), hex"1f");
        vm.expectRevert(abi.encodeWithSelector(IFC.AlreadyProposed.selector, taskId, _addr(0)));
        coordinator.propose(taskId, bad, "");
        vm.stopPrank();

        uint256 completed = _completedTask();
        _expectEnded(completed, TaskStatus.Completed);
        coordinator.propose(completed, bad, "");
    }

    function test_propose_bitmapsOfManySubmissions() public {
        uint256 taskId = _started(_params(), 16);
        _fill(taskId, 16);
        _toVoting(taskId);
        vm.startPrank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidAcceptedBitmap.selector, taskId, 16));
        coordinator.propose(taskId, _cid("g"), hex"ff");
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidAcceptedBitmap.selector, taskId, 16));
        coordinator.propose(taskId, _cid("g"), hex"ffff00");
        coordinator.propose(taskId, _cid("g"), hex"ffff");
        vm.stopPrank();
    }

    // -- vote ----------------------------------------------------------------------------------

    function test_vote_countsVotes() public {
        uint256 taskId = _readyToVote(_params(), 5); // committee of 5, threshold 3
        uint32 proposalId = _propose(taskId, 0, _cid("g"), hex"1f");
        vm.expectEmit(address(coordinator));
        emit IFC.Voted(taskId, 1, _addr(0), 0, proposalId, false, 0, 1);
        _vote(taskId, 0, proposalId, false);
        vm.expectEmit(address(coordinator));
        emit IFC.Voted(taskId, 1, _addr(1), 0, proposalId, true, 1, 1);
        _vote(taskId, 1, proposalId, true);
        _vote(taskId, 2, proposalId, false);
        Proposal memory proposal = coordinator.getProposal(taskId, proposalId);
        assertEq(proposal.approvals, 1);
        assertEq(proposal.rejections, 2);
        assertEq(coordinator.getRound(taskId).rejections, 2);
        assertEq(coordinator.getParticipant(taskId, _addr(2)).voteEpoch, 1);
        // Two rejections of five leave three members who may approve: still the threshold.
        assertEq(coordinator.getTask(taskId).epoch, 1);
    }

    /// @dev A rejection counts: once fewer members than the threshold are left who have not
    ///      rejected, no proposal can reach quorum and the attempt closes at once.
    function test_vote_rejectionsCloseTheAttemptWhenQuorumIsOutOfReach() public {
        uint256 taskId = _readyToVote(_params(), 5); // committee of 5, threshold 3
        uint32 first = _propose(taskId, 0, _cid("poisoned"), hex"1f");
        uint32 second = _propose(taskId, 1, _cid("other"), hex"1f");
        Round memory before = coordinator.getRound(taskId);
        _vote(taskId, 0, first, true);
        _vote(taskId, 1, second, false); // rejections count over all proposals of the attempt
        _vote(taskId, 2, first, false);
        vm.expectEmit(address(coordinator));
        emit IFC.RoundRejected(taskId, 1, 0, 5, before.submissionsHash, 5);
        vm.expectEmit(address(coordinator));
        emit IFC.RoundOpened(
            taskId, 1, 1, 2, _cid("initial model"), 5, 100, uint64(block.number + 30), uint64(block.number + 50)
        );
        _vote(taskId, 3, first, false);
        Round memory next = coordinator.getRound(taskId);
        assertEq(next.attempt, 1);
        assertEq(next.rejections, 0);
        assertEq(abi.encode(coordinator.getTask(taskId).model), abi.encode(_cid("initial model")));
    }

    function test_vote_errorsInOrder() public {
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.vote(1, 0, true);
        TaskParams memory params = _params();
        params.minCommittee = 2;
        uint256 taskId = _createTask(params);
        _expectError(IFC.TaskNotStarted.selector, taskId);
        coordinator.vote(taskId, 0, true);
        for (uint256 i; i < 4; ++i) {
            _register(taskId, i);
        }
        _start(taskId);
        _seal(taskId);
        _claim(taskId, 0);
        _claim(taskId, 1);
        for (uint256 i; i < 3; ++i) {
            _submit(taskId, i);
        }
        Round memory current = coordinator.getRound(taskId);

        vm.expectRevert(abi.encodeWithSelector(IFC.SubmissionWindowOpen.selector, taskId, current.submissionDeadline));
        vm.prank(_addr(0));
        coordinator.vote(taskId, 0, true);
        _toVoting(taskId);
        vm.expectRevert(abi.encodeWithSelector(IFC.NotCommitteeMember.selector, taskId, _addr(3)));
        vm.prank(_addr(3));
        coordinator.vote(taskId, 0, true);

        vm.startPrank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.UnknownProposal.selector, taskId, 0));
        coordinator.vote(taskId, 0, true);
        vm.expectRevert(abi.encodeWithSelector(IFC.UnknownProposal.selector, taskId, 1));
        coordinator.vote(taskId, 1, true);
        coordinator.propose(taskId, _cid("g"), hex"07");
        vm.expectRevert(abi.encodeWithSelector(IFC.UnknownProposal.selector, taskId, 2));
        coordinator.vote(taskId, 2, true);
        coordinator.vote(taskId, 1, true);
        vm.expectRevert(abi.encodeWithSelector(IFC.AlreadyVoted.selector, taskId, _addr(0)));
        coordinator.vote(taskId, 2, true);
        vm.stopPrank();

        vm.roll(current.voteDeadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IFC.VoteWindowClosed.selector, taskId, current.voteDeadline));
        vm.prank(_addr(1));
        coordinator.vote(taskId, 1, true);

        // Next attempt: a committee below the minimum cannot vote, not even on a stale proposal.
        coordinator.timeout(taskId);
        _seal(taskId);
        _claim(taskId, 0);
        _toVoting(taskId);
        vm.expectRevert(abi.encodeWithSelector(IFC.CommitteeTooSmall.selector, taskId, 1, 2));
        vm.prank(_addr(0));
        coordinator.vote(taskId, 1, true);
        // And the one after: proposal 1 belongs to an earlier attempt.
        _expire(taskId);
        coordinator.timeout(taskId);
        _seal(taskId);
        _claim(taskId, 0);
        _claim(taskId, 1);
        _toVoting(taskId);
        vm.expectRevert(abi.encodeWithSelector(IFC.StaleProposal.selector, taskId, 1));
        vm.prank(_addr(0));
        coordinator.vote(taskId, 1, true);

        uint256 completed = _completedTask();
        _expectEnded(completed, TaskStatus.Completed);
        coordinator.vote(completed, 1, true);
    }

    function test_vote_quorumFinalizesAndOpensTheNextRound() public {
        uint256 taskId = _readyToVote(_params(), 4); // committee of 4, threshold ceil(2.4) = 3
        uint32 proposalId = _propose(taskId, 0, Cid(DAG_PB, keccak256("round 1")), hex"0b");
        Round memory before = coordinator.getRound(taskId);
        _vote(taskId, 0, proposalId, true);
        _vote(taskId, 1, proposalId, false);
        _vote(taskId, 2, proposalId, true);
        assertEq(coordinator.getTask(taskId).round, 1);

        bytes32 history = keccak256(
            abi.encode(
                bytes32(0),
                uint256(1),
                uint256(0),
                before.seed,
                before.submissionsHash,
                keccak256(hex"0b"),
                uint256(DAG_PB),
                keccak256("round 1")
            )
        );
        vm.roll(block.number + 1);
        Cid memory model = Cid(DAG_PB, keccak256("round 1"));
        vm.recordLogs();
        _vote(taskId, 3, proposalId, true);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 3);
        assertEq(
            logs[0].data,
            abi.encode(uint32(0), proposalId, true, uint32(3), uint32(1)),
            "Voted comes first, with the counts after the vote"
        );
        assertEq(logs[1].topics[0], IFC.RoundFinalized.selector);
        assertEq(
            logs[1].data,
            abi.encode(
                uint32(0), proposalId, model, uint32(4), before.submissionsHash, keccak256(hex"0b"), uint32(4), history
            )
        );
        assertEq(logs[2].topics[0], IFC.RoundOpened.selector);
        assertEq(
            logs[2].data,
            abi.encode(
                uint32(0),
                uint32(2),
                model,
                uint32(4),
                uint32(100),
                uint64(block.number + 30),
                uint64(block.number + 50)
            )
        );

        Task memory task = coordinator.getTask(taskId);
        assertEq(abi.encode(task.model), abi.encode(model));
        assertEq(task.historyHash, history);
        assertEq(task.round, 2);
        assertEq(task.attempt, 0);
        assertEq(task.epoch, 2);
        Round memory next = coordinator.getRound(taskId);
        assertEq(next.seed, bytes32(0));
        assertEq(next.submissionsHash, bytes32(0));
        assertEq(next.submissionCount, 0);
        assertEq(next.committeeSize, 0);
        assertEq(next.quorumThreshold, 0);
        assertEq(next.openedAt, block.number);
        // The proposal keeps its final counts.
        assertEq(coordinator.getProposal(taskId, proposalId).approvals, 3);
    }

    function test_vote_lastRoundCompletesTheTask() public {
        TaskParams memory params = _params();
        params.maxRounds = 1;
        uint256 taskId = _readyToVote(params, 3);
        uint32 proposalId = _propose(taskId, 0, _cid("final"), hex"07");
        _vote(taskId, 0, proposalId, true);
        Round memory last = coordinator.getRound(taskId);
        bytes32 history = keccak256(
            abi.encode(
                bytes32(0),
                uint256(1),
                uint256(0),
                last.seed,
                last.submissionsHash,
                keccak256(hex"07"),
                uint256(RAW),
                keccak256("final")
            )
        );
        vm.expectEmit(address(coordinator));
        emit IFC.TaskCompleted(taskId, 1, _cid("final"), history);
        _vote(taskId, 1, proposalId, true);

        Task memory task = coordinator.getTask(taskId);
        assertEq(uint8(task.status), uint8(TaskStatus.Completed));
        assertEq(abi.encode(task.model), abi.encode(_cid("final")));
        assertEq(task.historyHash, history);
        assertEq(task.round, 1);
        assertEq(task.epoch, 1);
        assertEq(abi.encode(coordinator.getRound(taskId)), abi.encode(last), "getRound keeps the last attempt");
        _expectEnded(taskId, TaskStatus.Completed);
        coordinator.timeout(taskId);
    }

    // -- timeout -------------------------------------------------------------------------------

    function test_timeout_opensTheNextAttempt() public {
        uint256 taskId = _started(_params(), 3);
        _submit(taskId, 0);
        _claim(taskId, 0);
        Round memory before = coordinator.getRound(taskId);
        vm.roll(before.voteDeadline);
        vm.expectRevert(abi.encodeWithSelector(IFC.VoteWindowOpen.selector, taskId, before.voteDeadline));
        coordinator.timeout(taskId);

        vm.roll(before.voteDeadline + 1);
        vm.expectEmit(address(coordinator));
        emit IFC.RoundTimedOut(taskId, 1, 0, 1, before.submissionsHash, 1);
        vm.expectEmit(address(coordinator));
        emit IFC.RoundOpened(
            taskId, 1, 1, 2, _cid("initial model"), 3, 200, uint64(block.number + 30), uint64(block.number + 50)
        );
        vm.prank(stranger);
        coordinator.timeout(taskId);

        Round memory next = coordinator.getRound(taskId);
        assertEq(next.round, 1);
        assertEq(next.attempt, 1);
        assertEq(next.epoch, 2);
        assertEq(next.expectedCommittee, 200, "one seat of minCommittee 3 doubles k");
        assertEq(next.submissionCount, 0);
        assertEq(next.committeeSize, 0);
        // The flags of the last attempt no longer count; the first submission seals a new seed.
        vm.roll(block.number + 1);
        _submit(taskId, 0);
        _claim(taskId, 0);
        assertEq(coordinator.getRound(taskId).committeeSize, 1);
        assertTrue(coordinator.getRound(taskId).seed != before.seed);
    }

    function test_timeout_errors() public {
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.timeout(1);
        uint256 taskId = _createTask(_params());
        _expectError(IFC.TaskNotStarted.selector, taskId);
        coordinator.timeout(taskId);
    }

    /// @dev An attempt nobody sealed times out with a zero submissions hash (it had no seed).
    function test_timeout_ofAnUnsealedAttempt() public {
        uint256 taskId = _createTask(_params());
        for (uint256 i; i < 3; ++i) {
            _register(taskId, i);
        }
        _start(taskId);
        _expire(taskId);
        vm.expectEmit(address(coordinator));
        emit IFC.RoundTimedOut(taskId, 1, 0, 0, bytes32(0), 0);
        coordinator.timeout(taskId);
    }

    /// @dev After `maxAttempts` attempts of one round close without a model, the task fails: no
    ///      task stalls forever, whatever blocks its committees.
    function test_timeout_failsTheTaskAfterMaxAttempts() public {
        TaskParams memory params = _params();
        params.maxAttempts = 3;
        uint256 taskId = _started(params, 3);
        for (uint256 attempt; attempt < 2; ++attempt) {
            _expire(taskId);
            coordinator.timeout(taskId);
            assertEq(coordinator.getRound(taskId).attempt, attempt + 1);
        }
        _expire(taskId);
        vm.expectEmit(address(coordinator));
        emit IFC.TaskFailed(taskId, 1, 3);
        coordinator.timeout(taskId);
        Task memory task = coordinator.getTask(taskId);
        assertEq(uint8(task.status), uint8(TaskStatus.Failed));
        assertEq(task.attempt, 2);
        assertEq(abi.encode(task.model), abi.encode(_cid("initial model")));
        _expectEnded(taskId, TaskStatus.Failed);
        coordinator.timeout(taskId);
        _expectEnded(taskId, TaskStatus.Failed);
        vm.prank(creator);
        coordinator.cancelTask(taskId);
    }

    // -- views ---------------------------------------------------------------------------------

    function test_views_ofMissingThings() public {
        assertEq(coordinator.taskCount(), 0);
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.getTask(1);
        _expectError(IFC.UnknownTask.selector, 0);
        coordinator.getRound(0);
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.getParticipant(1, stranger);
        _expectError(IFC.UnknownTask.selector, 1);
        coordinator.getProposal(1, 1);
        uint256 taskId = _createTask(_params());
        _expectError(IFC.TaskNotStarted.selector, taskId);
        coordinator.getRound(taskId);
        assertEq(abi.encode(coordinator.getParticipant(taskId, stranger)), new bytes(7 * 32));
        vm.expectRevert(abi.encodeWithSelector(IFC.UnknownProposal.selector, taskId, 0));
        coordinator.getProposal(taskId, 0);
        vm.expectRevert(abi.encodeWithSelector(IFC.UnknownProposal.selector, taskId, 1));
        coordinator.getProposal(taskId, 1);
    }

    /// @dev The contract never holds ether: no function is payable and there is no receive.
    function test_rejectsEther() public {
        (bool ok,) = address(coordinator).call{value: 1}("");
        assertFalse(ok);
        (ok,) = address(coordinator).call{value: 1}(abi.encodeCall(IFC.taskCount, ()));
        assertFalse(ok);
    }

    // -- helpers -------------------------------------------------------------------------------

    function _expectError(bytes4 selector, uint256 taskId) internal {
        vm.expectRevert(abi.encodeWithSelector(selector, taskId));
    }

    function _expectEnded(uint256 taskId, TaskStatus status) internal {
        vm.expectRevert(abi.encodeWithSelector(IFC.TaskEnded.selector, taskId, status));
    }

    function _expectInvalidPossession(uint256 taskId, address account, bytes memory key, bytes memory proof) internal {
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidPossessionProof.selector, taskId, account));
        vm.prank(account);
        coordinator.register{gas: CALL_GAS}(taskId, key, proof);
    }

    /// @dev Actors `0 .. count - 1` submit and claim seats (k = 100: all win).
    function _fill(uint256 taskId, uint256 count) internal {
        for (uint256 i; i < count; ++i) {
            _submit(taskId, i);
            _claim(taskId, i);
        }
    }

    /// @dev A started task with `count` submissions and seats, in its vote window.
    function _readyToVote(TaskParams memory params, uint256 count) internal returns (uint256 taskId) {
        taskId = _started(params, count);
        _fill(taskId, count);
        _toVoting(taskId);
    }

    /// @dev A task whose only round finalized.
    function _completedTask() internal returns (uint256 taskId) {
        TaskParams memory params = _params();
        params.maxRounds = 1;
        taskId = _readyToVote(params, 3);
        uint32 proposalId = _propose(taskId, 0, _cid("final"), hex"07");
        _vote(taskId, 0, proposalId, true);
        _vote(taskId, 1, proposalId, true);
        assertEq(uint8(coordinator.getTask(taskId).status), uint8(TaskStatus.Completed));
    }

    function _signDraw(
        uint256 secret,
        uint256 chainId,
        address verifier,
        uint256 taskId,
        uint256 round,
        uint256 attempt,
        bytes32 seed
    ) internal view returns (bytes memory) {
        return BlsSigner.sign(secret, VRF.input(chainId, verifier, taskId, round, attempt, seed), VRF.DST);
    }

    function _slice(bytes memory data, uint256 length) internal pure returns (bytes memory sliced) {
        sliced = new bytes(length);
        for (uint256 i; i < length; ++i) {
            sliced[i] = data[i];
        }
    }

    function _flip(bytes memory data, uint256 index, bytes1 mask) internal pure returns (bytes memory flipped) {
        flipped = bytes.concat(data);
        flipped[index] ^= mask;
    }
}

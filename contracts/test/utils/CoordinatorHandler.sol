// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {CommonBase} from "forge-std/Base.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {Vm} from "forge-std/Vm.sol";
import {Cid} from "../../src/CID.sol";
import {FlareCoordinator} from "../../src/FlareCoordinator.sol";
import {
    IFlareCoordinator as IFC,
    Participant,
    Round,
    Task,
    TaskParams,
    TaskStatus
} from "../../src/IFlareCoordinator.sol";
import {ProofOfPossession} from "../../src/ProofOfPossession.sol";
import {VRF} from "../../src/VRF.sol";
import {BlsSigner} from "./BlsSigner.sol";

/// @notice Drives the coordinator with random but mostly well-formed calls from a fixed set of
///         actors with real BLS keys, on two tasks, and keeps ghost records of what the contract
///         did, read from its logs: every seat with the proof that won it, every vote, every
///         finalization, every change of the global model. The invariant test checks the
///         records; calls that revert are expected and ignored.
contract CoordinatorHandler is CommonBase, StdUtils {
    uint256 public constant ACTORS = 8;
    uint256 public constant TASKS = 2;

    /// @notice A committee seat as the contract granted it.
    struct Seat {
        uint256 taskId;
        uint32 epoch;
        address member;
        bytes publicKey;
        bytes input;
        bytes proof;
        bytes32 output;
        uint32 snapshot;
        uint32 expectedCommittee;
    }

    /// @notice A finalization, with the vote counts that reached it.
    struct Finalization {
        uint256 taskId;
        uint32 epoch;
        uint32 proposalId;
        uint32 approvals;
        uint32 committeeSize;
        uint256 distinctApprovers;
    }

    FlareCoordinator public immutable coordinator;
    address[ACTORS] public actors;
    uint256[ACTORS] internal secrets;
    bytes[ACTORS] internal keys;

    Seat[] internal _seats;
    Finalization[] internal _finalizations;
    /// @notice Successful votes per task, epoch and member.
    mapping(uint256 taskId => mapping(uint32 epoch => mapping(address member => uint256))) public votesCast;
    /// @notice Successful votes per task and proposal.
    mapping(uint256 taskId => mapping(uint32 proposalId => uint256)) public votesOn;
    /// @notice Members who approved, per task and proposal.
    mapping(uint256 taskId => mapping(uint32 proposalId => uint256)) public approversOf;
    /// @notice The submissions hash chain, recomputed from the `UpdateSubmitted` logs.
    mapping(uint256 taskId => bytes32) public ghostSubmissionsHash;
    /// @notice The model each task should have: its initial one, then each finalized proposal's.
    mapping(uint256 taskId => bytes32) public expectedModel;

    /// @notice Violations seen while handling calls (each must stay zero).
    uint256 public doubleVotes;
    uint256 public votesWithoutSeat;
    uint256 public modelChangesOutsideFinalize;
    uint256 public finalizedCount;
    uint256 public timeouts;
    uint256 public rejectedAttempts;
    uint256 public seals;
    mapping(bytes4 selector => uint256) public successes;

    constructor(FlareCoordinator coordinator_) {
        coordinator = coordinator_;
        for (uint256 i; i < ACTORS; ++i) {
            actors[i] = address(uint160(uint256(keccak256(abi.encode("flare-invariant-actor", i)))));
            secrets[i] = BlsSigner.secretKey(abi.encode("invariant", i));
            keys[i] = BlsSigner.publicKey(secrets[i]);
        }
    }

    // -- set-up (called by the test) --------------------------------------------------------------

    /// @notice Create the two tasks (this handler is their creator), register actors
    ///         `0 .. registered - 1` in both, start both in the next block.
    function setUpTasks(uint256 registered) external {
        uint32 unlimited = type(uint32).max;
        // Task 1: a real sortition (k = 3 of n >= 6), never completes.
        coordinator.createTask(
            Cid(0x55, keccak256("model 1")), Cid(0x55, "v"), TaskParams(2, 3, 2, 6_000, 6, 6, 1_000, unlimited)
        );
        // Task 2: everyone wins (k >= n), a bare majority of the committee decides, three rounds.
        coordinator.createTask(
            Cid(0x70, keccak256("model 2")), Cid(0x55, "v"), TaskParams(1, 8, 1, 5_001, 5, 7, 3, unlimited)
        );
        for (uint256 taskId = 1; taskId <= TASKS; ++taskId) {
            expectedModel[taskId] = coordinator.getTask(taskId).model.digest;
            for (uint256 i; i < registered; ++i) {
                _register(taskId, i);
            }
        }
        vm.roll(block.number + 1);
        for (uint256 taskId = 1; taskId <= TASKS; ++taskId) {
            coordinator.startTask(taskId);
        }
    }

    // -- actions --------------------------------------------------------------------------------

    function register(uint256 actorSeed, uint256 taskSeed) external {
        _register(_taskId(taskSeed), _bound(actorSeed, 0, ACTORS - 1));
    }

    function submit(uint256 actorSeed, uint256 taskSeed, uint64 samples, bool badCodec) external {
        uint256 taskId = _taskId(taskSeed);
        _submitAs(taskId, _pick(taskId, actorSeed, Pick.NotSubmitted), samples, badCodec);
    }

    /// @notice Claim a seat with the actor's real VRF proof, or (one call in four each) with a
    ///         proof that has a flipped bit or was made with another actor's key.
    function claimSeat(uint256 actorSeed, uint256 taskSeed, uint8 corruption) external {
        uint256 taskId = _taskId(taskSeed);
        _claimAs(taskId, _pick(taskId, actorSeed, Pick.NoSeat), corruption);
    }

    function propose(uint256 actorSeed, uint256 taskSeed, uint256 bitmapSeed) external {
        uint256 taskId = _taskId(taskSeed);
        _proposeAs(taskId, _pick(taskId, actorSeed, Pick.NotProposed), bitmapSeed);
    }

    /// @notice Vote, mostly to approve and mostly on the newest proposal; sometimes on an older
    ///         one, on id 0 or on one past the last.
    function vote(uint256 actorSeed, uint256 taskSeed, uint256 proposalSeed, uint8 approveSeed) external {
        uint256 taskId = _taskId(taskSeed);
        uint32 count = coordinator.getTask(taskId).proposalCount;
        uint32 proposalId = proposalSeed % 2 == 0
            ? count
            : uint32(_bound(proposalSeed >> 1, count > 2 ? count - 2 : 0, uint256(count) + 1));
        _voteAs(taskId, _pick(taskId, actorSeed, Pick.NotVoted), proposalId, approveSeed % 4 != 0);
    }

    /// @notice Play one phase of a task with valid inputs, so that random sequences reach
    ///         finalizations (random calls alone rarely line up a whole round): in the submission
    ///         window, about seven actors in eight submit and claim a seat, then the window ends;
    ///         in the vote window, a member proposes if the attempt has no proposal yet, about
    ///         seven members in eight vote on the newest proposal, seven in eight of them to
    ///         approve, and without quorum the window ends half of the time; after it, the
    ///         attempt times out.
    function progress(uint256 seed) external {
        uint256 taskId = _taskId(seed);
        Task memory task = coordinator.getTask(taskId);
        if (task.status != TaskStatus.Running) return;
        Round memory current = coordinator.getRound(taskId);
        if (block.number <= current.submissionDeadline) {
            if (current.seed == 0) {
                // A seed is sealed only after the opening block.
                vm.roll(block.number + 1);
                vm.prevrandao(keccak256(abi.encode("randao", block.number)));
                _send(taskId, 0, abi.encodeCall(IFC.sealSeed, (taskId)));
            }
            for (uint256 actor; actor < ACTORS; ++actor) {
                if ((seed >> (8 + 3 * actor)) & 7 == 0) continue;
                // forge-lint: disable-next-line(unsafe-typecast)
                _submitAs(taskId, actor, uint64(1 + actor), false);
                _claimAs(taskId, actor, 0);
            }
            vm.roll(current.submissionDeadline + 1);
        } else if (block.number <= current.voteDeadline) {
            if (task.proposalCount == 0 || coordinator.getProposal(taskId, task.proposalCount).epoch != current.epoch) {
                _proposeAs(taskId, _pick(taskId, seed >> 32, Pick.NotProposed), seed >> 40);
            }
            uint32 proposalId = coordinator.getTask(taskId).proposalCount;
            for (uint256 actor; actor < ACTORS; ++actor) {
                uint256 bits = seed >> (64 + 6 * actor);
                if (bits & 7 == 0) continue;
                _voteAs(taskId, actor, proposalId, (bits >> 3) & 7 != 0);
                if (coordinator.getTask(taskId).epoch != current.epoch) return;
            }
            if ((seed >> 255) == 1) vm.roll(current.voteDeadline + 1);
        } else {
            _send(taskId, 0, abi.encodeCall(IFC.timeout, (taskId)));
        }
    }

    function timeout(uint256 taskSeed) external {
        uint256 taskId = _taskId(taskSeed);
        _send(taskId, 0, abi.encodeCall(IFC.timeout, (taskId)));
    }

    function sealSeed(uint256 actorSeed, uint256 taskSeed) external {
        uint256 taskId = _taskId(taskSeed);
        _send(taskId, _bound(actorSeed, 0, ACTORS - 1), abi.encodeCall(IFC.sealSeed, (taskId)));
    }

    /// @notice Mine a few blocks (five calls in eight), or to the end of a task's submission window
    ///         (two in eight) or vote window (one in eight), with a fresh prevrandao.
    function advance(uint256 seed) external {
        Round memory current = _round(_taskId(seed >> 8));
        uint256 target = block.number + _bound(seed >> 16, 1, 3);
        uint256 mode = seed % 8;
        if (mode >= 5 && mode < 7 && current.submissionDeadline >= block.number) {
            target = current.submissionDeadline + 1;
        }
        if (mode == 7 && current.voteDeadline >= block.number) target = current.voteDeadline + 1;
        vm.roll(target);
        vm.prevrandao(keccak256(abi.encode("randao", block.number)));
    }

    // -- ghost records --------------------------------------------------------------------------

    function seatCount() external view returns (uint256) {
        return _seats.length;
    }

    function seat(uint256 index) external view returns (Seat memory) {
        return _seats[index];
    }

    function finalizationCount() external view returns (uint256) {
        return _finalizations.length;
    }

    function finalization(uint256 index) external view returns (Finalization memory) {
        return _finalizations[index];
    }

    // -- internals ------------------------------------------------------------------------------

    function _submitAs(uint256 taskId, uint256 actor, uint64 samples, bool badCodec) internal {
        Cid memory update = Cid(badCodec ? 0x71 : 0x55, keccak256(abi.encode(taskId, actor, samples)));
        _send(taskId, actor, abi.encodeCall(IFC.submit, (taskId, update, samples)));
    }

    function _claimAs(uint256 taskId, uint256 actor, uint8 corruption) internal {
        Round memory current = _round(taskId);
        if (current.round == 0) return;
        bytes memory input =
            VRF.input(block.chainid, address(coordinator), taskId, current.round, current.attempt, current.seed);
        bytes memory proof = BlsSigner.sign(secrets[actor], input, VRF.DST);
        if (corruption % 4 == 1) proof[corruption % 128] ^= 0x01;
        if (corruption % 4 == 2) proof = BlsSigner.sign(secrets[(actor + 1) % ACTORS], input, VRF.DST);
        if (_send(taskId, actor, abi.encodeCall(IFC.claimSeat, (taskId, keys[actor], proof)))) {
            _seats.push(
                Seat(
                    taskId,
                    current.epoch,
                    actors[actor],
                    keys[actor],
                    input,
                    proof,
                    keccak256(proof),
                    current.registeredSnapshot,
                    current.expectedCommittee
                )
            );
        }
    }

    function _proposeAs(uint256 taskId, uint256 actor, uint256 bitmapSeed) internal {
        Round memory current = _round(taskId);
        bytes memory accepted = new bytes((uint256(current.submissionCount) + 7) / 8);
        for (uint256 i; i < current.submissionCount; ++i) {
            if ((bitmapSeed >> (i % 256)) & 1 == 1) accepted[i / 8] |= bytes1(uint8(2 ** (i % 8)));
        }
        Cid memory model = Cid(0x55, keccak256(abi.encode("aggregate", taskId, bitmapSeed)));
        _send(taskId, actor, abi.encodeCall(IFC.propose, (taskId, model, accepted)));
    }

    function _voteAs(uint256 taskId, uint256 actor, uint32 proposalId, bool approve) internal {
        _send(taskId, actor, abi.encodeCall(IFC.vote, (taskId, proposalId, approve)));
    }

    /// @dev What a useful actor for an action has not done yet in the current attempt.
    enum Pick {
        NotSubmitted,
        NoSeat,
        NotProposed,
        NotVoted
    }

    /// @dev Three calls in four: the first actor from `seed` on who can still act (registered,
    ///      and a committee member for proposals and votes); otherwise, or if none can, the
    ///      actor `seed` names, so that calls that must fail are made too.
    function _pick(uint256 taskId, uint256 seed, Pick kind) internal view returns (uint256) {
        uint256 first = seed % ACTORS;
        if ((seed >> 8) % 4 == 0) return first;
        uint32 epoch = coordinator.getTask(taskId).epoch;
        for (uint256 j; j < ACTORS; ++j) {
            uint256 actor = (first + j) % ACTORS;
            Participant memory p = coordinator.getParticipant(taskId, actors[actor]);
            if (!p.registered) continue;
            if (kind == Pick.NotSubmitted && p.submitEpoch != epoch) return actor;
            if (kind == Pick.NoSeat && p.seatEpoch != epoch) return actor;
            if (kind == Pick.NotProposed && p.seatEpoch == epoch && p.proposeEpoch != epoch) return actor;
            if (kind == Pick.NotVoted && p.seatEpoch == epoch && p.voteEpoch != epoch) return actor;
        }
        return first;
    }

    function _taskId(uint256 seed) internal pure returns (uint256) {
        return _bound(seed, 1, TASKS);
    }

    function _round(uint256 taskId) internal view returns (Round memory current) {
        try coordinator.getRound(taskId) returns (Round memory found) {
            current = found;
        } catch {}
    }

    function _register(uint256 taskId, uint256 actor) internal {
        bytes memory message = ProofOfPossession.message(block.chainid, address(coordinator), taskId, actors[actor]);
        bytes memory pop = BlsSigner.sign(secrets[actor], message, ProofOfPossession.DST);
        _send(taskId, actor, abi.encodeCall(IFC.register, (taskId, keys[actor], pop)));
    }

    /// @dev Send `data` as actor `actor`, then update the ghost records from the logs and check
    ///      that the model moved only through a finalization.
    function _send(uint256 taskId, uint256 actor, bytes memory data) internal returns (bool ok) {
        Task memory before = coordinator.getTask(taskId);
        Participant memory member = coordinator.getParticipant(taskId, actors[actor]);
        vm.recordLogs();
        vm.prank(actors[actor]);
        (ok,) = address(coordinator).call{gas: 3_000_000}(data);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bool finalized;
        if (ok) {
            // forge-lint: disable-next-line(unsafe-typecast)
            ++successes[bytes4(data)];
            finalized = _record(taskId, before, member, actors[actor], logs);
        }
        Task memory afterwards = coordinator.getTask(taskId);
        if (afterwards.model.digest != before.model.digest || afterwards.model.codec != before.model.codec) {
            if (!finalized || afterwards.model.digest != expectedModel[taskId]) ++modelChangesOutsideFinalize;
        }
    }

    /// @dev Fold one successful call's logs into the ghost records; true if it finalized.
    function _record(
        uint256 taskId,
        Task memory before,
        Participant memory member,
        address sender,
        Vm.Log[] memory logs
    ) internal returns (bool finalized) {
        uint32 approvals;
        uint32 proposalId;
        for (uint256 i; i < logs.length; ++i) {
            bytes32 topic = logs[i].topics[0];
            if (topic == IFC.UpdateSubmitted.selector) {
                (,, Cid memory update, uint64 samples) = abi.decode(logs[i].data, (uint32, uint32, Cid, uint64));
                ghostSubmissionsHash[taskId] =
                    keccak256(abi.encode(ghostSubmissionsHash[taskId], sender, update.codec, update.digest, samples));
            } else if (topic == IFC.Voted.selector) {
                (proposalId, approvals) = _onVoted(taskId, before.epoch, member, sender, logs[i].data);
            } else if (topic == IFC.RoundFinalized.selector) {
                _onFinalized(taskId, before.epoch, proposalId, approvals, logs[i].data);
                finalized = true;
            } else if (topic == IFC.RoundOpened.selector) {
                ghostSubmissionsHash[taskId] = 0; // no seed, hence no hash chain, until sealed
            } else if (topic == IFC.SeedSealed.selector) {
                (, bytes32 seed) = abi.decode(logs[i].data, (uint32, bytes32));
                ghostSubmissionsHash[taskId] = seed;
                ++seals;
            } else if (topic == IFC.RoundTimedOut.selector) {
                ++timeouts;
            } else if (topic == IFC.RoundRejected.selector) {
                ++rejectedAttempts;
            }
        }
    }

    function _onVoted(uint256 taskId, uint32 epoch, Participant memory member, address sender, bytes memory data)
        internal
        returns (uint32 proposalId, uint32 approvals)
    {
        bool approve;
        (, proposalId, approve, approvals,) = abi.decode(data, (uint32, uint32, bool, uint32, uint32));
        if (++votesCast[taskId][epoch][sender] > 1) ++doubleVotes;
        if (member.seatEpoch != epoch) ++votesWithoutSeat;
        ++votesOn[taskId][proposalId];
        if (approve) ++approversOf[taskId][proposalId];
    }

    function _onFinalized(uint256 taskId, uint32 epoch, uint32 proposalId, uint32 approvals, bytes memory data)
        internal
    {
        (,, Cid memory model,,,, uint32 size,) =
            abi.decode(data, (uint32, uint32, Cid, uint32, bytes32, bytes32, uint32, bytes32));
        expectedModel[taskId] = model.digest;
        _finalizations.push(Finalization(taskId, epoch, proposalId, approvals, size, approversOf[taskId][proposalId]));
        ++finalizedCount;
    }
}

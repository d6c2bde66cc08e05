// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {CID, Cid} from "../src/CID.sol";
import {IFlareCoordinator as IFC, Round, Task, TaskParams} from "../src/IFlareCoordinator.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";

/// @notice Fuzz tests of the coordinator's inputs: task parameters, CIDs and sample counts,
///         proof and key bytes, accepted bitmaps, window boundaries, the sortition and the
///         quorum rule. Runs that need BLS pairings per input are capped at 64.
contract FlareCoordinatorFuzzTest is CoordinatorTestBase {
    uint256 internal constant ACTORS = 20;
    /// @dev A started task with ACTORS participants and a committee of actors 0, 1, 2.
    uint256 internal taskId;

    function setUp() public override {
        super.setUp();
        taskId = _started(_params(), ACTORS);
        for (uint256 i; i < 3; ++i) {
            _claim(taskId, i);
        }
    }

    function testFuzz_createTask_parameters(TaskParams memory params, uint64 modelCodec, uint64 manifestCodec) public {
        bool modelOk = modelCodec == RAW || modelCodec == DAG_PB;
        bool manifestOk = manifestCodec == RAW || manifestCodec == DAG_PB;
        uint8 invalid = _firstInvalid(params);
        if (!modelOk) {
            vm.expectRevert(abi.encodeWithSelector(CID.UnsupportedCodec.selector, modelCodec));
        } else if (!manifestOk) {
            vm.expectRevert(abi.encodeWithSelector(CID.UnsupportedCodec.selector, manifestCodec));
        } else if (invalid < 8) {
            vm.expectRevert(abi.encodeWithSelector(IFC.InvalidTaskParameter.selector, invalid));
        }
        uint256 created = coordinator.createTask(Cid(modelCodec, "m"), Cid(manifestCodec, "v"), params);
        if (modelOk && manifestOk && invalid == 8) {
            Task memory task = coordinator.getTask(created);
            assertEq(abi.encode(task.params), abi.encode(params));
            assertEq(task.model.codec, modelCodec);
            assertEq(task.manifest.codec, manifestCodec);
        }
    }

    function testFuzz_submit_inputs(uint64 codec, bytes32 digest, uint64 samples) public {
        bool codecOk = codec == RAW || codec == DAG_PB;
        Round memory before = coordinator.getRound(taskId);
        if (samples == 0) {
            vm.expectRevert(abi.encodeWithSelector(IFC.ZeroSampleCount.selector, taskId));
        } else if (!codecOk) {
            vm.expectRevert(abi.encodeWithSelector(CID.UnsupportedCodec.selector, codec));
        }
        vm.prank(_addr(5));
        coordinator.submit(taskId, Cid(codec, digest), samples);
        if (samples != 0 && codecOk) {
            Round memory current = coordinator.getRound(taskId);
            assertEq(current.submissionCount, 1);
            assertEq(current.submissionsHash, keccak256(abi.encode(before.seed, _addr(5), codec, digest, samples)));
        }
    }

    /// forge-config: default.fuzz.runs = 64
    function testFuzz_register_randomProof(bytes32[4] memory words, bool wellFormed) public {
        bytes memory proof = _point(words, wellFormed);
        bytes memory key = _key(ACTORS);
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidPossessionProof.selector, taskId, _addr(ACTORS)));
        vm.prank(_addr(ACTORS));
        coordinator.register{gas: CALL_GAS}(taskId, key, proof);
    }

    /// forge-config: default.fuzz.runs = 64
    function testFuzz_register_randomKey(bytes32[8] memory words, bool wellFormed) public {
        bytes memory key = abi.encodePacked(words);
        if (wellFormed) {
            for (uint256 i; i < 4; ++i) {
                _fieldElement(key, i * 64);
            }
        }
        bytes memory pop = _pop(taskId, ACTORS);
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidPossessionProof.selector, taskId, _addr(ACTORS)));
        vm.prank(_addr(ACTORS));
        coordinator.register{gas: CALL_GAS}(taskId, key, pop);
    }

    /// forge-config: default.fuzz.runs = 64
    function testFuzz_claimSeat_randomProof(bytes32[4] memory words, bool wellFormed) public {
        bytes memory proof = _point(words, wellFormed);
        bytes memory key = _key(3);
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidVrfProof.selector, taskId, _addr(3)));
        vm.prank(_addr(3));
        coordinator.claimSeat{gas: CALL_GAS}(taskId, key, proof);
    }

    function testFuzz_propose_bitmap(uint256 count, bytes memory bitmap, uint256 lengthDelta) public {
        count = bound(count, 3, ACTORS);
        for (uint256 i; i < count; ++i) {
            _submit(taskId, i);
        }
        _toVoting(taskId);
        // Half the runs get the right length, so that the padding-bit rule is exercised.
        uint256 expectedLength = (count + 7) / 8;
        if (lengthDelta % 2 == 0) {
            bytes memory sized = new bytes(expectedLength);
            for (uint256 i; i < expectedLength && i < bitmap.length; ++i) {
                sized[i] = bitmap[i];
            }
            if (lengthDelta % 4 == 0 && count % 8 != 0) {
                sized[expectedLength - 1] &= bytes1(uint8(2 ** (count % 8) - 1)); // clear the padding bits
            }
            bitmap = sized;
        }
        bool canonical = bitmap.length == expectedLength;
        for (uint256 bit = count; canonical && bit < bitmap.length * 8; ++bit) {
            if (uint8(bitmap[bit / 8]) & (2 ** (bit % 8)) != 0) canonical = false;
        }
        if (!canonical) vm.expectRevert(abi.encodeWithSelector(IFC.InvalidAcceptedBitmap.selector, taskId, count));
        uint32 proposalId = _propose(taskId, 0, _cid("aggregate"), bitmap);
        if (canonical) assertEq(coordinator.getProposal(taskId, proposalId).acceptedHash, keccak256(bitmap));
    }

    /// forge-config: default.fuzz.runs = 64
    function testFuzz_windows(uint32 submissionWindow, uint32 voteWindow, uint256 offset) public {
        TaskParams memory params = _params();
        params.submissionWindow = uint32(bound(submissionWindow, 1, 1_000));
        params.voteWindow = uint32(bound(voteWindow, 1, 1_000));
        uint256 other = _started(params, 3);
        Round memory opened = coordinator.getRound(other);
        assertEq(opened.submissionDeadline, opened.openedAt + params.submissionWindow);
        assertEq(opened.voteDeadline, opened.submissionDeadline + params.voteWindow);
        offset = bound(offset, 0, uint256(params.submissionWindow) + params.voteWindow + 5);
        vm.roll(opened.openedAt + offset);
        bool submitting = block.number <= opened.submissionDeadline;
        bool voting = !submitting && block.number <= opened.voteDeadline;

        uint256 snapshot = vm.snapshotState();
        if (!submitting) {
            vm.expectRevert(
                abi.encodeWithSelector(IFC.SubmissionWindowClosed.selector, other, opened.submissionDeadline)
            );
        }
        _submit(other, 0);
        vm.revertToState(snapshot);

        if (submitting) {
            vm.expectRevert(abi.encodeWithSelector(IFC.SubmissionWindowOpen.selector, other, opened.submissionDeadline));
        } else if (voting) {
            vm.expectRevert(abi.encodeWithSelector(IFC.NotCommitteeMember.selector, other, stranger));
        } else {
            vm.expectRevert(abi.encodeWithSelector(IFC.VoteWindowClosed.selector, other, opened.voteDeadline));
        }
        vm.prank(stranger);
        coordinator.vote(other, 1, true);

        if (submitting || voting) {
            vm.expectRevert(abi.encodeWithSelector(IFC.VoteWindowOpen.selector, other, opened.voteDeadline));
        }
        coordinator.timeout(other);
        if (!submitting && !voting) assertEq(coordinator.getRound(other).attempt, 1);
    }

    /// @dev Every seat claim succeeds exactly when `output · n < k · 2^256`, checked with 128-bit
    ///      limbs (an arithmetic independent of the contract's `mulmod` trick).
    /// forge-config: default.fuzz.runs = 64
    function testFuzz_sortition(uint256 k, uint256 n, uint256 randao) public {
        n = bound(n, 1, 6);
        k = bound(k, 1, n + 1);
        TaskParams memory params = _params();
        params.minClients = 1;
        // forge-lint: disable-next-line(unsafe-typecast)
        params.expectedCommittee = uint32(k);
        params.minCommittee = 1;
        uint256 other = _createTask(params);
        for (uint256 i; i < n; ++i) {
            _register(other, i);
        }
        _start(other);
        _sealWith(other, bytes32(randao));
        uint256 seats;
        for (uint256 i; i < n; ++i) {
            bytes memory proof = _proof(other, i);
            bytes32 output = keccak256(proof);
            uint256 high = uint256(output) >> 128;
            uint256 low = uint256(output) & type(uint128).max;
            bool wins = (high * n + ((low * n) >> 128)) >> 128 < k;
            bytes memory key = _key(i);
            if (!wins) vm.expectRevert(abi.encodeWithSelector(IFC.NotSelected.selector, other, output));
            vm.prank(_addr(i));
            coordinator.claimSeat(other, key, proof);
            if (wins) ++seats;
        }
        assertEq(coordinator.getRound(other).committeeSize, seats);
        if (k >= n) assertEq(seats, n);
    }

    /// @dev The round finalizes at the first approval that reaches `ceil(bps · size / 10000)`,
    ///      never on a rejection, and never before; the attempt closes at the first rejection
    ///      that leaves fewer than that many members who have not rejected, and never before.
    /// forge-config: default.fuzz.runs = 64
    function testFuzz_quorum(uint256 size, uint16 quorumBps, uint256 pattern) public {
        size = bound(size, 1, 6);
        TaskParams memory params = _params();
        params.minClients = 1;
        params.minCommittee = 1;
        params.quorumBps = uint16(bound(quorumBps, 5_001, 10_000));
        uint256 other = _started(params, size);
        for (uint256 i; i < size; ++i) {
            _claim(other, i);
        }
        _submit(other, 0);
        uint256 threshold = (uint256(params.quorumBps) * size + 9_999) / 10_000;
        assertEq(coordinator.getRound(other).quorumThreshold, threshold);
        _toVoting(other);
        uint32 proposalId = _propose(other, 0, _cid("aggregate"), hex"01");
        uint256 approvals;
        uint256 rejections;
        for (uint256 i; i < size; ++i) {
            bool approve = (pattern >> i) & 1 == 1;
            _vote(other, i, proposalId, approve);
            if (approve) ++approvals;
            else ++rejections;
            (bool finalized, bool closed) = _outcome(other);
            assertEq(finalized, approvals >= threshold, "finalized exactly at quorum");
            assertEq(closed, rejections > size - threshold, "closed exactly when quorum is out of reach");
            if (finalized) {
                assertTrue(approve, "only an approval finalizes");
                assertEq(approvals, threshold);
                return;
            }
            if (closed) {
                assertFalse(approve, "only a rejection closes");
                return;
            }
        }
    }

    // -- helpers -------------------------------------------------------------------------------

    /// @dev Whether round 1 of `other` finalized, or its first attempt closed without a model.
    function _outcome(uint256 other) internal view returns (bool finalized, bool closed) {
        Task memory task = coordinator.getTask(other);
        finalized = task.round == 2;
        closed = task.round == 1 && task.attempt == 1;
    }

    /// @dev The index of the first invalid parameter (§2.2), or 8 if all are valid.
    function _firstInvalid(TaskParams memory p) internal pure returns (uint8) {
        if (p.minClients == 0) return 0;
        if (p.expectedCommittee == 0) return 1;
        if (p.minCommittee == 0 || p.minCommittee > p.expectedCommittee) return 2;
        if (p.quorumBps <= 5_000 || p.quorumBps > 10_000) return 3;
        if (p.submissionWindow == 0) return 4;
        if (p.voteWindow == 0) return 5;
        if (p.maxRounds == 0) return 6;
        if (p.maxAttempts == 0) return 7;
        return 8;
    }

    /// @dev 128 random bytes; if `wellFormed`, with zero padding and coordinates below p, so the
    ///      point fails the curve or subgroup check rather than the encoding check.
    function _point(bytes32[4] memory words, bool wellFormed) internal pure returns (bytes memory point) {
        point = abi.encodePacked(words);
        if (wellFormed) {
            _fieldElement(point, 0);
            _fieldElement(point, 64);
        }
    }

    /// @dev Turn the 64 bytes at `offset` into an Fp encoding: 16 zero bytes, then a value < p
    ///      (the top byte cleared keeps it below p = 0x1a01…).
    function _fieldElement(bytes memory data, uint256 offset) internal pure {
        for (uint256 i; i < 17; ++i) {
            data[offset + i] = 0;
        }
    }
}

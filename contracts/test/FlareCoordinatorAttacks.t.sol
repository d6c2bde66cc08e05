// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {console} from "forge-std/console.sol";
import {Cid} from "../src/CID.sol";
import {FlareCoordinator} from "../src/FlareCoordinator.sol";
import {IFlareCoordinator as IFC, Round, Task, TaskParams, TaskStatus} from "../src/IFlareCoordinator.sol";
import {ProofOfPossession} from "../src/ProofOfPossession.sol";
import {VRF} from "../src/VRF.sol";
import {BlsSigner} from "./utils/BlsSigner.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";

/// @notice One address of the attacker's: registers one key, claims seats with it.
contract Sybil {
    function register(FlareCoordinator coordinator, uint256 taskId, bytes calldata key, bytes calldata pop) external {
        coordinator.register(taskId, key, pop);
    }

    function claimSeat(FlareCoordinator coordinator, uint256 taskId, bytes calldata key, bytes calldata proof)
        external
    {
        coordinator.claimSeat(taskId, key, proof);
    }
}

/// @notice The seat-grinding attacker of issue 11, as a contract: in one transaction it computes
///         the seed an attempt would get from a given `prevrandao`, generates BLS keys until
///         `count` of them win a seat for it, registers each from its own `Sybil`, opens the
///         attempt (`startTask`, being the task's creator, or `timeout`) and claims the seats.
contract Grinder {
    FlareCoordinator internal immutable coordinator;
    Sybil[] public sybils;
    uint256[] public secrets;
    /// @notice The proofs the ground keys made for the ground seed.
    bytes[] public groundProofs;
    /// @notice Seats won inside the attack transaction, and the revert of the last refused claim.
    uint256 public seatsWon;
    bytes public lastRefusal;

    constructor(FlareCoordinator coordinator_) {
        coordinator = coordinator_;
    }

    function createTask(Cid calldata model, Cid calldata manifest, TaskParams calldata params)
        external
        returns (uint256)
    {
        return coordinator.createTask(model, manifest, params);
    }

    /// @notice Grind and register `count` keys for round 1's seed under `randomness`, start the
    ///         task and claim, all in this one transaction.
    function grindAndStart(uint256 taskId, uint256 count, uint256 randomness) external {
        _grindAndRegister(taskId, 1, 0, count, randomness, coordinator.getTask(taskId).params.expectedCommittee);
        coordinator.startTask(taskId);
        _claimAll(taskId);
    }

    /// @notice Grind and register `count` keys for the next attempt's seed under `randomness`,
    ///         time the current attempt out and claim, all in this one transaction.
    function grindAndTimeout(uint256 taskId, uint256 count, uint256 randomness) external {
        Task memory task = coordinator.getTask(taskId);
        // The attacker knows the escalation rule: an under-filled attempt doubles k.
        Round memory closing = coordinator.getRound(taskId);
        uint256 k = closing.expectedCommittee;
        if (closing.committeeSize < task.params.minCommittee) k *= 2;
        _grindAndRegister(taskId, task.round, task.attempt + 1, count, randomness, k);
        coordinator.timeout(taskId);
        _claimAll(taskId);
    }

    function key(uint256 index) external view returns (bytes memory) {
        return BlsSigner.publicKey(secrets[index]);
    }

    function _grindAndRegister(
        uint256 taskId,
        uint32 round,
        uint32 attempt,
        uint256 count,
        uint256 randomness,
        uint256 expectedCommittee
    ) internal {
        Task memory task = coordinator.getTask(taskId);
        bytes32 seed = keccak256(
            abi.encode(
                block.chainid,
                address(coordinator),
                taskId,
                uint256(round),
                uint256(attempt),
                task.model.digest,
                randomness
            )
        );
        bytes memory input = VRF.input(block.chainid, address(coordinator), taskId, round, attempt, seed);
        uint256 population = task.registeredCount + count;
        for (uint256 label; sybils.length < count; ++label) {
            uint256 secret = BlsSigner.secretKey(abi.encode("ground", label));
            bytes memory proof = BlsSigner.sign(secret, input, VRF.DST);
            if (VRF.seatGranted(keccak256(proof), expectedCommittee, population)) {
                _registerSybil(taskId, secret, proof);
            }
        }
    }

    /// @dev Register a winning key from a fresh address of the attacker's.
    function _registerSybil(uint256 taskId, uint256 secret, bytes memory proof) internal {
        Sybil sybil = new Sybil();
        bytes memory message = ProofOfPossession.message(block.chainid, address(coordinator), taskId, address(sybil));
        bytes memory pop = BlsSigner.sign(secret, message, ProofOfPossession.DST);
        sybil.register(coordinator, taskId, BlsSigner.publicKey(secret), pop);
        sybils.push(sybil);
        secrets.push(secret);
        groundProofs.push(proof);
    }

    function _claimAll(uint256 taskId) internal {
        for (uint256 i; i < sybils.length; ++i) {
            try sybils[i].claimSeat(coordinator, taskId, BlsSigner.publicKey(secrets[i]), groundProofs[i]) {
                ++seatsWon;
            } catch (bytes memory reason) {
                lastRefusal = reason;
            }
        }
    }
}

/// @notice The attacks of issue 11 on the coordinator, each mounted and shown to fail: seat
///         grinding through `startTask` and through `timeout` from a contract in one transaction
///         (also by an attacker who knows the next block's `prevrandao`, as the proposer of the
///         opening block does), a Sybil flood that would stall a task, proofs of possession
///         replayed across tasks, deployments and chains, and malformed keys that used to burn
///         63/64 of a transaction's gas.
contract FlareCoordinatorAttacksTest is CoordinatorTestBase {
    uint256 internal constant HONEST = 10;
    uint256 internal constant GROUND = 5;

    Grinder internal grinder;

    function setUp() public override {
        super.setUp();
        grinder = new Grinder(coordinator);
    }

    /// @dev k = 3 among 10 honest participants: a fair share of 5 extra keys is about 1 seat;
    ///      5 ground keys would hold 5 seats, a majority of any likely committee.
    function _attackParams() internal pure returns (TaskParams memory) {
        return TaskParams({
            minClients: 3,
            expectedCommittee: 3,
            minCommittee: 2,
            quorumBps: 6_667,
            submissionWindow: 30,
            voteWindow: 20,
            maxRounds: 2,
            maxAttempts: 5
        });
    }

    function _registerHonest(uint256 taskId) internal {
        for (uint256 i; i < HONEST; ++i) {
            _register(taskId, i);
        }
        vm.roll(block.number + 1);
    }

    /// @dev Through `startTask`, in the block that opens round 1, with the opening block's own
    ///      prevrandao (what the seed used to hash): the ground keys are not in the snapshot,
    ///      the attempt has no seed yet, and the seed sealed later is another one.
    function test_grinding_throughStartTask_openingBlockRandomness() public {
        uint256 taskId = grinder.createTask(_cid("initial model"), _cid("validation set"), _attackParams());
        _registerHonest(taskId);
        vm.prevrandao(bytes32(uint256(1234)));
        grinder.grindAndStart(taskId, GROUND, block.prevrandao);

        assertEq(grinder.seatsWon(), 0, "a seat inside the attack transaction");
        assertEq(grinder.lastRefusal(), abi.encodeWithSelector(IFC.SeedNotSealed.selector, taskId));
        Round memory opened = coordinator.getRound(taskId);
        assertEq(coordinator.getTask(taskId).registeredCount, HONEST + GROUND);
        assertEq(opened.registeredSnapshot, HONEST, "ground keys counted in the snapshot");

        _seal(taskId);
        assertTrue(coordinator.getRound(taskId).seed != _oldRuleSeed(taskId, 1, 0, 1234), "ground seed used");
        _expectGroundKeysRefused(taskId);
    }

    /// @dev The same attack by whoever builds the opening block, who knows the next block's
    ///      prevrandao in advance: even a ground key that wins for the seed actually sealed
    ///      draws nothing, because it was registered in the opening block.
    function test_grinding_throughStartTask_nextBlockRandomness() public {
        uint256 taskId = grinder.createTask(_cid("initial model"), _cid("validation set"), _attackParams());
        _registerHonest(taskId);
        bytes32 nextRandao = keccak256("the next block's prevrandao");
        grinder.grindAndStart(taskId, GROUND, uint256(nextRandao));
        _sealWith(taskId, nextRandao);
        assertEq(coordinator.getRound(taskId).registeredSnapshot, HONEST);
        for (uint256 i; i < GROUND; ++i) {
            bytes memory input =
                VRF.input(block.chainid, address(coordinator), taskId, 1, 0, coordinator.getRound(taskId).seed);
            assertTrue(VRF.verify(grinder.key(i), input, grinder.groundProofs(i)), "the grind did hit the seed");
        }
        _expectGroundKeysRefused(taskId);
    }

    /// @dev Through `timeout`, which anyone may call: a contract grinds keys for the next
    ///      attempt, registers them and times the expired attempt out in one transaction.
    function test_grinding_throughTimeout() public {
        uint256 taskId = _createTask(_attackParams());
        _registerHonest(taskId);
        _start(taskId);
        _seal(taskId);
        _expire(taskId);
        vm.prevrandao(bytes32(uint256(99)));
        grinder.grindAndTimeout(taskId, GROUND, block.prevrandao);

        assertEq(grinder.seatsWon(), 0, "a seat inside the attack transaction");
        assertEq(grinder.lastRefusal(), abi.encodeWithSelector(IFC.SeedNotSealed.selector, taskId));
        Round memory retry = coordinator.getRound(taskId);
        assertEq(retry.attempt, 1);
        assertEq(retry.registeredSnapshot, HONEST, "ground keys counted in the snapshot");
        _seal(taskId);
        assertTrue(coordinator.getRound(taskId).seed != _oldRuleSeed(taskId, 1, 1, 99), "ground seed used");
        _expectGroundKeysRefused(taskId);
    }

    /// @dev The same through `timeout` with the next block's prevrandao known in advance.
    function test_grinding_throughTimeout_nextBlockRandomness() public {
        uint256 taskId = _createTask(_attackParams());
        _registerHonest(taskId);
        _start(taskId);
        _seal(taskId);
        _expire(taskId);
        bytes32 nextRandao = keccak256("known a block early");
        grinder.grindAndTimeout(taskId, GROUND, uint256(nextRandao));
        _sealWith(taskId, nextRandao);
        _expectGroundKeysRefused(taskId);
    }

    /// @dev 5 participants beside 20 free Sybil keys, k = 5, and no attempt ever finalizes (the
    ///      participants claim seats but never propose; escalation seats them all from k = 40
    ///      on, `FlareCoordinatorLiveness.t.sol`, but seats alone decide nothing). The task
    ///      still cannot stall for good: after `maxAttempts` it ends as failed; its creator
    ///      could have cancelled it at any time.
    function test_sybilFlood_cannotStallATaskForever() public {
        TaskParams memory params = _attackParams();
        params.expectedCommittee = 5;
        params.minCommittee = 3;
        params.maxAttempts = 4;
        uint256 taskId = _createTask(params);
        for (uint256 i; i < 5; ++i) {
            _register(taskId, i);
        }
        for (uint256 i = 100; i < 120; ++i) {
            _register(taskId, i); // idle: never submit, never claim
        }
        _start(taskId);
        uint256 closed;
        while (coordinator.getTask(taskId).status == TaskStatus.Running) {
            _seal(taskId);
            for (uint256 i; i < 5; ++i) {
                _submit(taskId, i);
                if (_wins(taskId, i)) _claim(taskId, i);
            }
            _expire(taskId);
            coordinator.timeout(taskId);
            ++closed;
        }
        assertEq(closed, params.maxAttempts);
        Task memory task = coordinator.getTask(taskId);
        assertEq(uint8(task.status), uint8(TaskStatus.Failed));
        assertEq(abi.encode(task.model), abi.encode(_cid("initial model")));
        vm.expectRevert(abi.encodeWithSelector(IFC.TaskEnded.selector, taskId, TaskStatus.Failed));
        coordinator.timeout(taskId);
    }

    /// @dev The proof of possession names chain, contract and task: the proof that registered a
    ///      key in one task registers it nowhere else, not in another task of the same contract,
    ///      not in another deployment, not on another chain.
    function test_possessionProof_replayAcrossTasksDeploymentsAndChains() public {
        uint256 first = _createTask(_params());
        uint256 second = _createTask(_params());
        bytes memory key = _key(0);
        bytes memory pop = _pop(first, 0);
        vm.prank(_addr(0));
        coordinator.register(first, key, pop);

        _expectInvalidPossession(coordinator, second, key, pop);

        FlareCoordinator other = new FlareCoordinator();
        vm.prank(creator);
        other.createTask(_cid("initial model"), _cid("validation set"), _params());
        _expectInvalidPossession(other, first, key, pop);

        bytes memory popSecond = _pop(second, 0); // made for chain 31337
        uint256 snapshot = vm.snapshotState();
        vm.chainId(1);
        _expectInvalidPossession(coordinator, second, key, popSecond);
        vm.revertToState(snapshot);
        vm.prank(_addr(0));
        coordinator.register(second, key, popSecond);
    }

    /// @dev A key or proof the pairing precompile refuses burns at most the pairing's bounded
    ///      allowance, not 63/64 of the transaction: sent with 5,000,000 gas, the refused
    ///      registration and seat claim each cost less than 300,000.
    function test_refusedPoints_burnABoundedAmountOfGas() public {
        uint256 taskId = _started(_params(), 3);
        bytes memory offCurve = _key(5);
        offCurve[255] ^= 0x01;
        bytes memory pop = _pop(taskId, 5);
        vm.prank(_addr(5));
        uint256 before = gasleft();
        try coordinator.register{gas: 5_000_000}(taskId, offCurve, pop) {
            revert("an off-curve key registered");
        } catch (bytes memory reason) {
            assertEq(reason, abi.encodeWithSelector(IFC.InvalidPossessionProof.selector, taskId, _addr(5)));
        }
        uint256 spent = before - gasleft();
        console.log("refused registration, sent with 5,000,000 gas, used:", spent);
        assertLt(spent, 300_000, "register burned the gas it was given");

        bytes memory badProof = _proof(taskId, 0);
        badProof[127] ^= 0x01;
        bytes memory key = _key(0);
        vm.prank(_addr(0));
        before = gasleft();
        try coordinator.claimSeat{gas: 5_000_000}(taskId, key, badProof) {
            revert("an off-curve proof won a seat");
        } catch (bytes memory reason) {
            assertEq(reason, abi.encodeWithSelector(IFC.InvalidVrfProof.selector, taskId, _addr(0)));
        }
        spent = before - gasleft();
        console.log("refused seat claim, sent with 5,000,000 gas, used:", spent);
        assertLt(spent, 300_000, "claimSeat burned the gas it was given");
    }

    // -- helpers --------------------------------------------------------------------------------

    /// @dev What an attempt's seed was before this version: hashed in the opening transaction
    ///      from the opening block's prevrandao.
    function _oldRuleSeed(uint256 taskId, uint256 round, uint256 attempt, uint256 randao)
        internal
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encode(block.chainid, address(coordinator), taskId, round, attempt, keccak256("initial model"), randao)
        );
    }

    /// @dev Every ground key's claim fails: registered in the opening block, after the snapshot.
    function _expectGroundKeysRefused(uint256 taskId) internal {
        for (uint256 i; i < GROUND; ++i) {
            Sybil sybil = grinder.sybils(i);
            bytes memory key = grinder.key(i);
            bytes memory proof = grinder.groundProofs(i);
            vm.expectRevert(abi.encodeWithSelector(IFC.RegisteredAfterSnapshot.selector, taskId, address(sybil)));
            sybil.claimSeat(coordinator, taskId, key, proof);
        }
        assertEq(coordinator.getRound(taskId).committeeSize, 0);
    }

    function _expectInvalidPossession(FlareCoordinator target, uint256 taskId, bytes memory key, bytes memory pop)
        internal
    {
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidPossessionProof.selector, taskId, _addr(0)));
        vm.prank(_addr(0));
        target.register(taskId, key, pop);
    }
}

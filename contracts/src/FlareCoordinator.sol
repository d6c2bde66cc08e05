// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Admission} from "./Admission.sol";
import {CID, Cid} from "./CID.sol";
import {IFlareCoordinator, Participant, Proposal, Round, Task, TaskParams, TaskStatus} from "./IFlareCoordinator.sol";
import {ProofOfPossession} from "./ProofOfPossession.sol";
import {VRF} from "./VRF.sol";

/// @title Flare's federated-learning coordinator
/// @notice Tasks, participants with BLS keys, round attempts with VRF-seated committees that
///         propose and vote on the next global model. docs/protocol.md is the specification.
/// @dev Storage follows docs/protocol.md §1 and §10: state holds what the rules need plus 32-byte
///      commitments (key hash, submissions hash, accepted-bitmap hash, history hash); events
///      carry the bulk data. The current attempt lives in per-task slots that every new attempt
///      overwrites, and "once per attempt" flags are task epochs, so nothing is ever cleared.
///      Two refinements of §10's suggested packing save a cold read on every hot call:
///      - the task's lifecycle stage, whether the attempt's seed is sealed, epoch, round, attempt
///        and both deadlines share one slot, so the task checks and phase checks of submit,
///        claimSeat, propose, vote and timeout read a single slot (`openedAt` is not stored: it
///        is `submissionDeadline - submissionWindow`);
///      - each attempt keeps a copy of the parameters its calls check (`minClients`,
///        `minCommittee`, `quorumBps`, and its own `expectedCommittee`, which an under-filled
///        attempt doubles for the next) next to its counters.
///      CID codecs are stored as `uint8`: only raw (0x55) and dag-pb (0x70) are ever accepted.
///      The only external calls are `staticcall`s to precompiles during checks, each with a
///      bounded gas allowance (see `BLS`).
contract FlareCoordinator is IFlareCoordinator {
    /// @dev One whole in basis points.
    uint256 private constant BASIS_POINTS = 10_000;
    /// @dev The least `quorumBps` a task may have: a strict majority of the committee (§2.2).
    uint256 private constant MIN_QUORUM_BPS = 5_001;
    /// @dev What `startTask` writes into the seed and submissions-hash slots before the first
    ///      seal, so that every seal and submission stores over a non-zero slot. Never read as a
    ///      seed: the views report zero until the seed is sealed.
    bytes32 private constant UNSEALED = bytes32(uint256(1));
    /// @dev Length of an EIP-2537 G2 public key.
    uint256 private constant PUBLIC_KEY_LENGTH = 256;
    /// @dev Length of an EIP-2537 G1 signature (proof of possession or VRF proof).
    uint256 private constant PROOF_LENGTH = 128;
    /// @notice Blocks a stake stays locked after it is bonded, unless the task ends first
    ///         (two weeks of 12-second blocks): long enough that seats bought with borrowed
    ///         funds cost two weeks of their use, short enough that a task nobody starts or
    ///         cancels returns its deposits.
    uint64 public constant STAKE_LOCK_BLOCKS = 100_800;

    /// @dev A task's lifecycle; `None` marks an id that was never created. `TaskStatus` is
    ///      `Stage` minus one; from `Completed` on, a task has ended.
    enum Stage {
        None,
        Registering,
        Running,
        Completed,
        Failed,
        Cancelled
    }

    /// @dev Who may register and how seats are weighed (§2.5, §2.6): anyone, one seat weight per
    ///      key; the accounts of an admission root, one weight per key; anyone who bonds a
    ///      stake, weighed by stake.
    enum Enrollment {
        Open,
        Permissioned,
        Staked
    }

    /// @dev Where a task stands: what every call's task and phase checks read, in one slot,
    ///      with how it enrolls participants (read by the same checks).
    struct StateRecord {
        Stage stage;
        uint8 modelCodec;
        bool seedSealed;
        Enrollment enrollment;
        uint32 epoch;
        uint32 round;
        uint32 attempt;
        uint64 submissionDeadline;
        uint64 voteDeadline;
    }

    /// @dev The counters of the current attempt and the parameters its calls check (one slot).
    struct CountersRecord {
        uint32 registeredSnapshot;
        uint32 submissionCount;
        uint32 committeeSize;
        uint32 rejections;
        uint32 minClients;
        uint32 minCommittee;
        uint32 expectedCommittee;
        uint16 quorumBps;
    }

    /// @dev A participant: its flags in one slot, its key hash in another.
    struct ParticipantRecord {
        // slot 0
        bool registered;
        uint32 index;
        uint32 submitEpoch;
        uint32 seatEpoch;
        uint32 proposeEpoch;
        uint32 voteEpoch;
        // slot 1
        bytes32 publicKeyHash;
    }

    /// @dev A proposal: what a vote touches in slot 0, the rest read only when it finalizes.
    struct ProposalRecord {
        // slot 0
        address proposer;
        uint32 epoch;
        uint32 approvals;
        uint32 rejections;
        // slot 1
        uint32 round;
        uint32 attempt;
        uint8 modelCodec;
        // slot 2
        bytes32 modelDigest;
        // slot 3
        bytes32 acceptedHash;
    }

    /// @dev How many participants registered, and how many of them in blocks before the block of
    ///      the latest registration or stake change: an attempt opened in that block snapshots
    ///      only the latter. In a staked task, likewise the stake bonded before that block.
    struct RegistrationRecord {
        uint32 count;
        uint32 countBeforeLastBlock;
        uint64 lastBlock;
        uint128 stakeBeforeLastBlock;
    }

    /// @dev A staked task's deposits: zero in every other task.
    struct StakeRecord {
        // slot 0
        uint128 minStake;
        uint128 snapshot;
        // slot 1
        uint128 total;
    }

    /// @dev One participant's deposit in a staked task.
    struct BondRecord {
        uint128 amount;
        uint64 unlockBlock;
    }

    /// @dev A task, slot by slot.
    struct TaskRecord {
        // slot 0
        address creator;
        uint32 proposalCount;
        uint8 manifestCodec;
        // slot 1
        TaskParams params;
        // slot 2
        StateRecord state;
        // slots 3 to 5
        bytes32 modelDigest;
        bytes32 manifestDigest;
        bytes32 historyHash;
        // slots 6 to 8: the current attempt
        CountersRecord counters;
        bytes32 seed;
        bytes32 submissionsHash;
        // slot 9
        RegistrationRecord registration;
        // slot 10: zero unless permissioned
        bytes32 admissionRoot;
        // slots 11 and 12: zero unless staked
        StakeRecord stake;
        // mappings
        mapping(address account => ParticipantRecord) participants;
        mapping(address account => BondRecord) bonds;
        mapping(bytes32 publicKeyHash => bool) keyTaken;
        mapping(uint32 proposalId => ProposalRecord) proposals;
    }

    uint256 private _taskCount;
    mapping(uint256 taskId => TaskRecord) private _tasks;

    // -- calls ---------------------------------------------------------------------------------

    /// @inheritdoc IFlareCoordinator
    function createTask(Cid calldata model, Cid calldata manifest, TaskParams calldata params)
        external
        returns (uint256 taskId)
    {
        taskId = _createTask(model, manifest, params);
    }

    /// @inheritdoc IFlareCoordinator
    function createPermissionedTask(
        Cid calldata model,
        Cid calldata manifest,
        TaskParams calldata params,
        bytes32 admissionRoot_
    ) external returns (uint256 taskId) {
        taskId = _createTask(model, manifest, params);
        if (admissionRoot_ == bytes32(0)) revert ZeroAdmissionRoot();
        TaskRecord storage task = _tasks[taskId];
        task.state.enrollment = Enrollment.Permissioned;
        task.admissionRoot = admissionRoot_;
        emit AdmissionRootSet(taskId, admissionRoot_);
    }

    /// @inheritdoc IFlareCoordinator
    function createStakedTask(Cid calldata model, Cid calldata manifest, TaskParams calldata params, uint256 minStake_)
        external
        returns (uint256 taskId)
    {
        taskId = _createTask(model, manifest, params);
        if (minStake_ == 0) revert ZeroMinStake();
        if (minStake_ > type(uint128).max) revert StakeOverflow(taskId, minStake_);
        TaskRecord storage task = _tasks[taskId];
        task.state.enrollment = Enrollment.Staked;
        // casting to 'uint128' is safe because of the check above
        // forge-lint: disable-next-line(unsafe-typecast)
        task.stake.minStake = uint128(minStake_);
        emit MinStakeSet(taskId, minStake_);
    }

    /// @inheritdoc IFlareCoordinator
    function setAdmissionRoot(uint256 taskId, bytes32 admissionRoot_) external {
        TaskRecord storage task = _open(taskId);
        _requireCreator(task, taskId);
        if (task.state.enrollment != Enrollment.Permissioned) revert OpenAdmission(taskId);
        if (admissionRoot_ == bytes32(0)) revert ZeroAdmissionRoot();
        task.admissionRoot = admissionRoot_;
        emit AdmissionRootSet(taskId, admissionRoot_);
    }

    /// @inheritdoc IFlareCoordinator
    function register(uint256 taskId, bytes calldata publicKey, bytes calldata possessionProof) external {
        TaskRecord storage task = _open(taskId);
        Enrollment enrollment = task.state.enrollment;
        if (enrollment == Enrollment.Permissioned) revert AdmissionProofRequired(taskId);
        if (enrollment == Enrollment.Staked) revert StakeRequired(taskId);
        _enroll(task, taskId, publicKey, possessionProof, 0);
    }

    /// @inheritdoc IFlareCoordinator
    function registerStaked(uint256 taskId, bytes calldata publicKey, bytes calldata possessionProof) external payable {
        TaskRecord storage task = _open(taskId);
        if (task.state.enrollment != Enrollment.Staked) revert NotStaked(taskId);
        uint256 minStake_ = task.stake.minStake;
        if (msg.value < minStake_) revert StakeTooLow(taskId, msg.value, minStake_);
        if (msg.value > type(uint128).max) revert StakeOverflow(taskId, msg.value);
        // casting to 'uint128' is safe because of the check above
        // forge-lint: disable-next-line(unsafe-typecast)
        uint128 amount = uint128(msg.value);
        _enroll(task, taskId, publicKey, possessionProof, amount);

        uint64 unlockBlock = uint64(block.number) + STAKE_LOCK_BLOCKS;
        task.bonds[msg.sender] = BondRecord({amount: amount, unlockBlock: unlockBlock});
        task.stake.total += amount;
        emit StakeBonded(taskId, msg.sender, amount, unlockBlock);
    }

    /// @inheritdoc IFlareCoordinator
    function withdrawStake(uint256 taskId) external {
        TaskRecord storage task = _task(taskId);
        if (task.state.enrollment != Enrollment.Staked) revert NotStaked(taskId);
        BondRecord storage bond = task.bonds[msg.sender];
        uint128 amount = bond.amount;
        if (amount == 0) revert NothingToWithdraw(taskId, msg.sender);
        uint64 unlockBlock = bond.unlockBlock;
        if (task.state.stage < Stage.Completed && block.number < unlockBlock) {
            revert StakeLocked(taskId, unlockBlock);
        }

        bond.amount = 0;
        _noteStakeChange(task);
        task.stake.total -= amount;
        emit StakeWithdrawn(taskId, msg.sender, amount);
        (bool sent,) = msg.sender.call{value: amount}("");
        if (!sent) revert WithdrawalFailed(taskId, msg.sender);
    }

    /// @inheritdoc IFlareCoordinator
    function registerAdmitted(
        uint256 taskId,
        bytes calldata publicKey,
        bytes calldata possessionProof,
        bytes32[] calldata admissionProof
    ) external {
        TaskRecord storage task = _open(taskId);
        if (task.state.enrollment != Enrollment.Permissioned) revert OpenAdmission(taskId);
        if (!Admission.verify(admissionProof, task.admissionRoot, msg.sender)) {
            revert NotAdmitted(taskId, msg.sender);
        }
        _enroll(task, taskId, publicKey, possessionProof, 0);
    }

    /// @dev Create a task open to anyone (the checks and effects of `createTask`).
    function _createTask(Cid calldata model, Cid calldata manifest, TaskParams calldata params)
        private
        returns (uint256 taskId)
    {
        CID.checkCodec(model.codec);
        CID.checkCodec(manifest.codec);
        _checkParams(params);

        taskId = ++_taskCount;
        TaskRecord storage task = _tasks[taskId];
        task.creator = msg.sender;
        task.manifestCodec = uint8(manifest.codec);
        task.params = params;
        task.state.stage = Stage.Registering;
        task.state.modelCodec = uint8(model.codec);
        task.modelDigest = model.digest;
        task.manifestDigest = manifest.digest;
        emit TaskCreated(taskId, msg.sender, model, manifest, params);
    }

    /// @dev The checks of `register` from `AlreadyRegistered` on, and its effects; `stake` is the
    ///      deposit of a staked task's registration (zero elsewhere), bonded by the caller.
    function _enroll(
        TaskRecord storage task,
        uint256 taskId,
        bytes calldata publicKey,
        bytes calldata possessionProof,
        uint128 stake
    ) private {
        ParticipantRecord storage participant = task.participants[msg.sender];
        if (participant.registered) revert AlreadyRegistered(taskId, msg.sender);
        if (publicKey.length != PUBLIC_KEY_LENGTH) revert InvalidLength(PUBLIC_KEY_LENGTH, publicKey.length);
        if (possessionProof.length != PROOF_LENGTH) revert InvalidLength(PROOF_LENGTH, possessionProof.length);
        bytes32 keyHash = keccak256(publicKey);
        if (task.keyTaken[keyHash]) revert PublicKeyTaken(taskId, keyHash);
        bytes memory message = ProofOfPossession.message(block.chainid, address(this), taskId, msg.sender);
        if (!ProofOfPossession.verify(publicKey, message, possessionProof)) {
            revert InvalidPossessionProof(taskId, msg.sender);
        }

        RegistrationRecord memory registration = task.registration;
        uint32 index = registration.count;
        bool sameBlock = registration.lastBlock == block.number;
        task.registration = RegistrationRecord({
            count: index + 1,
            countBeforeLastBlock: sameBlock ? registration.countBeforeLastBlock : index,
            lastBlock: uint64(block.number),
            stakeBeforeLastBlock: sameBlock || stake == 0 ? registration.stakeBeforeLastBlock : task.stake.total
        });
        participant.registered = true;
        participant.index = index;
        participant.publicKeyHash = keyHash;
        task.keyTaken[keyHash] = true;
        emit ParticipantRegistered(taskId, msg.sender, index, publicKey);
    }

    /// @inheritdoc IFlareCoordinator
    function startTask(uint256 taskId) external {
        TaskRecord storage task = _open(taskId);
        _requireCreator(task, taskId);
        if (task.state.stage != Stage.Registering) revert TaskAlreadyStarted(taskId);
        uint32 eligible = _eligible(task.registration);
        uint32 required = task.params.minClients;
        if (eligible < required) revert TooFewParticipants(taskId, eligible, required);

        task.seed = UNSEALED;
        task.submissionsHash = UNSEALED;
        _openAttempt(task, taskId, 1, 0, task.params.expectedCommittee);
    }

    /// @inheritdoc IFlareCoordinator
    function cancelTask(uint256 taskId) external {
        TaskRecord storage task = _open(taskId);
        _requireCreator(task, taskId);

        StateRecord storage state = task.state;
        state.stage = Stage.Cancelled;
        emit TaskCancelled(taskId, state.round, state.attempt);
    }

    /// @inheritdoc IFlareCoordinator
    function sealSeed(uint256 taskId) external {
        (TaskRecord storage task, StateRecord storage state) = _running(taskId);
        _requireSubmissionWindow(state, taskId);
        if (state.seedSealed) revert SeedAlreadySealed(taskId);

        task.submissionsHash = _seal(task, state, taskId);
    }

    /// @inheritdoc IFlareCoordinator
    function submit(uint256 taskId, Cid calldata update, uint64 sampleCount) external {
        (TaskRecord storage task, StateRecord storage state) = _running(taskId);
        _requireSubmissionWindow(state, taskId);
        ParticipantRecord storage participant = _registered(task, taskId);
        uint32 epoch = state.epoch;
        if (participant.submitEpoch == epoch) revert AlreadySubmitted(taskId, msg.sender);
        if (sampleCount == 0) revert ZeroSampleCount(taskId);
        CID.checkCodec(update.codec);
        // `_seal` checks `SeedTooEarly` before it writes anything.
        bytes32 previous = state.seedSealed ? task.submissionsHash : _seal(task, state, taskId);

        CountersRecord storage counters = task.counters;
        uint32 index = counters.submissionCount;
        counters.submissionCount = index + 1;
        task.submissionsHash = keccak256(abi.encode(previous, msg.sender, update.codec, update.digest, sampleCount));
        participant.submitEpoch = epoch;
        emit UpdateSubmitted(taskId, state.round, msg.sender, state.attempt, index, update, sampleCount);
    }

    /// @inheritdoc IFlareCoordinator
    function claimSeat(uint256 taskId, bytes calldata publicKey, bytes calldata proof) external {
        (TaskRecord storage task, StateRecord storage state) = _running(taskId);
        _requireSubmissionWindow(state, taskId);
        if (!state.seedSealed) revert SeedNotSealed(taskId);
        ParticipantRecord storage participant = _registered(task, taskId);
        CountersRecord storage counters = task.counters;
        if (participant.index >= counters.registeredSnapshot) revert RegisteredAfterSnapshot(taskId, msg.sender);
        uint32 epoch = state.epoch;
        if (participant.seatEpoch == epoch) revert SeatAlreadyClaimed(taskId, msg.sender);
        if (publicKey.length != PUBLIC_KEY_LENGTH) revert InvalidLength(PUBLIC_KEY_LENGTH, publicKey.length);
        if (keccak256(publicKey) != participant.publicKeyHash) revert PublicKeyMismatch(taskId, msg.sender);
        if (proof.length != PROOF_LENGTH) revert InvalidLength(PROOF_LENGTH, proof.length);
        bytes32 output = _verifyDraw(task, taskId, publicKey, proof);

        uint32 size = counters.committeeSize + 1;
        counters.committeeSize = size;
        participant.seatEpoch = epoch;
        emit SeatClaimed(taskId, state.round, msg.sender, state.attempt, output, proof, size);
    }

    /// @inheritdoc IFlareCoordinator
    function propose(uint256 taskId, Cid calldata model, bytes calldata accepted) external returns (uint32 proposalId) {
        (TaskRecord storage task, StateRecord storage state, ParticipantRecord storage member) = _votingMember(taskId);
        uint32 epoch = state.epoch;
        if (member.proposeEpoch == epoch) revert AlreadyProposed(taskId, msg.sender);
        _checkProposal(task.counters, taskId, model.codec, accepted);

        proposalId = task.proposalCount + 1;
        task.proposalCount = proposalId;
        task.proposals[proposalId] = ProposalRecord({
            proposer: msg.sender,
            epoch: epoch,
            approvals: 0,
            rejections: 0,
            round: state.round,
            attempt: state.attempt,
            modelCodec: uint8(model.codec),
            modelDigest: model.digest,
            acceptedHash: keccak256(accepted)
        });
        member.proposeEpoch = epoch;
        emit Proposed(taskId, state.round, msg.sender, state.attempt, proposalId, model, accepted);
    }

    /// @inheritdoc IFlareCoordinator
    function vote(uint256 taskId, uint32 proposalId, bool approve) external {
        (TaskRecord storage task, StateRecord storage state, ParticipantRecord storage member) = _votingMember(taskId);
        uint32 epoch = state.epoch;
        if (member.voteEpoch == epoch) revert AlreadyVoted(taskId, msg.sender);
        _requireCommittee(task.counters, taskId);
        ProposalRecord storage proposal = task.proposals[proposalId];
        // Proposal ids are dense from 1 and every proposal has a proposer: a zero proposer is
        // exactly `proposalId == 0 || proposalId > proposalCount`.
        if (proposal.proposer == address(0)) revert UnknownProposal(taskId, proposalId);
        if (proposal.epoch != epoch) revert StaleProposal(taskId, proposalId);

        uint32 approvals = proposal.approvals;
        uint32 rejections = proposal.rejections;
        if (approve) {
            proposal.approvals = ++approvals;
        } else {
            proposal.rejections = ++rejections;
        }
        member.voteEpoch = epoch;
        emit Voted(taskId, state.round, msg.sender, state.attempt, proposalId, approve, approvals, rejections);
        CountersRecord storage counters = task.counters;
        uint32 threshold = _quorumThreshold(counters);
        if (approve) {
            if (approvals >= threshold) _finalize(task, taskId, proposalId, proposal);
            return;
        }
        // Each member votes once per attempt, so approvals of any proposal can only come from
        // members who have not rejected: once fewer than `threshold` of them are left, no
        // proposal can reach quorum and waiting for the deadline would only delay the retry.
        uint32 rejected = counters.rejections + 1;
        counters.rejections = rejected;
        if (rejected > counters.committeeSize - threshold) _closeAttempt(task, taskId, false);
    }

    /// @inheritdoc IFlareCoordinator
    function timeout(uint256 taskId) external {
        (TaskRecord storage task, StateRecord storage state) = _running(taskId);
        uint64 deadline = state.voteDeadline;
        if (block.number <= deadline) revert VoteWindowOpen(taskId, deadline);

        _closeAttempt(task, taskId, true);
    }

    // -- views ---------------------------------------------------------------------------------

    /// @inheritdoc IFlareCoordinator
    function taskCount() external view returns (uint256) {
        return _taskCount;
    }

    /// @inheritdoc IFlareCoordinator
    function getTask(uint256 taskId) external view returns (Task memory) {
        TaskRecord storage task = _task(taskId);
        StateRecord storage state = task.state;
        return Task({
            creator: task.creator,
            params: task.params,
            model: Cid(state.modelCodec, task.modelDigest),
            manifest: Cid(task.manifestCodec, task.manifestDigest),
            status: TaskStatus(uint8(state.stage) - 1),
            registeredCount: task.registration.count,
            round: state.round,
            attempt: state.attempt,
            epoch: state.epoch,
            proposalCount: task.proposalCount,
            historyHash: task.historyHash
        });
    }

    /// @inheritdoc IFlareCoordinator
    function getRound(uint256 taskId) external view returns (Round memory) {
        TaskRecord storage task = _task(taskId);
        StateRecord storage state = task.state;
        // Round 0 is a task that never started, cancelled or not.
        if (state.round == 0) revert TaskNotStarted(taskId);
        CountersRecord storage counters = task.counters;
        bool seedSealed = state.seedSealed;
        return Round({
            round: state.round,
            attempt: state.attempt,
            epoch: state.epoch,
            seed: seedSealed ? task.seed : bytes32(0),
            openedAt: state.submissionDeadline - task.params.submissionWindow,
            submissionDeadline: state.submissionDeadline,
            voteDeadline: state.voteDeadline,
            registeredSnapshot: counters.registeredSnapshot,
            expectedCommittee: counters.expectedCommittee,
            submissionCount: counters.submissionCount,
            submissionsHash: seedSealed ? task.submissionsHash : bytes32(0),
            committeeSize: counters.committeeSize,
            quorumThreshold: _quorumThreshold(counters),
            rejections: counters.rejections
        });
    }

    /// @inheritdoc IFlareCoordinator
    function getParticipant(uint256 taskId, address account) external view returns (Participant memory) {
        ParticipantRecord storage participant = _task(taskId).participants[account];
        return Participant({
            registered: participant.registered,
            index: participant.index,
            publicKeyHash: participant.publicKeyHash,
            submitEpoch: participant.submitEpoch,
            seatEpoch: participant.seatEpoch,
            proposeEpoch: participant.proposeEpoch,
            voteEpoch: participant.voteEpoch
        });
    }

    /// @inheritdoc IFlareCoordinator
    function admissionRoot(uint256 taskId) external view returns (bytes32) {
        return _task(taskId).admissionRoot;
    }

    /// @inheritdoc IFlareCoordinator
    function minStake(uint256 taskId) external view returns (uint256) {
        return _task(taskId).stake.minStake;
    }

    /// @inheritdoc IFlareCoordinator
    function stakeOf(uint256 taskId, address account) external view returns (uint256) {
        return _task(taskId).bonds[account].amount;
    }

    /// @inheritdoc IFlareCoordinator
    function stakeSnapshot(uint256 taskId) external view returns (uint256) {
        TaskRecord storage task = _task(taskId);
        if (task.state.round == 0) revert TaskNotStarted(taskId);
        return task.stake.snapshot;
    }

    /// @inheritdoc IFlareCoordinator
    function getProposal(uint256 taskId, uint32 proposalId) external view returns (Proposal memory) {
        ProposalRecord storage proposal = _task(taskId).proposals[proposalId];
        if (proposal.proposer == address(0)) revert UnknownProposal(taskId, proposalId);
        return Proposal({
            proposer: proposal.proposer,
            epoch: proposal.epoch,
            round: proposal.round,
            attempt: proposal.attempt,
            model: Cid(proposal.modelCodec, proposal.modelDigest),
            acceptedHash: proposal.acceptedHash,
            approvals: proposal.approvals,
            rejections: proposal.rejections
        });
    }

    // -- shared checks -------------------------------------------------------------------------

    /// @dev `InvalidTaskParameter(index)` for the first invalid parameter (§2.2).
    function _checkParams(TaskParams calldata params) private pure {
        if (params.minClients == 0) revert InvalidTaskParameter(0);
        if (params.expectedCommittee == 0) revert InvalidTaskParameter(1);
        if (params.minCommittee == 0 || params.minCommittee > params.expectedCommittee) revert InvalidTaskParameter(2);
        if (params.quorumBps < MIN_QUORUM_BPS || params.quorumBps > BASIS_POINTS) revert InvalidTaskParameter(3);
        if (params.submissionWindow == 0) revert InvalidTaskParameter(4);
        if (params.voteWindow == 0) revert InvalidTaskParameter(5);
        if (params.maxRounds == 0) revert InvalidTaskParameter(6);
        if (params.maxAttempts == 0) revert InvalidTaskParameter(7);
    }

    /// @dev The task, or `UnknownTask` (for views, which need no more).
    function _task(uint256 taskId) private view returns (TaskRecord storage task) {
        task = _tasks[taskId];
        if (task.state.stage == Stage.None) revert UnknownTask(taskId);
    }

    /// @dev `_task`, then `TaskEnded`.
    function _open(uint256 taskId) private view returns (TaskRecord storage task) {
        task = _task(taskId);
        _requireNotEnded(task.state.stage, taskId);
    }

    /// @dev The task checks of §4: `UnknownTask`, `TaskEnded`, `TaskNotStarted`.
    function _running(uint256 taskId) private view returns (TaskRecord storage task, StateRecord storage state) {
        task = _tasks[taskId];
        state = task.state;
        Stage stage = state.stage;
        if (stage == Stage.None) revert UnknownTask(taskId);
        _requireNotEnded(stage, taskId);
        if (stage == Stage.Registering) revert TaskNotStarted(taskId);
    }

    /// @dev `TaskEnded` for a completed, failed or cancelled task.
    function _requireNotEnded(Stage stage, uint256 taskId) private pure {
        if (stage >= Stage.Completed) revert TaskEnded(taskId, TaskStatus(uint8(stage) - 1));
    }

    /// @dev `NotTaskCreator` unless the sender created the task.
    function _requireCreator(TaskRecord storage task, uint256 taskId) private view {
        if (msg.sender != task.creator) revert NotTaskCreator(taskId, msg.sender);
    }

    /// @dev Participants registered in blocks before this one: the snapshot an attempt opened now
    ///      takes. A key registered in the opening block itself is left out, because whoever
    ///      builds that block may already know the `prevrandao` of the next one (§3).
    function _eligible(RegistrationRecord storage registration) private view returns (uint32) {
        return registration.lastBlock == block.number ? registration.countBeforeLastBlock : registration.count;
    }

    /// @dev The stake bonded in blocks before this one: the divisor of an attempt opened now, for
    ///      the reason of `_eligible`. A stake withdrawn in this block still counts in it, so no
    ///      withdrawal in the opening block moves anyone's odds.
    function _eligibleStake(TaskRecord storage task) private view returns (uint128) {
        RegistrationRecord storage registration = task.registration;
        return registration.lastBlock == block.number ? registration.stakeBeforeLastBlock : task.stake.total;
    }

    /// @dev Record that the stake total is about to change in this block (a withdrawal), so
    ///      that `_eligibleStake` keeps reading the total from before the block.
    function _noteStakeChange(TaskRecord storage task) private {
        RegistrationRecord storage registration = task.registration;
        if (registration.lastBlock == block.number) return;
        registration.countBeforeLastBlock = registration.count;
        registration.lastBlock = uint64(block.number);
        registration.stakeBeforeLastBlock = task.stake.total;
    }

    /// @dev Approvals that finalize: `ceil(quorumBps * committeeSize / 10000)` (§2.3).
    function _quorumThreshold(CountersRecord storage counters) private view returns (uint32) {
        // casting to 'uint32' is safe because quorumBps <= 10,000 makes the threshold <= size
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint32((uint256(counters.quorumBps) * counters.committeeSize + BASIS_POINTS - 1) / BASIS_POINTS);
    }

    /// @dev `SubmissionWindowClosed` after the submission deadline.
    function _requireSubmissionWindow(StateRecord storage state, uint256 taskId) private view {
        uint64 deadline = state.submissionDeadline;
        if (block.number > deadline) revert SubmissionWindowClosed(taskId, deadline);
    }

    /// @dev The sender's record, or `NotRegistered`.
    function _registered(TaskRecord storage task, uint256 taskId)
        private
        view
        returns (ParticipantRecord storage participant)
    {
        participant = task.participants[msg.sender];
        if (!participant.registered) revert NotRegistered(taskId, msg.sender);
    }

    /// @dev The checks `propose` and `vote` share: task checks, `SubmissionWindowOpen`,
    ///      `VoteWindowClosed`, `NotCommitteeMember`. A stranger's seat epoch is 0, never the
    ///      epoch of an open attempt.
    function _votingMember(uint256 taskId)
        private
        view
        returns (TaskRecord storage task, StateRecord storage state, ParticipantRecord storage member)
    {
        (task, state) = _running(taskId);
        uint64 submissionDeadline = state.submissionDeadline;
        if (block.number <= submissionDeadline) revert SubmissionWindowOpen(taskId, submissionDeadline);
        uint64 voteDeadline = state.voteDeadline;
        if (block.number > voteDeadline) revert VoteWindowClosed(taskId, voteDeadline);
        member = task.participants[msg.sender];
        if (member.seatEpoch != state.epoch) revert NotCommitteeMember(taskId, msg.sender);
    }

    /// @dev `CommitteeTooSmall` while fewer than `minCommittee` seats are held.
    function _requireCommittee(CountersRecord storage counters, uint256 taskId) private view {
        uint32 size = counters.committeeSize;
        uint32 required = counters.minCommittee;
        if (size < required) revert CommitteeTooSmall(taskId, size, required);
    }

    /// @dev The checks of `propose` after `AlreadyProposed`: `CommitteeTooSmall`,
    ///      `TooFewSubmissions`, `UnsupportedCodec`, `InvalidAcceptedBitmap`.
    function _checkProposal(CountersRecord storage counters, uint256 taskId, uint64 codec, bytes calldata accepted)
        private
        view
    {
        _requireCommittee(counters, taskId);
        uint32 count = counters.submissionCount;
        uint32 required = counters.minClients;
        if (count < required) revert TooFewSubmissions(taskId, count, required);
        CID.checkCodec(codec);
        if (!_isCanonicalBitmap(accepted, count)) revert InvalidAcceptedBitmap(taskId, count);
    }

    /// @dev Verify the sender's VRF proof for the current attempt (`InvalidVrfProof`) and run the
    ///      sortition on its output (`NotSelected`); returns the output.
    function _verifyDraw(TaskRecord storage task, uint256 taskId, bytes calldata publicKey, bytes calldata proof)
        private
        view
        returns (bytes32 output)
    {
        StateRecord storage state = task.state;
        bytes memory input = VRF.input(block.chainid, address(this), taskId, state.round, state.attempt, task.seed);
        bytes memory proofBytes = proof;
        if (!VRF.verify(publicKey, input, proofBytes)) revert InvalidVrfProof(taskId, msg.sender);
        output = VRF.output(proofBytes);
        CountersRecord storage counters = task.counters;
        bool granted = state.enrollment == Enrollment.Staked
            ? VRF.seatGranted(
                output, uint256(counters.expectedCommittee) * task.bonds[msg.sender].amount, task.stake.snapshot
            )
            : VRF.seatGranted(output, counters.expectedCommittee, counters.registeredSnapshot);
        if (!granted) revert NotSelected(taskId, output);
    }

    /// @dev Whether `bitmap` has exactly `ceil(count / 8)` bytes and no bit at a position
    ///      `>= count` (§2.3). Only the last byte can hold such bits.
    function _isCanonicalBitmap(bytes calldata bitmap, uint256 count) private pure returns (bool) {
        if (bitmap.length != (count + 7) / 8) return false;
        uint256 usedBits = count % 8;
        return usedBits == 0 || uint8(bitmap[bitmap.length - 1]) >> usedBits == 0;
    }

    // -- shared effects ------------------------------------------------------------------------

    /// @dev Advance the global model to `proposal`, extend the history hash, then complete the
    ///      task after its last round or open the next round (§4.7).
    function _finalize(TaskRecord storage task, uint256 taskId, uint32 proposalId, ProposalRecord storage proposal)
        private
    {
        StateRecord storage state = task.state;
        Cid memory model = Cid(proposal.modelCodec, proposal.modelDigest);
        bytes32 acceptedHash = proposal.acceptedHash;
        bytes32 history = keccak256(
            abi.encode(
                task.historyHash,
                uint256(state.round),
                uint256(state.attempt),
                task.seed,
                task.submissionsHash,
                acceptedHash,
                model.codec,
                model.digest
            )
        );
        state.modelCodec = uint8(model.codec);
        task.modelDigest = model.digest;
        task.historyHash = history;
        _emitFinalized(task, taskId, proposalId, model, acceptedHash, history);
        uint32 round = state.round;
        if (round < task.params.maxRounds) {
            _openAttempt(task, taskId, round + 1, 0, task.params.expectedCommittee);
        } else {
            state.stage = Stage.Completed;
            emit TaskCompleted(taskId, round, model, history);
        }
    }

    /// @dev Emit `RoundFinalized` for the current attempt.
    function _emitFinalized(
        TaskRecord storage task,
        uint256 taskId,
        uint32 proposalId,
        Cid memory model,
        bytes32 acceptedHash,
        bytes32 history
    ) private {
        CountersRecord storage counters = task.counters;
        emit RoundFinalized(
            taskId,
            task.state.round,
            task.state.attempt,
            proposalId,
            model,
            counters.submissionCount,
            task.submissionsHash,
            acceptedHash,
            counters.committeeSize,
            history
        );
    }

    /// @dev Close the current attempt without a model, because its vote window passed
    ///      (`timedOut`) or because its members rejected; then open the next attempt of the
    ///      round, or fail the task after its last allowed attempt (§4.12). An attempt that
    ///      seated fewer than `minCommittee` hands the next one twice its expected committee, so
    ///      idle keys or stake cannot dilute every attempt below `minCommittee`: the doubling
    ///      reads only this attempt's closed counters, fixed before the next seed exists (§3).
    function _closeAttempt(TaskRecord storage task, uint256 taskId, bool timedOut) private {
        StateRecord storage state = task.state;
        CountersRecord storage counters = task.counters;
        uint32 round = state.round;
        uint32 attempt = state.attempt;
        bytes32 submissions = state.seedSealed ? task.submissionsHash : bytes32(0);
        if (timedOut) {
            emit RoundTimedOut(taskId, round, attempt, counters.submissionCount, submissions, counters.committeeSize);
        } else {
            emit RoundRejected(taskId, round, attempt, counters.submissionCount, submissions, counters.committeeSize);
        }
        uint32 attempts = attempt + 1;
        if (attempts < task.params.maxAttempts) {
            uint32 expected = counters.expectedCommittee;
            if (counters.committeeSize < counters.minCommittee) expected = _doubled(expected);
            _openAttempt(task, taskId, round, attempts, expected);
        } else {
            state.stage = Stage.Failed;
            emit TaskFailed(taskId, round, attempts);
        }
    }

    /// @dev Fix the current attempt's seed from this block's `prevrandao` (§2.3, §4.10): reverts
    ///      `SeedTooEarly` in the opening block, before writing anything; returns the seed.
    function _seal(TaskRecord storage task, StateRecord storage state, uint256 taskId) private returns (bytes32 seed) {
        uint64 openedAt = state.submissionDeadline - task.params.submissionWindow;
        if (block.number <= openedAt) revert SeedTooEarly(taskId, openedAt);
        uint32 round = state.round;
        uint32 attempt = state.attempt;
        seed = keccak256(
            abi.encode(
                block.chainid,
                address(this),
                taskId,
                uint256(round),
                uint256(attempt),
                task.modelDigest,
                block.prevrandao
            )
        );
        state.seedSealed = true;
        task.seed = seed;
        emit SeedSealed(taskId, round, attempt, seed);
    }

    /// @dev `2 * k`, saturating at the largest `uint32`. Past the snapshot's size (or, staked,
    ///      `k * stake >= stakeSnapshot` for every key) every eligible key wins a seat anyway.
    function _doubled(uint32 k) private pure returns (uint32) {
        return k > type(uint32).max / 2 ? type(uint32).max : 2 * k;
    }

    /// @dev Open attempt `attempt` of round `round` from the task's current model (§4.9), drawn
    ///      with `expectedCommittee`; its seed is sealed later, by `_seal`.
    function _openAttempt(
        TaskRecord storage task,
        uint256 taskId,
        uint32 round,
        uint32 attempt,
        uint32 expectedCommittee
    ) private {
        TaskParams memory params = task.params;
        StateRecord storage state = task.state;
        uint32 epoch = state.epoch + 1;
        uint64 submissionDeadline = uint64(block.number) + params.submissionWindow;
        uint64 voteDeadline = submissionDeadline + params.voteWindow;
        Cid memory baseModel = Cid(state.modelCodec, task.modelDigest);
        uint32 snapshot = _eligible(task.registration);
        task.state = StateRecord({
            stage: Stage.Running,
            modelCodec: state.modelCodec,
            seedSealed: false,
            enrollment: state.enrollment,
            epoch: epoch,
            round: round,
            attempt: attempt,
            submissionDeadline: submissionDeadline,
            voteDeadline: voteDeadline
        });
        task.counters = CountersRecord({
            registeredSnapshot: snapshot,
            submissionCount: 0,
            committeeSize: 0,
            rejections: 0,
            minClients: params.minClients,
            minCommittee: params.minCommittee,
            expectedCommittee: expectedCommittee,
            quorumBps: params.quorumBps
        });
        if (state.enrollment == Enrollment.Staked) task.stake.snapshot = _eligibleStake(task);
        emit RoundOpened(
            taskId, round, attempt, epoch, baseModel, snapshot, expectedCommittee, submissionDeadline, voteDeadline
        );
    }
}

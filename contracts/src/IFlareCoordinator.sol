// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Cid} from "./CID.sol";

/// @notice A task's fixed parameters (docs/protocol.md §2.2), in ABI tuple order.
/// @param minClients Participants needed to start; submissions needed to propose.
/// @param expectedCommittee `k`, the expected committee size of the sortition.
/// @param minCommittee Seats needed before anyone may propose or vote.
/// @param quorumBps Approvals needed, in basis points of the committee size (5,001 to 10,000).
/// @param submissionWindow Blocks after the opening block in which to submit and claim seats.
/// @param voteWindow Blocks after the submission window in which to propose and vote.
/// @param maxRounds The task completes when this round finalizes.
/// @param maxAttempts Attempts a round may take; the task fails when the last one closes
///        without a model.
struct TaskParams {
    uint32 minClients;
    uint32 expectedCommittee;
    uint32 minCommittee;
    uint16 quorumBps;
    uint32 submissionWindow;
    uint32 voteWindow;
    uint32 maxRounds;
    uint32 maxAttempts;
}

/// @notice Lifecycle of a task: registering until `startTask`, running until its last round
///         finalizes (completed), a round uses up its attempts (failed) or the creator cancels it
///         (cancelled). The last three are final.
enum TaskStatus {
    Registering,
    Running,
    Completed,
    Failed,
    Cancelled
}

/// @notice The `getTask` view (docs/protocol.md §5).
/// @param creator Who created the task.
/// @param params The task's parameters.
/// @param model The current global model: the base of the open attempt, or the final model.
/// @param manifest The task manifest (docs/wire-format.md): model, aggregator and the public
///        validation split the committee's filter runs on.
/// @param status Registering, running or completed.
/// @param registeredCount Participants registered so far.
/// @param round The current (or last) round; 0 before `startTask`.
/// @param attempt The current (or last) attempt of that round.
/// @param epoch Round attempts opened so far (the first attempt is epoch 1).
/// @param proposalCount Proposals made in the task, over all its rounds.
/// @param historyHash The running anchor of every finalized round (§2.3); zero at creation.
struct Task {
    address creator;
    TaskParams params;
    Cid model;
    Cid manifest;
    TaskStatus status;
    uint32 registeredCount;
    uint32 round;
    uint32 attempt;
    uint32 epoch;
    uint32 proposalCount;
    bytes32 historyHash;
}

/// @notice The `getRound` view: the current round attempt, or the last one once the task ended.
/// @param round The round (from 1).
/// @param attempt The attempt of the round (from 0).
/// @param epoch The task epoch of this attempt.
/// @param seed The attempt's seed (§2.3), which every VRF proof of the attempt signs; zero until
///        the first `sealSeed` or `submit` in a block after `openedAt` seals it.
/// @param openedAt The block that opened the attempt.
/// @param submissionDeadline `S`: the last block for submissions and seat claims.
/// @param voteDeadline `V`: the last block for proposals and votes.
/// @param registeredSnapshot Participants registered in blocks before `openedAt`: those who may
///        draw a seat (the sortition's `n`).
/// @param expectedCommittee The attempt's `k`: the task's `expectedCommittee` in a round's first
///        attempt and after an attempt that seated `minCommittee`; twice the previous
///        attempt's (saturating at 2^32 - 1) after one that seated fewer (§4.8).
/// @param submissionCount Updates submitted in the attempt.
/// @param submissionsHash The hash chain over the attempt's submissions, starting at `seed`
///        (zero until the seed is sealed).
/// @param committeeSize Seats claimed in the attempt.
/// @param quorumThreshold Approvals that finalize: `ceil(quorumBps * committeeSize / 10000)`.
/// @param rejections Rejecting votes cast in the attempt, over all its proposals.
struct Round {
    uint32 round;
    uint32 attempt;
    uint32 epoch;
    bytes32 seed;
    uint64 openedAt;
    uint64 submissionDeadline;
    uint64 voteDeadline;
    uint32 registeredSnapshot;
    uint32 expectedCommittee;
    uint32 submissionCount;
    bytes32 submissionsHash;
    uint32 committeeSize;
    uint32 quorumThreshold;
    uint32 rejections;
}

/// @notice The `getParticipant` view; all zero for an address that never registered.
/// @dev Each `*Epoch` holds the task epoch of the participant's last action of that kind, so
///      equality with the current epoch means "already done in this attempt".
/// @param registered Whether the address registered in the task.
/// @param index Its registration index (from 0).
/// @param publicKeyHash `keccak256` of its 256-byte BLS public key (the key is in the log).
/// @param submitEpoch Epoch of its last submission.
/// @param seatEpoch Epoch of its last committee seat.
/// @param proposeEpoch Epoch of its last proposal.
/// @param voteEpoch Epoch of its last vote.
struct Participant {
    bool registered;
    uint32 index;
    bytes32 publicKeyHash;
    uint32 submitEpoch;
    uint32 seatEpoch;
    uint32 proposeEpoch;
    uint32 voteEpoch;
}

/// @notice The `getProposal` view.
/// @param proposer The committee member who proposed.
/// @param epoch The task epoch of the attempt it belongs to.
/// @param round The round of that attempt.
/// @param attempt The attempt.
/// @param model The proposed global model.
/// @param acceptedHash `keccak256` of the accepted-submissions bitmap (the bitmap is in the log).
/// @param approvals Approving votes so far.
/// @param rejections Rejecting votes so far.
struct Proposal {
    address proposer;
    uint32 epoch;
    uint32 round;
    uint32 attempt;
    Cid model;
    bytes32 acceptedHash;
    uint32 approvals;
    uint32 rejections;
}

/// @title Flare's federated-learning coordinator: calls, views, events and errors
/// @notice docs/protocol.md is the specification; section numbers below refer to it. Every call
///         either reverts with the first failing check of its documented order and changes
///         nothing, or succeeds completely and emits an event for every state change.
/// @dev `UnsupportedCodec(uint64)` is declared by the `CID` library and is part of this ABI.
interface IFlareCoordinator {
    /// @notice A task exists, with its initial global model, manifest and parameters.
    event TaskCreated(uint256 indexed taskId, address indexed creator, Cid model, Cid manifest, TaskParams params);

    /// @notice A participant registered; its full BLS key lives only in this log.
    event ParticipantRegistered(uint256 indexed taskId, address indexed participant, uint32 index, bytes publicKey);

    /// @notice A round attempt opened: its base model, snapshot, expected committee size `k`
    ///         and deadlines (its seed follows in a later block, `SeedSealed`).
    event RoundOpened(
        uint256 indexed taskId,
        uint32 indexed round,
        uint32 attempt,
        uint32 epoch,
        Cid baseModel,
        uint32 registeredSnapshot,
        uint32 expectedCommittee,
        uint64 submissionDeadline,
        uint64 voteDeadline
    );

    /// @notice The attempt's seed was fixed from the `prevrandao` of this log's block.
    event SeedSealed(uint256 indexed taskId, uint32 indexed round, uint32 attempt, bytes32 seed);

    /// @notice A participant submitted its update for the current attempt.
    event UpdateSubmitted(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed participant,
        uint32 attempt,
        uint32 index,
        Cid update,
        uint64 sampleCount
    );

    /// @notice A participant won a committee seat; the proof lets anyone re-verify it.
    event SeatClaimed(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed member,
        uint32 attempt,
        bytes32 output,
        bytes proof,
        uint32 committeeSize
    );

    /// @notice A committee member proposed an aggregate and the submissions it accepted.
    event Proposed(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed proposer,
        uint32 attempt,
        uint32 proposalId,
        Cid model,
        bytes accepted
    );

    /// @notice A committee member voted; the counts are those after this vote.
    event Voted(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed voter,
        uint32 attempt,
        uint32 proposalId,
        bool approve,
        uint32 approvals,
        uint32 rejections
    );

    /// @notice A proposal reached quorum: the global model advanced.
    event RoundFinalized(
        uint256 indexed taskId,
        uint32 indexed round,
        uint32 attempt,
        uint32 proposalId,
        Cid model,
        uint32 submissionCount,
        bytes32 submissionsHash,
        bytes32 acceptedHash,
        uint32 committeeSize,
        bytes32 historyHash
    );

    /// @notice A round attempt ended without quorum; the next attempt opens in the same transaction.
    event RoundTimedOut(
        uint256 indexed taskId,
        uint32 indexed round,
        uint32 attempt,
        uint32 submissionCount,
        bytes32 submissionsHash,
        uint32 committeeSize
    );

    /// @notice So many members rejected that no proposal can reach quorum: the attempt closed early;
    ///         the next attempt opens (or the task fails) in the same transaction.
    event RoundRejected(
        uint256 indexed taskId,
        uint32 indexed round,
        uint32 attempt,
        uint32 submissionCount,
        bytes32 submissionsHash,
        uint32 committeeSize
    );

    /// @notice The last round finalized; the task is closed.
    event TaskCompleted(uint256 indexed taskId, uint32 rounds, Cid model, bytes32 historyHash);

    /// @notice Round `round` closed its last allowed attempt without a model; the task is closed.
    event TaskFailed(uint256 indexed taskId, uint32 round, uint32 attempts);

    /// @notice The creator cancelled the task; it is closed.
    event TaskCancelled(uint256 indexed taskId, uint32 round, uint32 attempt);

    /// @notice A permissioned task's admission root is now `root`: from the next registration
    ///         on, only the accounts of its tree may register.
    event AdmissionRootSet(uint256 indexed taskId, bytes32 root);

    /// @notice The task is staked: each participant bonds at least `minStake` wei to register,
    ///         and seats are drawn in proportion to stake (§2.6).
    event MinStakeSet(uint256 indexed taskId, uint256 minStake);

    /// @notice A participant of a staked task bonded `amount` wei, held by the contract until
    ///         the task ends or block `unlockBlock`, whichever comes first.
    event StakeBonded(uint256 indexed taskId, address indexed participant, uint256 amount, uint64 unlockBlock);

    /// @notice A participant took its stake back; it draws no seat from now on.
    event StakeWithdrawn(uint256 indexed taskId, address indexed participant, uint256 amount);

    /// @notice No task with this id.
    error UnknownTask(uint256 taskId);
    /// @notice Task parameter number `parameter` (0 = minClients … 7 = maxAttempts) is invalid.
    error InvalidTaskParameter(uint8 parameter);
    /// @notice A public key is not 256 bytes or a proof not 128 bytes.
    error InvalidLength(uint256 expected, uint256 actual);
    /// @notice The task completed, failed or was cancelled (`status`); it accepts no more
    ///         transactions.
    error TaskEnded(uint256 taskId, TaskStatus status);
    /// @notice Only the task's creator may start or cancel it.
    error NotTaskCreator(uint256 taskId, address account);
    /// @notice The sender is already a participant of this task.
    error AlreadyRegistered(uint256 taskId, address participant);
    /// @notice Another address registered this BLS public key in this task.
    error PublicKeyTaken(uint256 taskId, bytes32 publicKeyHash);
    /// @notice The proof of possession fails, or the key or proof is malformed or infinity.
    error InvalidPossessionProof(uint256 taskId, address participant);
    /// @notice Round 1 is already open.
    error TaskAlreadyStarted(uint256 taskId);
    /// @notice Fewer than `minClients` participants are registered.
    error TooFewParticipants(uint256 taskId, uint32 registered, uint32 required);
    /// @notice No round is open yet.
    error TaskNotStarted(uint256 taskId);
    /// @notice The block is past the submission deadline.
    error SubmissionWindowClosed(uint256 taskId, uint64 deadline);
    /// @notice No seed yet for this attempt: `sealSeed` (or a submission) fixes it first.
    error SeedNotSealed(uint256 taskId);
    /// @notice The attempt's seed is already fixed.
    error SeedAlreadySealed(uint256 taskId);
    /// @notice A seed is sealed only in a block after the one that opened the attempt.
    error SeedTooEarly(uint256 taskId, uint64 openedAt);
    /// @notice The sender is not a participant of this task.
    error NotRegistered(uint256 taskId, address account);
    /// @notice The sender has already submitted in this round attempt.
    error AlreadySubmitted(uint256 taskId, address participant);
    /// @notice An update must be trained on at least one sample.
    error ZeroSampleCount(uint256 taskId);
    /// @notice The sender registered after this attempt opened, so it may not draw a seat in it.
    error RegisteredAfterSnapshot(uint256 taskId, address participant);
    /// @notice The sender already holds a seat in this round attempt.
    error SeatAlreadyClaimed(uint256 taskId, address member);
    /// @notice The public key in the call is not the one the sender registered.
    error PublicKeyMismatch(uint256 taskId, address participant);
    /// @notice The VRF proof is malformed or does not verify for this attempt and key.
    error InvalidVrfProof(uint256 taskId, address participant);
    /// @notice The VRF proof is valid but its output lost the sortition.
    error NotSelected(uint256 taskId, bytes32 output);
    /// @notice Proposing and voting start only after the submission deadline.
    error SubmissionWindowOpen(uint256 taskId, uint64 deadline);
    /// @notice The block is past the vote deadline.
    error VoteWindowClosed(uint256 taskId, uint64 deadline);
    /// @notice The sender holds no seat in this round attempt.
    error NotCommitteeMember(uint256 taskId, address account);
    /// @notice The sender has already proposed in this round attempt.
    error AlreadyProposed(uint256 taskId, address member);
    /// @notice Fewer than `minCommittee` seats were claimed; the attempt can only time out.
    error CommitteeTooSmall(uint256 taskId, uint32 size, uint32 required);
    /// @notice Fewer than `minClients` updates were submitted in this attempt.
    error TooFewSubmissions(uint256 taskId, uint32 count, uint32 required);
    /// @notice The bitmap has the wrong length or a bit past the last submission.
    error InvalidAcceptedBitmap(uint256 taskId, uint32 submissionCount);
    /// @notice No proposal with this id in the task.
    error UnknownProposal(uint256 taskId, uint32 proposalId);
    /// @notice The proposal belongs to an earlier round attempt.
    error StaleProposal(uint256 taskId, uint32 proposalId);
    /// @notice The sender has already voted in this round attempt.
    error AlreadyVoted(uint256 taskId, address member);
    /// @notice A round attempt may be timed out only after its vote deadline.
    error VoteWindowOpen(uint256 taskId, uint64 deadline);
    /// @notice A permissioned task's admission root may not be zero (zero marks an open task).
    error ZeroAdmissionRoot();
    /// @notice The task is permissioned: register with `registerAdmitted` and a Merkle proof.
    error AdmissionProofRequired(uint256 taskId);
    /// @notice The task is open to anyone: it has no admission root to prove against or set.
    error OpenAdmission(uint256 taskId);
    /// @notice The Merkle proof does not lead from the sender to the task's admission root.
    error NotAdmitted(uint256 taskId, address account);
    /// @notice A staked task's minimum stake may not be zero (zero marks an unstaked task).
    error ZeroMinStake();
    /// @notice The task is staked: register with `registerStaked` and a deposit.
    error StakeRequired(uint256 taskId);
    /// @notice The task is not staked: it takes no deposit and holds none.
    error NotStaked(uint256 taskId);
    /// @notice The deposit is below the task's minimum stake.
    error StakeTooLow(uint256 taskId, uint256 amount, uint256 minStake);
    /// @notice A deposit of 2^128 wei or more (no chain holds that much).
    error StakeOverflow(uint256 taskId, uint256 amount);
    /// @notice The sender holds no stake in the task (never bonded, or already withdrew).
    error NothingToWithdraw(uint256 taskId, address account);
    /// @notice The task is still open and its stake lock lasts until block `unlockBlock`.
    error StakeLocked(uint256 taskId, uint64 unlockBlock);
    /// @notice Sending the stake back to the sender failed (its fallback reverted).
    error WithdrawalFailed(uint256 taskId, address account);

    /// @notice Create a task (§4.1); anyone may.
    /// @dev Checks, in order: `UnsupportedCodec(model.codec)`, `UnsupportedCodec(manifest.codec)`,
    ///      `InvalidTaskParameter(index)`. Emits `TaskCreated`.
    /// @param model The initial global model.
    /// @param manifest The task manifest, with the validation split the committee's filter runs on.
    /// @param params The task's parameters (§2.2).
    /// @return taskId The new task's id (tasks are numbered from 1).
    function createTask(Cid calldata model, Cid calldata manifest, TaskParams calldata params)
        external
        returns (uint256 taskId);

    /// @notice Create a permissioned task (§2.5, §4.1): only accounts in the Merkle tree of
    ///         `admissionRoot` may register, and the creator may replace the root until the task
    ///         ends. Anyone may create one.
    /// @dev Checks, in order: those of `createTask`, then `ZeroAdmissionRoot`. Emits
    ///      `TaskCreated`, `AdmissionRootSet`.
    /// @param model The initial global model.
    /// @param manifest The task manifest.
    /// @param params The task's parameters (§2.2).
    /// @param admissionRoot The root of the admitted accounts' tree (`Admission`).
    /// @return taskId The new task's id.
    function createPermissionedTask(
        Cid calldata model,
        Cid calldata manifest,
        TaskParams calldata params,
        bytes32 admissionRoot
    ) external returns (uint256 taskId);

    /// @notice Replace a permissioned task's admission root (§4.2): the creator admits or drops
    ///         devices. A dropped device that already registered stays registered.
    /// @dev Checks, in order: `UnknownTask`, `TaskEnded`, `NotTaskCreator`, `OpenAdmission`,
    ///      `ZeroAdmissionRoot`. Emits `AdmissionRootSet`.
    /// @param taskId The task.
    /// @param admissionRoot The new root.
    function setAdmissionRoot(uint256 taskId, bytes32 admissionRoot) external;

    /// @notice Create a staked task (§2.6, §4.1): anyone may register by bonding at least
    ///         `minStake` wei, and each seat is drawn with probability proportional to the
    ///         member's stake, not to its number of keys. Anyone may create one.
    /// @dev Checks, in order: those of `createTask`, then `ZeroMinStake`, `StakeOverflow`.
    ///      Emits `TaskCreated`, `MinStakeSet`.
    /// @param model The initial global model.
    /// @param manifest The task manifest.
    /// @param params The task's parameters (§2.2).
    /// @param minStake The least deposit, in wei, a participant bonds to register.
    /// @return taskId The new task's id.
    function createStakedTask(Cid calldata model, Cid calldata manifest, TaskParams calldata params, uint256 minStake)
        external
        returns (uint256 taskId);

    /// @notice `register` in a staked task, bonding `msg.value` wei as the sender's stake
    ///         (§4.2). The stake is locked until the task ends or `STAKE_LOCK_BLOCKS` blocks
    ///         after this one, whichever comes first.
    /// @dev Checks, in order: `UnknownTask`, `TaskEnded`, `NotStaked`, `StakeTooLow`,
    ///      `StakeOverflow`, then those of `register` from `AlreadyRegistered` on. Emits
    ///      `ParticipantRegistered`, `StakeBonded`.
    /// @param taskId The task.
    /// @param publicKey As for `register`.
    /// @param possessionProof As for `register`.
    function registerStaked(uint256 taskId, bytes calldata publicKey, bytes calldata possessionProof) external payable;

    /// @notice Take the sender's whole stake back (§4.13): once the task completed, failed or was
    ///         cancelled, or from its unlock block on. From then on the sender draws no seat.
    /// @dev Checks, in order: `UnknownTask`, `NotStaked`, `NothingToWithdraw`, `StakeLocked`.
    ///      The stake is zeroed and `StakeWithdrawn` emitted before the transfer, which forwards
    ///      all gas; a failed transfer reverts `WithdrawalFailed`.
    /// @param taskId The task.
    function withdrawStake(uint256 taskId) external;

    /// @notice `register` in a permissioned task, with the Merkle proof that the sender is
    ///         admitted (§4.2).
    /// @dev Checks, in order: `UnknownTask`, `TaskEnded`, `OpenAdmission`, `NotAdmitted`, then
    ///      those of `register` from `AlreadyRegistered` on. Emits `ParticipantRegistered`.
    /// @param taskId The task.
    /// @param publicKey As for `register`.
    /// @param possessionProof As for `register`.
    /// @param admissionProof The siblings of the sender's leaf up to the admission root.
    function registerAdmitted(
        uint256 taskId,
        bytes calldata publicKey,
        bytes calldata possessionProof,
        bytes32[] calldata admissionProof
    ) external;

    /// @notice Join a task with a BLS12-381 key, proving possession of it (§4.2).
    /// @dev Checks, in order: `UnknownTask`, `TaskEnded`, `AdmissionProofRequired` (a
    ///      permissioned task), `StakeRequired` (a staked task), `AlreadyRegistered`,
    ///      `InvalidLength(256, …)`, `InvalidLength(128, …)`, `PublicKeyTaken`,
    ///      `InvalidPossessionProof`. Emits `ParticipantRegistered` with the full key.
    /// @param taskId The task.
    /// @param publicKey The 256-byte EIP-2537 G2 public key (not infinity, unique in the task).
    /// @param possessionProof The 128-byte G1 signature of `ProofOfPossession.message(chain id,
    ///        this contract, taskId, sender)` under the PoP domain tag.
    function register(uint256 taskId, bytes calldata publicKey, bytes calldata possessionProof) external;

    /// @notice Open round 1 (§4.3); only the creator may, once `minClients` participants
    ///         registered in earlier blocks.
    /// @dev Checks, in order: `UnknownTask`, `TaskEnded`, `NotTaskCreator`, `TaskAlreadyStarted`,
    ///      `TooFewParticipants`. Emits `RoundOpened`.
    /// @param taskId The task.
    function startTask(uint256 taskId) external;

    /// @notice End the task for good (§4.11); only the creator may, at any time before it ends.
    /// @dev Checks, in order: `UnknownTask`, `TaskEnded`, `NotTaskCreator`. Emits `TaskCancelled`.
    /// @param taskId The task.
    function cancelTask(uint256 taskId) external;

    /// @notice Fix the current attempt's seed from this block's `prevrandao` (§4.10); anyone may,
    ///         in the submission window, in any block after the one that opened the attempt.
    /// @dev Checks, in order: task checks, `SubmissionWindowClosed`, `SeedAlreadySealed`,
    ///      `SeedTooEarly`. Emits `SeedSealed`.
    /// @param taskId The task.
    function sealSeed(uint256 taskId) external;

    /// @notice Submit the sender's update for the current attempt (§4.4); the first submission
    ///         of an attempt whose seed is not sealed yet seals it.
    /// @dev Checks, in order: task checks, `SubmissionWindowClosed`, `NotRegistered`,
    ///      `AlreadySubmitted`, `ZeroSampleCount`, `UnsupportedCodec`, then `SeedTooEarly` if it
    ///      would seal the seed in the opening block. Extends the attempt's submissions hash.
    ///      Emits `SeedSealed` (when it seals), `UpdateSubmitted`.
    /// @param taskId The task.
    /// @param update The update's CID.
    /// @param sampleCount The number of samples the update was trained on (at least 1).
    function submit(uint256 taskId, Cid calldata update, uint64 sampleCount) external;

    /// @notice Claim a committee seat of the current attempt with a VRF proof (§4.5).
    /// @dev Checks, in order: task checks, `SubmissionWindowClosed`, `SeedNotSealed`,
    ///      `NotRegistered`, `RegisteredAfterSnapshot`, `SeatAlreadyClaimed`, `InvalidLength(256, …)`,
    ///      `PublicKeyMismatch`, `InvalidLength(128, …)`, `InvalidVrfProof`, `NotSelected`.
    ///      The proof is verified on chain (hash-to-G1 and one pairing check) and the seat is
    ///      granted iff `keccak256(proof) * registeredSnapshot < expectedCommittee * 2^256`; in a
    ///      staked task iff `keccak256(proof) * stakeSnapshot < expectedCommittee * stake * 2^256`
    ///      with the sender's current stake (zero once withdrawn, so never). `expectedCommittee`
    ///      is the attempt's (`getRound`), which an under-filled attempt before it doubled.
    ///      Emits `SeatClaimed` with the proof.
    /// @param taskId The task.
    /// @param publicKey The sender's registered 256-byte key, authenticated by its stored hash.
    /// @param proof The 128-byte BLS signature of the attempt's VRF input (§2.4).
    function claimSeat(uint256 taskId, bytes calldata publicKey, bytes calldata proof) external;

    /// @notice Propose the attempt's aggregate and the submissions it accepted (§4.6).
    /// @dev Checks, in order: task checks, `SubmissionWindowOpen`, `VoteWindowClosed`,
    ///      `NotCommitteeMember`, `AlreadyProposed`, `CommitteeTooSmall`, `TooFewSubmissions`,
    ///      `UnsupportedCodec`, `InvalidAcceptedBitmap`. Emits `Proposed` with the bitmap.
    /// @param taskId The task.
    /// @param model The proposed global model.
    /// @param accepted The accepted-submissions bitmap: `ceil(submissionCount / 8)` bytes,
    ///        bit `i % 8` of byte `i / 8` for submission `i`, no bit past the last submission.
    /// @return proposalId The new proposal's id (numbered from 1 across the task's rounds).
    function propose(uint256 taskId, Cid calldata model, bytes calldata accepted) external returns (uint32 proposalId);

    /// @notice Approve or reject a proposal of the current attempt (§4.7).
    /// @dev Checks, in order: task checks, `SubmissionWindowOpen`, `VoteWindowClosed`,
    ///      `NotCommitteeMember`, `AlreadyVoted`, `CommitteeTooSmall`, `UnknownProposal`,
    ///      `StaleProposal`. Emits `Voted`. The approval that reaches the quorum threshold also
    ///      finalizes the round (`RoundFinalized`) and then completes the task (`TaskCompleted`)
    ///      or opens the next round (`RoundOpened`). The rejection after which fewer members
    ///      than the threshold are left who have not rejected closes the attempt
    ///      (`RoundRejected`) and opens the next one (`RoundOpened`, with the same expected
    ///      committee: a rejecting committee was full) or fails the task (`TaskFailed`).
    /// @param taskId The task.
    /// @param proposalId The proposal.
    /// @param approve True to approve, false to reject.
    function vote(uint256 taskId, uint32 proposalId, bool approve) external;

    /// @notice Close an attempt whose vote window ended without quorum and open the next attempt
    ///         of the same round from the same base model (§4.8); anyone may. After the round's
    ///         last allowed attempt the task fails instead.
    /// @dev Checks, in order: task checks, `VoteWindowOpen`. Emits `RoundTimedOut`, then
    ///      `RoundOpened` or `TaskFailed`. The next attempt's expected committee is twice this
    ///      one's (saturating) if fewer than `minCommittee` seats were claimed, else this one's,
    ///      so that idle keys cannot hold every attempt below `minCommittee`.
    /// @param taskId The task.
    function timeout(uint256 taskId) external;

    /// @notice The number of tasks created, which is also the newest task id.
    /// @return The task count.
    function taskCount() external view returns (uint256);

    /// @notice A task's parameters, current model and round position.
    /// @dev Reverts `UnknownTask`.
    /// @param taskId The task.
    /// @return The `Task` record.
    function getTask(uint256 taskId) external view returns (Task memory);

    /// @notice The current round attempt, or the last one once the task ended.
    /// @dev Reverts `UnknownTask`, then `TaskNotStarted` for a task that never started (cancelled
    ///      or not).
    /// @param taskId The task.
    /// @return The `Round` record.
    function getRound(uint256 taskId) external view returns (Round memory);

    /// @notice A participant's record; all zero (`registered == false`) for a stranger.
    /// @dev Reverts `UnknownTask`.
    /// @param taskId The task.
    /// @param account The address.
    /// @return The `Participant` record.
    function getParticipant(uint256 taskId, address account) external view returns (Participant memory);

    /// @notice A permissioned task's admission root; zero for a task open to anyone.
    /// @dev Reverts `UnknownTask`.
    /// @param taskId The task.
    /// @return The root.
    function admissionRoot(uint256 taskId) external view returns (bytes32);

    /// @notice A staked task's minimum stake; zero for a task that is not staked.
    /// @dev Reverts `UnknownTask`.
    /// @param taskId The task.
    /// @return The minimum stake in wei.
    function minStake(uint256 taskId) external view returns (uint256);

    /// @notice What `account` has bonded in a staked task and not withdrawn; its seat weight.
    /// @dev Reverts `UnknownTask`.
    /// @param taskId The task.
    /// @param account The address.
    /// @return The stake in wei.
    function stakeOf(uint256 taskId, address account) external view returns (uint256);

    /// @notice The stake the current attempt's sortition divides by: what the participants of
    ///         its snapshot (`registeredSnapshot`) had bonded when it opened; zero for a task
    ///         that is not staked.
    /// @dev Reverts `UnknownTask`, then `TaskNotStarted`.
    /// @param taskId The task.
    /// @return The total stake in wei.
    function stakeSnapshot(uint256 taskId) external view returns (uint256);

    /// @notice A proposal and its vote counts.
    /// @dev Reverts `UnknownTask`, then `UnknownProposal`.
    /// @param taskId The task.
    /// @param proposalId The proposal (from 1).
    /// @return The `Proposal` record.
    function getProposal(uint256 taskId, uint32 proposalId) external view returns (Proposal memory);
}

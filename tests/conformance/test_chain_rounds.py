"""Conformance: submissions, a full round with its committee, finalization and completion."""

from eth_utils import keccak

from conformance.scenario import INITIAL_MODEL, World, content
from flare.chain import (
    ContentRef,
    Proposal,
    Proposed,
    RoundFinalized,
    RoundOpened,
    RoundRejected,
    SeatClaim,
    SeatClaimed,
    SeedSealed,
    Submission,
    TaskCompleted,
    TaskStatus,
    UpdateSubmitted,
    Voted,
)
from flare.chain.api import errors as e
from flare.chain.api.derive import (
    EMPTY_HISTORY,
    encode_accepted,
    next_history_hash,
    submissions_hash,
)
from flare.storage import CODEC_DAG_PB

NEW_MODEL = content("aggregate of round 1")


def test_submit_logs_indexes_and_chains_the_hash(world: World) -> None:
    task_id = world.started_task()
    seed = world.chain.current_round(task_id).seed
    update = ContentRef(CODEC_DAG_PB, keccak(b"big update"))
    receipt = world.by(2).submit(task_id, update, 640)
    assert receipt.one(UpdateSubmitted) == UpdateSubmitted(
        receipt.block_number, 0, task_id, 1, world.address(2), 0, 0, update, 640
    )
    world.by(0).submit(task_id, content("second"), 1)
    current = world.chain.current_round(task_id)
    assert current.submission_count == 2
    assert current.submissions_hash == submissions_hash(
        seed, [(world.address(2), update, 640), (world.address(0), content("second"), 1)]
    )
    assert world.chain.participant(task_id, world.address(2)).submit_epoch == current.epoch
    assert world.chain.submissions(task_id, 1, 0) == [
        Submission(0, world.address(2), update, 640),
        Submission(1, world.address(0), content("second"), 1),
    ]


def test_the_first_submission_seals_the_seed(world: World) -> None:
    task_id = world.started_task(sealed=False)
    receipt = world.by(1).submit(task_id, content("first"), 5)
    assert [type(event) for event in receipt.events] == [SeedSealed, UpdateSubmitted]
    current = world.chain.current_round(task_id)
    assert current.seed != bytes(32)
    assert receipt.events[0] == SeedSealed(receipt.block_number, 0, task_id, 1, 0, current.seed)
    assert current.submissions_hash == submissions_hash(
        current.seed, [(world.address(1), content("first"), 5)]
    )
    assert world.chain.attempt_seed(task_id, 1, 0) == current.seed
    later = world.by(2).submit(task_id, content("second"), 5)
    assert [type(event) for event in later.events] == [UpdateSubmitted]
    assert world.chain.current_round(task_id).seed == current.seed


def test_submit_window_includes_its_deadline_block(world: World) -> None:
    task_id = world.started_task()
    deadline = world.chain.current_round(task_id).submission_deadline
    world.mine_to(deadline - 1)
    assert world.by(0).submit(task_id, content("last minute"), 1).block_number == deadline
    world.reverts(
        e.SubmissionWindowClosed(task_id, deadline),
        lambda: world.by(1).submit(task_id, content("late"), 1),
    )
    # The window is checked before the sender: a stranger learns the window closed too.
    world.reverts(
        e.SubmissionWindowClosed(task_id, deadline),
        lambda: world.by(9).submit(task_id, content("late"), 1),
    )


def test_submit_rejections(world: World) -> None:
    task_id = world.started_task()
    world.reverts(
        e.NotRegistered(task_id, world.address(9)),
        lambda: world.by(9).submit(task_id, content("u"), 1),
    )
    bad_codec = ContentRef(0x71, keccak(b"x"))
    world.reverts(e.ZeroSampleCount(task_id), lambda: world.by(0).submit(task_id, bad_codec, 0))
    world.reverts(e.UnsupportedCodec(0x71), lambda: world.by(0).submit(task_id, bad_codec, 1))
    world.submit(task_id, 0)
    world.reverts(
        e.AlreadySubmitted(task_id, world.address(0)),
        lambda: world.by(0).submit(task_id, content("again"), 1),
    )


def test_a_participant_registered_after_the_opening_may_submit(world: World) -> None:
    task_id = world.started_task(registered=2)
    world.register(task_id, 8)
    world.submit(task_id, 8)
    assert world.chain.current_round(task_id).submission_count == 1


def test_full_round_with_committee_finalizes_on_quorum(world: World) -> None:
    task_id = world.started_task(registered=4, quorum_bps=6_000)
    opened = world.chain.current_round(task_id)
    world.submit(task_id, 0, 1, 2)

    for size, receipt in enumerate(world.claim(task_id, 0, 1, 2, 3), start=1):
        claimed = receipt.one(SeatClaimed)
        assert (claimed.round, claimed.attempt, claimed.committee_size) == (1, 0, size)
        assert claimed.output == keccak(claimed.proof)
        assert claimed.member == world.address(size - 1)
    current = world.chain.current_round(task_id)
    assert (current.committee_size, current.quorum_threshold) == (4, 3)  # ceil(0.6 * 4)
    assert world.chain.participant(task_id, world.address(3)).seat_epoch == current.epoch

    world.to_voting(task_id)
    accepted = encode_accepted([0, 2], 3)
    receipt = world.by(1).propose(task_id, NEW_MODEL, accepted)
    assert receipt.one(Proposed) == Proposed(
        receipt.block_number, 0, task_id, 1, world.address(1), 0, 1, NEW_MODEL, accepted
    )
    assert world.chain.proposal(task_id, 1) == Proposal(
        world.address(1), current.epoch, 1, 0, NEW_MODEL, keccak(accepted), 0, 0
    )
    assert world.chain.task(task_id).proposal_count == 1
    assert world.chain.participant(task_id, world.address(1)).propose_epoch == current.epoch

    tallies = [(0, True, 1, 0), (2, False, 1, 1), (3, True, 2, 1)]
    for voter, approve, approvals, rejections in tallies:
        receipt = world.by(voter).vote(task_id, 1, approve)
        assert receipt.events == (
            Voted(
                receipt.block_number,
                0,
                task_id,
                1,
                world.address(voter),
                0,
                1,
                approve,
                approvals,
                rejections,
            ),
        )
    assert world.chain.task(task_id).model == INITIAL_MODEL

    receipt = world.by(1).vote(task_id, 1, True)
    assert [type(event) for event in receipt.events] == [Voted, RoundFinalized, RoundOpened]
    following = world.chain.current_round(task_id)
    history = next_history_hash(
        EMPTY_HISTORY, 1, 0, opened.seed, current.submissions_hash, keccak(accepted), NEW_MODEL
    )
    block = receipt.block_number
    assert receipt.events[1] == RoundFinalized(
        block, 1, task_id, 1, 0, 1, NEW_MODEL, 3, current.submissions_hash, keccak(accepted), 4,
        history,
    )  # fmt: skip
    assert receipt.events[2] == RoundOpened(
        block, 2, task_id, 2, 0, 2, NEW_MODEL, 4, 100, block + 10, block + 20
    )
    task = world.chain.task(task_id)
    assert (task.model, task.history_hash, task.round, task.attempt, task.epoch) == (
        NEW_MODEL,
        history,
        2,
        0,
        2,
    )
    # Round 2 has no seed until a later block seals one.
    assert (following.seed, following.submissions_hash) == (bytes(32), bytes(32))
    assert (following.submission_count, following.committee_size) == (0, 0)
    assert world.chain.proposal(task_id, 1).approvals == 3

    # Logs of the closed attempt read back and check against RoundFinalized's hashes.
    assert [s.participant for s in world.chain.submissions(task_id, 1, 0)] == [
        world.address(0),
        world.address(1),
        world.address(2),
    ]
    committee = world.chain.committee(task_id, 1, 0)
    assert [seat.member for seat in committee] == [world.address(n) for n in range(4)]
    assert all(isinstance(seat, SeatClaim) for seat in committee)
    assert world.chain.accepted_bitmap(task_id, 1) == accepted
    assert world.chain.round_opened(task_id, 2, 0) == receipt.events[2]

    # Flags are per attempt: everyone may act again in round 2.
    world.submit(task_id, 0, 1)
    world.claim(task_id, 0)


def test_rejections_close_the_attempt_once_quorum_is_out_of_reach(world: World) -> None:
    # Committee of 4, threshold ceil(0.6 * 4) = 3: one rejection leaves 3 who may still
    # approve; the second leaves 2, so no proposal can reach quorum any more.
    task_id = world.voting_task(quorum_bps=6_000)
    world.by(0).propose(task_id, NEW_MODEL, encode_accepted([0, 1, 2], 3))
    world.by(3).vote(task_id, 1, True)
    first = world.by(0).vote(task_id, 1, False)
    assert [type(event) for event in first.events] == [Voted]
    assert world.chain.current_round(task_id).rejections == 1
    closing = world.chain.current_round(task_id)
    receipt = world.by(1).vote(task_id, 1, False)
    assert [type(event) for event in receipt.events] == [Voted, RoundRejected, RoundOpened]
    assert receipt.events[1] == RoundRejected(
        receipt.block_number, 1, task_id, 1, 0, 3, closing.submissions_hash, 4
    )
    retry = world.chain.current_round(task_id)
    assert (retry.round, retry.attempt, retry.rejections) == (1, 1, 0)
    assert world.chain.proposal(task_id, 1).rejections == 2
    assert world.chain.task(task_id).model == INITIAL_MODEL
    # The closed attempt's logs still check out against RoundRejected's hash.
    assert len(world.chain.submissions(task_id, 1, 0)) == 3
    assert len(world.chain.committee(task_id, 1, 0)) == 4


def test_only_the_proposal_reaching_quorum_finalizes(world: World) -> None:
    task_id = world.voting_task(quorum_bps=5_001)  # threshold ceil(0.5001 * 4) = 3
    world.by(0).propose(task_id, content("honest"), encode_accepted([0, 1, 2], 3))
    world.by(1).propose(task_id, content("other"), encode_accepted([1], 3))
    world.by(0).vote(task_id, 2, True)
    world.by(1).vote(task_id, 1, True)
    world.by(2).vote(task_id, 1, True)
    assert world.chain.task(task_id).round == 1
    receipt = world.by(3).vote(task_id, 1, True)
    assert receipt.one(RoundFinalized).proposal_id == 1
    assert world.chain.task(task_id).model == content("honest")


def test_an_empty_bitmap_is_a_valid_proposal(world: World) -> None:
    task_id = world.voting_task(members=(0,), quorum_bps=10_000)
    world.by(0).propose(task_id, INITIAL_MODEL, bytes(1))
    receipt = world.by(0).vote(task_id, 1, True)
    assert receipt.one(RoundFinalized).accepted_hash == keccak(bytes(1))


def test_task_completes_after_max_rounds(world: World) -> None:
    task_id = world.voting_task(members=(0, 1), max_rounds=1, quorum_bps=10_000)
    world.by(0).propose(task_id, NEW_MODEL, encode_accepted([1], 3))
    world.by(0).vote(task_id, 1, True)
    last_round = world.chain.current_round(task_id)
    receipt = world.by(1).vote(task_id, 1, True)
    assert [type(event) for event in receipt.events] == [Voted, RoundFinalized, TaskCompleted]
    finalized = receipt.one(RoundFinalized)
    assert receipt.one(TaskCompleted) == TaskCompleted(
        receipt.block_number, 2, task_id, 1, NEW_MODEL, finalized.history_hash
    )
    task = world.chain.task(task_id)
    assert (task.status, task.model, task.round) == (TaskStatus.COMPLETED, NEW_MODEL, 1)
    assert world.chain.current_round(task_id) == last_round
    assert world.chain.submissions(task_id, 1, 0)[1].participant == world.address(1)

    identity = world.ids[7]
    proof = identity.possession_proof(world.chain, task_id)
    for action in (
        lambda: world.by(7).register(task_id, identity.public_key, proof),
        lambda: world.by(0).start_task(task_id),
        lambda: world.by(0).cancel_task(task_id),
        lambda: world.by(2).seal_seed(task_id),
        lambda: world.by(2).submit(task_id, content("late"), 1),
        lambda: world.by(2).claim_seat(task_id, world.ids[2].public_key, bytes(128)),
        lambda: world.by(2).propose(task_id, NEW_MODEL, b""),
        lambda: world.by(2).vote(task_id, 1, True),
        lambda: world.by(2).timeout(task_id),
    ):
        world.reverts(e.TaskEnded(task_id, TaskStatus.COMPLETED), action)
    world.mine(50)
    world.reverts(e.TaskEnded(task_id, TaskStatus.COMPLETED), lambda: world.by(2).timeout(task_id))


def test_history_hash_chains_every_finalized_round(world: World) -> None:
    task_id = world.started_task(registered=2, max_rounds=2, quorum_bps=10_000)
    history = EMPTY_HISTORY
    for round_number in (1, 2):
        world.submit(task_id, 0, 1)
        world.claim(task_id, 0)
        current = world.chain.current_round(task_id)
        world.to_voting(task_id)
        model = content(f"model {round_number}")
        world.by(0).propose(task_id, model, encode_accepted([0, 1], 2))
        proposal_id = world.chain.task(task_id).proposal_count
        world.by(0).vote(task_id, proposal_id, True)
        history = next_history_hash(
            history, round_number, 0, current.seed, current.submissions_hash,
            keccak(encode_accepted([0, 1], 2)), model,
        )  # fmt: skip
        assert world.chain.task(task_id).history_hash == history
    assert world.chain.task(task_id).status is TaskStatus.COMPLETED

"""Conformance: seat claims and sortition, proposals, votes, timeouts and retries."""

import pytest
from eth_utils import keccak

from conformance.scenario import INITIAL_MODEL, World, content
from flare.chain import (
    ContentRef,
    RoundOpened,
    RoundRejected,
    RoundTimedOut,
    SeedSealed,
    TaskFailed,
    TaskStatus,
)
from flare.chain.api import errors as e
from flare.chain.api.derive import encode_accepted, round_seed
from flare.crypto import vrf

NEW_MODEL = content("aggregate")


# -- the seed --------------------------------------------------------------------------


def test_no_seat_before_the_seed_is_sealed(world: World) -> None:
    task_id = world.started_task(sealed=False)
    me = world.ids[0]
    world.reverts(
        e.SeedNotSealed(task_id), lambda: world.by(0).claim_seat(task_id, me.public_key, bytes(128))
    )
    world.reverts(e.SeedNotSealed(task_id), lambda: world.chain.attempt_seed(task_id, 1, 0))
    receipt = world.by(9).seal_seed(task_id)  # anyone may seal, registered or not
    seed = world.chain.current_round(task_id).seed
    assert receipt.events == (SeedSealed(receipt.block_number, 0, task_id, 1, 0, seed),)
    assert world.chain.current_round(task_id).submissions_hash == seed
    assert world.chain.attempt_seed(task_id, 1, 0) == seed
    world.reverts(e.SeedAlreadySealed(task_id), lambda: world.by(1).seal_seed(task_id))
    world.claim(task_id, 0)


def test_the_seed_is_sealed_only_in_the_submission_window(world: World) -> None:
    task_id = world.started_task(sealed=False)
    deadline = world.chain.current_round(task_id).submission_deadline
    world.mine_to(deadline)
    world.reverts(
        e.SubmissionWindowClosed(task_id, deadline), lambda: world.by(0).seal_seed(task_id)
    )


def test_a_key_ground_for_the_opening_block_draws_nothing(world: World) -> None:
    """The grinding attack through ``timeout``: the old rule seeded an attempt with the
    ``prevrandao`` of the block that opened it, which anyone knows a block ahead. The seed
    now comes from a later block, so a proof made for the opening block's randomness is no
    proof at all, and a key registered after the opening draws nothing either."""
    task_id = world.started_task(registered=4, expected_committee=2)
    world.to_expiry(task_id)
    opened = world.by(8).timeout(task_id).one(RoundOpened)
    contract = world.chain.contract_address
    ground_seed = round_seed(
        world.chain.chain_id,
        contract,
        task_id,
        1,
        1,
        INITIAL_MODEL.digest,
        world.prevrandao(opened.block_number),
    )
    world.by(8).seal_seed(task_id)
    sealed = world.chain.current_round(task_id).seed
    assert sealed != ground_seed
    for who in range(4):
        proof = vrf.prove(world.ids[who].bls_key, world.vrf_message(task_id, 1, 1, ground_seed))
        world.reverts(
            e.InvalidVrfProof(task_id, world.address(who)),
            lambda proof=proof, who=who: world.by(who).claim_seat(
                task_id, world.ids[who].public_key, proof
            ),
        )
    world.register(task_id, 6)  # too late for this attempt, whatever its key
    world.reverts(
        e.RegisteredAfterSnapshot(task_id, world.address(6)), lambda: world.claim(task_id, 6)
    )


# -- claimSeat -----------------------------------------------------------------------


def test_seat_claim_rejections_in_check_order(world: World) -> None:
    task_id = world.started_task(registered=4)
    me = world.ids[1]
    proof = world.proof(task_id, 1)
    actor = world.by(1)
    world.reverts(
        e.NotRegistered(task_id, world.address(9)),
        lambda: world.by(9).claim_seat(task_id, world.ids[9].public_key, proof),
    )
    world.reverts(e.InvalidLength(256, 3), lambda: actor.claim_seat(task_id, b"key", proof))
    world.reverts(
        e.PublicKeyMismatch(task_id, me.address),
        lambda: actor.claim_seat(task_id, world.ids[2].public_key, world.proof(task_id, 2)),
    )
    world.reverts(
        e.InvalidLength(128, 127), lambda: actor.claim_seat(task_id, me.public_key, proof[1:])
    )
    world.claim(task_id, 1)
    world.reverts(
        e.SeatAlreadyClaimed(task_id, me.address),
        lambda: actor.claim_seat(task_id, me.public_key, proof),
    )


def _other_attempt_proof(world: World, task_id: int, who: int, change: str) -> bytes:
    current = world.chain.current_round(task_id)
    fields = {
        "task_id": task_id,
        "round_number": current.round,
        "attempt": current.attempt,
        "seed": current.seed,
    }
    fields.update(
        {
            "round": {"round_number": current.round + 1},
            "attempt": {"attempt": current.attempt + 1},
            "task": {"task_id": task_id + 1},
            "seed": {"seed": keccak(current.seed)},
        }[change]
    )
    return vrf.prove(world.ids[who].bls_key, world.vrf_message(**fields))


@pytest.mark.parametrize("change", ["round", "attempt", "task", "seed"])
def test_a_proof_for_another_draw_is_invalid(world: World, change: str) -> None:
    task_id = world.started_task()
    me = world.ids[0]
    proof = _other_attempt_proof(world, task_id, 0, change)
    world.reverts(
        e.InvalidVrfProof(task_id, me.address),
        lambda: world.by(0).claim_seat(task_id, me.public_key, proof),
    )


@pytest.mark.parametrize("forgery", ["other_key", "possession_proof", "zero", "garbage"])
def test_forged_proofs_are_invalid(world: World, forgery: str) -> None:
    task_id = world.started_task()
    me = world.ids[0]
    proof = {
        "other_key": world.proof(task_id, 1),
        "possession_proof": me.possession_proof(world.chain, task_id),
        "zero": bytes(128),
        "garbage": b"\x01" * 128,
    }[forgery]
    world.reverts(
        e.InvalidVrfProof(task_id, me.address),
        lambda: world.by(0).claim_seat(task_id, me.public_key, proof),
    )


def test_sortition_with_a_small_committee_refuses_losing_outputs(world: World) -> None:
    registered = 8
    task_id = world.started_task(registered=registered, expected_committee=1)
    outputs = {who: vrf.output(world.proof(task_id, who)) for who in range(registered)}
    losers = [w for w, out in outputs.items() if not vrf.seat_granted(out, 1, registered)]
    winners = [w for w in outputs if w not in losers]
    assert losers, "with k=1 of 8, some output loses unless the seed is astronomically lucky"
    world.reverts(
        e.NotSelected(task_id, outputs[losers[0]]),
        lambda: world.claim(task_id, losers[0]),
    )
    world.claim(task_id, *winners)
    assert world.chain.current_round(task_id).committee_size == len(winners)


def test_only_participants_in_the_snapshot_may_claim(world: World) -> None:
    task_id = world.started_task(registered=2)
    world.register(task_id, 5)
    world.reverts(
        e.RegisteredAfterSnapshot(task_id, world.address(5)), lambda: world.claim(task_id, 5)
    )


def test_seats_are_claimed_only_in_the_submission_window(world: World) -> None:
    task_id = world.started_task()
    deadline = world.chain.current_round(task_id).submission_deadline
    world.mine_to(deadline - 1)
    world.claim(task_id, 0)
    world.reverts(e.SubmissionWindowClosed(task_id, deadline), lambda: world.claim(task_id, 1))


# -- propose --------------------------------------------------------------------------


def test_proposals_wait_for_the_submission_deadline(world: World) -> None:
    task_id = world.started_task()
    world.submit(task_id, 0, 1, 2)
    world.claim(task_id, 0)
    deadline = world.chain.current_round(task_id).submission_deadline
    world.mine_to(deadline - 1)
    bitmap = encode_accepted([0], 3)
    for action in (
        lambda: world.by(0).propose(task_id, NEW_MODEL, bitmap),
        lambda: world.by(0).vote(task_id, 1, True),
    ):
        world.reverts(e.SubmissionWindowOpen(task_id, deadline), action)


def test_proposals_and_votes_end_with_the_vote_window(world: World) -> None:
    task_id = world.voting_task()
    bitmap = encode_accepted([0], 3)
    world.by(0).propose(task_id, NEW_MODEL, bitmap)
    deadline = world.chain.current_round(task_id).vote_deadline
    world.mine_to(deadline - 1)
    world.by(1).propose(task_id, NEW_MODEL, bitmap)
    for action in (
        lambda: world.by(2).propose(task_id, NEW_MODEL, bitmap),
        lambda: world.by(2).vote(task_id, 1, True),
    ):
        world.reverts(e.VoteWindowClosed(task_id, deadline), action)


def test_propose_rejections(world: World) -> None:
    task_id = world.voting_task(members=(0, 1))
    for outsider in (3, 9):  # a registered non-member and a stranger
        world.reverts(
            e.NotCommitteeMember(task_id, world.address(outsider)),
            lambda: world.by(outsider).propose(task_id, NEW_MODEL, bytes(1)),  # noqa: B023
        )
    bad_codec = ContentRef(0x71, NEW_MODEL.digest)
    world.reverts(e.UnsupportedCodec(0x71), lambda: world.by(0).propose(task_id, bad_codec, b""))
    for bitmap in (b"", bytes(2), b"\x08", b"\xff"):  # wrong lengths, bits past submission 2
        world.reverts(
            e.InvalidAcceptedBitmap(task_id, 3),
            lambda: world.by(0).propose(task_id, NEW_MODEL, bitmap),  # noqa: B023
        )
    world.by(0).propose(task_id, NEW_MODEL, b"\x07")
    world.reverts(
        e.AlreadyProposed(task_id, world.address(0)),
        lambda: world.by(0).propose(task_id, NEW_MODEL, b"\x07"),
    )


def test_propose_needs_min_clients_submissions(world: World) -> None:
    task_id = world.voting_task(submitters=(0,), min_clients=2)
    world.reverts(
        e.TooFewSubmissions(task_id, 1, 2),
        lambda: world.by(0).propose(task_id, NEW_MODEL, b"\x01"),
    )


# -- vote -----------------------------------------------------------------------------


def test_vote_rejections(world: World) -> None:
    task_id = world.voting_task(quorum_bps=6_000)  # one rejection leaves quorum reachable
    world.by(0).propose(task_id, NEW_MODEL, b"\x07")
    world.reverts(
        e.NotCommitteeMember(task_id, world.address(9)), lambda: world.by(9).vote(task_id, 1, True)
    )
    world.reverts(e.UnknownProposal(task_id, 0), lambda: world.by(1).vote(task_id, 0, True))
    world.reverts(e.UnknownProposal(task_id, 2), lambda: world.by(1).vote(task_id, 2, True))
    world.by(1).vote(task_id, 1, False)
    world.reverts(
        e.AlreadyVoted(task_id, world.address(1)), lambda: world.by(1).vote(task_id, 1, True)
    )


def test_a_committee_below_minimum_can_only_time_out_then_retry(world: World) -> None:
    task_id = world.voting_task(members=(0,), min_committee=2)
    world.reverts(
        e.CommitteeTooSmall(task_id, 1, 2), lambda: world.by(0).propose(task_id, NEW_MODEL, b"\x07")
    )
    world.reverts(e.CommitteeTooSmall(task_id, 1, 2), lambda: world.by(0).vote(task_id, 1, True))
    failed = world.chain.current_round(task_id)
    world.reverts(
        e.VoteWindowOpen(task_id, failed.vote_deadline), lambda: world.by(5).timeout(task_id)
    )
    world.to_expiry(task_id)
    receipt = world.by(9).timeout(task_id)  # anyone, registered or not
    assert [type(event) for event in receipt.events] == [RoundTimedOut, RoundOpened]
    assert receipt.one(RoundTimedOut) == RoundTimedOut(
        receipt.block_number, 0, task_id, 1, 0, 3, failed.submissions_hash, 1
    )
    retry = world.chain.current_round(task_id)
    block = receipt.block_number
    assert receipt.one(RoundOpened) == RoundOpened(
        block, 1, task_id, 1, 1, 2, INITIAL_MODEL, 4, 200, block + 10, block + 20
    )
    assert retry.expected_committee == 200  # one seat of minimum 2: k = 100 doubles
    assert retry.seed == bytes(32)
    assert (retry.round, retry.attempt, retry.epoch, retry.submission_count) == (1, 1, 2, 0)
    task = world.chain.task(task_id)
    assert (task.status, task.round, task.attempt, task.model) == (
        TaskStatus.RUNNING,
        1,
        1,
        INITIAL_MODEL,
    )
    # The closed attempt's logs still check out against RoundTimedOut's hash.
    assert len(world.chain.submissions(task_id, 1, 0)) == 3
    assert len(world.chain.committee(task_id, 1, 0)) == 1

    # The retry is a full new attempt with its own seed: flags reset, and it can finalize.
    world.submit(task_id, 0, 1, 2)
    assert world.chain.current_round(task_id).seed not in (bytes(32), failed.seed)
    world.claim(task_id, 0, 1)
    world.to_voting(task_id)
    world.by(1).propose(task_id, NEW_MODEL, b"\x05")
    world.by(0).vote(task_id, 1, True)
    world.by(1).vote(task_id, 1, True)
    assert world.chain.task(task_id).model == NEW_MODEL
    assert world.chain.current_round(task_id).round == 2


def test_a_proposal_of_a_timed_out_attempt_is_stale(world: World) -> None:
    task_id = world.voting_task(members=(0, 1), quorum_bps=10_000)
    world.by(0).propose(task_id, NEW_MODEL, b"\x07")
    world.by(0).vote(task_id, 1, True)
    world.to_expiry(task_id)
    world.by(0).timeout(task_id)
    world.submit(task_id, 0, 1)
    world.claim(task_id, 0, 1)
    world.to_voting(task_id)
    world.reverts(e.StaleProposal(task_id, 1), lambda: world.by(1).vote(task_id, 1, True))
    assert world.chain.proposal(task_id, 1).approvals == 1


def test_timeout_of_an_attempt_nobody_joined(world: World) -> None:
    task_id = world.started_task(sealed=False)
    world.to_expiry(task_id)
    receipt = world.by(0).timeout(task_id)
    # Never sealed: no seed, so no submissions hash either.
    assert receipt.one(RoundTimedOut) == RoundTimedOut(
        receipt.block_number, 0, task_id, 1, 0, 0, bytes(32), 0
    )
    world.reverts(e.SeedNotSealed(task_id), lambda: world.chain.attempt_seed(task_id, 1, 0))
    assert world.chain.submissions(task_id, 1, 0) == []
    world.to_expiry(task_id)
    world.by(0).timeout(task_id)
    current = world.chain.current_round(task_id)
    assert (current.round, current.attempt, current.epoch) == (1, 2, 3)


def test_a_round_that_never_decides_fails_the_task_after_max_attempts(world: World) -> None:
    """Liveness: a committee that can never reach ``min_committee`` (here the expected
    committee is unreachable) cannot stall the task forever."""
    task_id = world.started_task(registered=2, min_committee=3, max_attempts=3, sealed=False)
    for attempt in range(3):
        world.submit(task_id, 0, 1)
        world.claim(task_id, 0, 1)
        world.to_expiry(task_id)
        closing = world.chain.current_round(task_id)
        receipt = world.by(5).timeout(task_id)
        if attempt < 2:
            assert [type(event) for event in receipt.events] == [RoundTimedOut, RoundOpened]
    assert [type(event) for event in receipt.events] == [RoundTimedOut, TaskFailed]
    assert receipt.events[1] == TaskFailed(receipt.block_number, 1, task_id, 1, 3)
    task = world.chain.task(task_id)
    assert (task.status, task.round, task.attempt, task.model) == (
        TaskStatus.FAILED,
        1,
        2,
        INITIAL_MODEL,
    )
    assert world.chain.current_round(task_id) == closing
    for action in (
        lambda: world.by(0).timeout(task_id),
        lambda: world.by(0).seal_seed(task_id),
        lambda: world.by(0).cancel_task(task_id),
    ):
        world.reverts(e.TaskEnded(task_id, TaskStatus.FAILED), action)


def test_rejections_count_toward_the_attempt_limit(world: World) -> None:
    task_id = world.voting_task(members=(0, 1, 2), quorum_bps=10_000, max_attempts=1)
    world.by(0).propose(task_id, NEW_MODEL, b"\x07")
    receipt = world.by(2).vote(task_id, 1, False)  # unanimity: one rejection decides
    assert [type(event) for event in receipt.events[1:]] == [RoundRejected, TaskFailed]
    assert world.chain.task(task_id).status is TaskStatus.FAILED

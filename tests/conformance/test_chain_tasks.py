"""Conformance: createTask, register, startTask and the task-level views and errors."""

import pytest
from eth_utils import keccak

from conformance.scenario import INITIAL_MODEL, MANIFEST, World, content, task_params
from flare.chain import (
    ContentRef,
    Participant,
    ParticipantRegistered,
    RoundOpened,
    TaskCancelled,
    TaskCreated,
    TaskStatus,
)
from flare.chain.api import errors as e
from flare.chain.api.derive import EMPTY_HISTORY
from flare.crypto import prove_possession
from flare.crypto.identity import possession_message, prove_task_possession
from flare.storage import CODEC_DAG_PB


def test_create_task_records_everything_and_numbers_tasks_from_one(world: World) -> None:
    params = task_params()
    receipt = world.by(3).create_task(INITIAL_MODEL, MANIFEST, params)
    assert world.chain.task_count() == 1
    assert receipt.block_number == world.chain.block_number()
    created = receipt.one(TaskCreated)
    assert created == TaskCreated(
        receipt.block_number, 0, 1, world.address(3), INITIAL_MODEL, MANIFEST, params
    )
    task = world.chain.task(1)
    assert (task.creator, task.params, task.model, task.manifest) == (
        world.address(3),
        params,
        INITIAL_MODEL,
        MANIFEST,
    )
    assert task.status is TaskStatus.REGISTERING
    assert (task.registered_count, task.round, task.attempt, task.epoch) == (0, 0, 0, 0)
    assert (task.proposal_count, task.history_hash) == (0, EMPTY_HISTORY)
    assert world.create_task(creator=1) == 2


def test_create_task_accepts_a_dag_pb_model(world: World) -> None:
    model = ContentRef(CODEC_DAG_PB, keccak(b"chunked"))
    world.by(0).create_task(model, MANIFEST, task_params())
    assert world.chain.task(1).model == model


@pytest.mark.parametrize("which", ["model", "manifest"])
def test_create_task_rejects_unsupported_codecs(world: World, which: str) -> None:
    bad = ContentRef(0x71, keccak(b"dag-cbor"))
    cids = {"model": INITIAL_MODEL, "manifest": MANIFEST, which: bad}
    world.reverts(
        e.UnsupportedCodec(0x71),
        lambda: world.by(0).create_task(cids["model"], cids["manifest"], task_params()),
    )


@pytest.mark.parametrize(
    ("index", "override"),
    [
        (0, {"min_clients": 0}),
        (1, {"expected_committee": 0}),
        (2, {"min_committee": 0}),
        (2, {"min_committee": 4, "expected_committee": 3}),
        (3, {"quorum_bps": 0}),
        (3, {"quorum_bps": 1}),
        (3, {"quorum_bps": 5_000}),
        (3, {"quorum_bps": 10_001}),
        (4, {"submission_window": 0}),
        (5, {"vote_window": 0}),
        (6, {"max_rounds": 0}),
        (7, {"max_attempts": 0}),
        (0, {"min_clients": 0, "max_rounds": 0}),
        (2, {"min_committee": 2, "expected_committee": 1, "quorum_bps": 1}),
    ],
)
def test_create_task_reports_the_first_invalid_parameter(
    world: World, index: int, override: dict[str, int]
) -> None:
    params = task_params(**override)
    world.reverts(
        e.InvalidTaskParameter(index),
        lambda: world.by(0).create_task(INITIAL_MODEL, MANIFEST, params),
    )


@pytest.mark.parametrize("task_id", [0, 2])
def test_calls_and_views_on_an_unknown_task(world: World, task_id: int) -> None:
    world.create_task()
    identity = world.ids[0]
    actor = world.by(0)
    for action in (
        lambda: actor.register(task_id, identity.public_key, bytes(128)),
        lambda: actor.start_task(task_id),
        lambda: actor.cancel_task(task_id),
        lambda: actor.seal_seed(task_id),
        lambda: actor.submit(task_id, content("u"), 1),
        lambda: actor.claim_seat(task_id, identity.public_key, bytes(128)),
        lambda: actor.propose(task_id, content("m"), b""),
        lambda: actor.vote(task_id, 1, True),
        lambda: actor.timeout(task_id),
        lambda: world.chain.task(task_id),
        lambda: world.chain.current_round(task_id),
        lambda: world.chain.participant(task_id, identity.address),
        lambda: world.chain.proposal(task_id, 1),
    ):
        world.reverts(e.UnknownTask(task_id), action)


def test_create_task_accepts_the_quorum_and_committee_limits(world: World) -> None:
    world.create_task(quorum_bps=5_001, min_committee=100, expected_committee=100)
    world.create_task(quorum_bps=10_000, max_attempts=1)
    assert world.chain.task(1).params.quorum_bps == 5_001
    assert world.chain.task(2).params.max_attempts == 1


def test_register_records_the_key_hash_and_logs_the_key(world: World) -> None:
    task_id = world.create_task()
    identity = world.ids[4]
    proof = identity.possession_proof(world.chain, task_id)
    receipt = world.by(4).register(task_id, identity.public_key, proof)
    assert receipt.one(ParticipantRegistered) == ParticipantRegistered(
        receipt.block_number, 0, task_id, identity.address, 0, identity.public_key
    )
    assert world.chain.participant(task_id, identity.address) == Participant(
        True, 0, keccak(identity.public_key), 0, 0, 0, 0
    )
    assert world.chain.participant(task_id, identity.address.lower()).registered
    world.register(task_id, 2)
    assert world.chain.participant(task_id, world.address(2)).index == 1
    assert world.chain.task(task_id).registered_count == 2
    assert world.chain.public_key(task_id, identity.address.lower()) == identity.public_key


def test_a_stranger_reads_as_an_all_zero_participant(world: World) -> None:
    task_id = world.create_task()
    assert world.chain.participant(task_id, world.address(9)) == Participant(
        False, 0, bytes(32), 0, 0, 0, 0
    )
    world.reverts(
        e.NotRegistered(task_id, world.address(9)),
        lambda: world.chain.public_key(task_id, world.address(9)),
    )


def test_register_twice_is_rejected(world: World) -> None:
    task_id = world.create_task()
    world.register(task_id, 1)
    identity = world.ids[1]
    proof = identity.possession_proof(world.chain, task_id)
    world.reverts(
        e.AlreadyRegistered(task_id, identity.address),
        lambda: world.by(1).register(task_id, identity.public_key, proof),
    )


def test_register_checks_lengths_key_then_proof(world: World) -> None:
    task_id = world.create_task()
    identity = world.ids[1]
    actor = world.by(1)
    world.reverts(
        e.InvalidLength(256, 255),
        lambda: actor.register(task_id, identity.public_key[:-1], b""),
    )
    proof = identity.possession_proof(world.chain, task_id)
    world.reverts(
        e.InvalidLength(128, 129),
        lambda: actor.register(task_id, identity.public_key, proof + b"\0"),
    )


def test_a_key_can_be_registered_only_once_per_task(world: World) -> None:
    task_id = world.create_task()
    world.register(task_id, 1)
    owner = world.ids[1]
    # Even with a valid PoP for its own address, the same key may not join twice.
    proof = owner.possession_proof(world.chain, task_id, world.address(2))
    world.reverts(
        e.PublicKeyTaken(task_id, keccak(owner.public_key)),
        lambda: world.by(2).register(task_id, owner.public_key, proof),
    )
    other_task = world.create_task()
    world.register(other_task, 1)


def _possession_elsewhere(world: World, who: int, task_id: int, where: str) -> bytes:
    """``who``'s proof of possession for this task, except for what ``where`` changes."""
    fields = {
        "chain_id": world.chain.chain_id,
        "contract": bytes.fromhex(world.chain.contract_address[2:]),
        "task_id": task_id,
        "account": bytes.fromhex(world.address(who)[2:]),
    }
    fields.update(
        {
            "other_task": {"task_id": task_id + 1},
            "other_contract": {"contract": keccak(b"another deployment")[:20]},
            "other_chain": {"chain_id": world.chain.chain_id + 1},
        }[where]
    )
    return prove_task_possession(world.ids[who].bls_key, possession_message(**fields))


@pytest.mark.parametrize(
    "forgery",
    [
        "replayed",
        "wrong_key",
        "infinity_key",
        "garbage",
        "zero",
        "bare_address",
        "other_task",
        "other_contract",
        "other_chain",
    ],
)
def test_register_rejects_invalid_possession_proofs(world: World, forgery: str) -> None:
    task_id = world.create_task()
    world.create_task()  # the task a proof made for "task_id + 1" would belong to
    me, other = world.ids[2], world.ids[3]
    mine = me.possession_proof(world.chain, task_id)
    theirs = other.possession_proof(world.chain, task_id)
    bare = prove_possession(me.bls_key, bytes.fromhex(me.address[2:]))
    key, proof = {
        # another participant's PoP is bound to its address, not ours
        "replayed": (other.public_key, theirs),
        "wrong_key": (me.public_key, theirs),
        "infinity_key": (bytes(256), bytes(128)),
        "garbage": (b"\x01" * 256, mine),
        "zero": (me.public_key, bytes(128)),
        # the old, unbound proof over the bare address is valid nowhere
        "bare_address": (me.public_key, bare),
        # a proof bound to another task, deployment or chain is no proof here
        "other_task": (me.public_key, _possession_elsewhere(world, 2, task_id, "other_task")),
        "other_contract": (
            me.public_key,
            _possession_elsewhere(world, 2, task_id, "other_contract"),
        ),
        "other_chain": (me.public_key, _possession_elsewhere(world, 2, task_id, "other_chain")),
    }[forgery]
    world.reverts(
        e.InvalidPossessionProof(task_id, me.address),
        lambda: world.by(2).register(task_id, key, proof),
    )


def test_start_task_needs_min_clients_then_opens_round_one(world: World) -> None:
    task_id = world.create_task(creator=5, min_clients=3)
    world.register(task_id, 0, 1)
    world.reverts(e.TooFewParticipants(task_id, 2, 3), lambda: world.by(5).start_task(task_id))
    world.register(task_id, 2)
    receipt = world.by(5).start_task(task_id)
    opened = receipt.one(RoundOpened)
    current = world.chain.current_round(task_id)
    params = world.chain.task(task_id).params
    assert opened == RoundOpened(
        receipt.block_number,
        0,
        task_id,
        1,
        0,
        1,
        INITIAL_MODEL,
        3,
        params.expected_committee,
        receipt.block_number + params.submission_window,
        receipt.block_number + params.submission_window + params.vote_window,
    )
    assert (current.round, current.attempt, current.epoch, current.opened_at) == (
        1,
        0,
        1,
        receipt.block_number,
    )
    assert (current.registered_snapshot, current.submission_count) == (3, 0)
    assert current.expected_committee == params.expected_committee
    # No seed until a later block seals one; the submissions hash starts from it.
    assert (current.seed, current.submissions_hash, current.committee_size) == (
        bytes(32),
        bytes(32),
        0,
    )
    assert (current.quorum_threshold, current.rejections) == (0, 0)
    task = world.chain.task(task_id)
    assert (task.status, task.round, task.attempt, task.epoch) == (TaskStatus.RUNNING, 1, 0, 1)
    world.reverts(e.TaskAlreadyStarted(task_id), lambda: world.by(5).start_task(task_id))


def test_only_the_creator_starts_or_cancels_a_task(world: World) -> None:
    task_id = world.create_task(creator=1)
    world.register(task_id, 0, 2)
    for outsider in (0, 9):  # a registered participant and a stranger
        for action in (world.by(outsider).start_task, world.by(outsider).cancel_task):
            world.reverts(
                e.NotTaskCreator(task_id, world.address(outsider)),
                lambda action=action: action(task_id),
            )
    world.by(1).start_task(task_id)
    world.reverts(
        e.NotTaskCreator(task_id, world.address(2)), lambda: world.by(2).cancel_task(task_id)
    )


@pytest.mark.parametrize("started", [False, True])
def test_cancel_ends_the_task_for_every_call(world: World, started: bool) -> None:
    task_id = world.create_task()
    world.register(task_id, 0, 1, 2)
    if started:
        world.by(0).start_task(task_id)
    task = world.chain.task(task_id)
    receipt = world.by(0).cancel_task(task_id)
    assert receipt.events == (
        TaskCancelled(receipt.block_number, 0, task_id, task.round, task.attempt),
    )
    assert world.chain.task(task_id).status is TaskStatus.CANCELLED
    identity = world.ids[3]
    proof = identity.possession_proof(world.chain, task_id)
    for action in (
        lambda: world.by(3).register(task_id, identity.public_key, proof),
        lambda: world.by(0).start_task(task_id),
        lambda: world.by(0).cancel_task(task_id),
        lambda: world.by(1).seal_seed(task_id),
        lambda: world.by(1).submit(task_id, content("u"), 1),
        lambda: world.by(1).claim_seat(task_id, world.ids[1].public_key, bytes(128)),
        lambda: world.by(1).propose(task_id, content("m"), b""),
        lambda: world.by(1).vote(task_id, 1, True),
        lambda: world.by(1).timeout(task_id),
    ):
        world.reverts(e.TaskEnded(task_id, TaskStatus.CANCELLED), action)


def test_calls_before_start_report_task_not_started(world: World) -> None:
    task_id = world.create_task()
    world.register(task_id, 0)
    identity = world.ids[0]
    actor = world.by(0)
    for action in (
        lambda: actor.seal_seed(task_id),
        lambda: actor.submit(task_id, content("u"), 1),
        lambda: actor.claim_seat(task_id, identity.public_key, bytes(128)),
        lambda: actor.propose(task_id, content("m"), b""),
        lambda: actor.vote(task_id, 1, True),
        lambda: actor.timeout(task_id),
        lambda: world.chain.current_round(task_id),
    ):
        world.reverts(e.TaskNotStarted(task_id), action)


def test_registration_stays_open_while_the_task_runs(world: World) -> None:
    task_id = world.started_task(registered=2, sealed=False)
    world.register(task_id, 7)
    assert world.chain.task(task_id).registered_count == 3
    assert world.chain.current_round(task_id).registered_snapshot == 2


def test_unknown_proposal_view(world: World) -> None:
    task_id = world.started_task()
    world.reverts(e.UnknownProposal(task_id, 0), lambda: world.chain.proposal(task_id, 0))
    world.reverts(e.UnknownProposal(task_id, 1), lambda: world.chain.proposal(task_id, 1))


def test_event_filters_by_kind_task_and_block_range(world: World) -> None:
    first = world.create_task()
    second = world.create_task()
    world.register(first, 0)
    world.register(second, 1)
    head = world.chain.block_number()
    assert [type(log) for log in world.chain.events()] == [
        TaskCreated,
        TaskCreated,
        ParticipantRegistered,
        ParticipantRegistered,
    ]
    registered = world.chain.events([ParticipantRegistered], task_id=second)
    assert [(log.task_id, log.participant) for log in registered] == [(second, world.address(1))]
    in_range = world.chain.events(from_block=head - 1, to_block=head - 1)
    assert [(type(log), log.block_number) for log in in_range] == [
        (ParticipantRegistered, head - 1)
    ]
    assert world.chain.events(from_block=head + 1) == []
    assert world.chain.events([RoundOpened]) == []
    assert all(log.log_index == 0 for log in world.chain.events())

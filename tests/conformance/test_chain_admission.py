"""Conformance: permissioned tasks (docs/protocol.md §2.5, §4.13–§4.15). Only the creator's
fleet registers; strangers, a Sybil flood with stolen proofs, a dropped device and a proof from
another task are refused, identically by the in-memory chain and the contract."""

from functools import partial

from conformance.scenario import INITIAL_MODEL, MANIFEST, World, task_params
from flare.chain import TaskCreated
from flare.chain.api import errors as e
from flare.chain.api.admission import admission_proof, admission_root
from flare.chain.api.events import AdmissionRootSet

FLEET = (0, 1, 2, 3)
STRANGERS = (6, 7, 8, 9)


def test_a_permissioned_task_records_its_root(world: World) -> None:
    root = admission_root(world.address(n) for n in FLEET)
    receipt = world.by(0).create_permissioned_task(INITIAL_MODEL, MANIFEST, task_params(), root)
    task_id = receipt.one(TaskCreated).task_id
    assert receipt.one(AdmissionRootSet) == AdmissionRootSet(receipt.block_number, 1, task_id, root)
    assert world.chain.admission_root(task_id) == root
    assert world.chain.admission_root(world.create_task()) == bytes(32)


def test_the_fleet_registers_and_no_one_else(world: World) -> None:
    task_id = world.create_permissioned_task(FLEET)
    world.admit(task_id, FLEET, *FLEET)
    fleet = [world.address(n) for n in FLEET]
    for number in STRANGERS:  # each with a member's proof, then with none
        identity = world.ids[number]
        pop = identity.possession_proof(world.chain, task_id)
        stolen = admission_proof(fleet, fleet[number % len(fleet)])
        stranger = world.by(number)
        world.reverts(
            e.NotAdmitted(task_id, identity.address),
            partial(stranger.register_admitted, task_id, identity.public_key, pop, stolen),
        )
        world.reverts(
            e.AdmissionProofRequired(task_id),
            partial(stranger.register, task_id, identity.public_key, pop),
        )
    assert world.chain.task(task_id).registered_count == len(FLEET)
    world.by(0).start_task(task_id)
    assert world.chain.current_round(task_id).registered_snapshot == len(FLEET)


def test_admission_is_checked_before_the_possession_proof(world: World) -> None:
    task_id = world.create_permissioned_task(FLEET)
    proof = admission_proof([world.address(n) for n in FLEET], world.address(0))
    world.reverts(
        e.NotAdmitted(task_id, world.address(7)),
        lambda: world.by(7).register_admitted(task_id, b"", b"", proof),
    )
    identity = world.ids[0]
    wrong_pop = world.ids[1].possession_proof(world.chain, task_id, identity.address)
    world.reverts(
        e.InvalidPossessionProof(task_id, identity.address),
        lambda: world.by(0).register_admitted(task_id, identity.public_key, wrong_pop, proof),
    )


def test_the_creator_admits_and_drops_devices(world: World) -> None:
    task_id = world.create_permissioned_task(FLEET)
    world.admit(task_id, FLEET, 0)
    updated = (0, 1, 9)
    root = admission_root(world.address(n) for n in updated)
    receipt = world.by(0).set_admission_root(task_id, root)
    assert receipt.one(AdmissionRootSet).root == root == world.chain.admission_root(task_id)
    world.admit(task_id, updated, 9, 1)
    dropped = world.ids[3]
    old_proof = admission_proof([world.address(n) for n in FLEET], dropped.address)
    pop = dropped.possession_proof(world.chain, task_id)
    world.reverts(
        e.NotAdmitted(task_id, dropped.address),
        lambda: world.by(3).register_admitted(task_id, dropped.public_key, pop, old_proof),
    )
    assert world.chain.participant(task_id, world.address(0)).registered  # stays registered
    assert world.chain.task(task_id).registered_count == 3


def test_set_admission_root_refusals(world: World) -> None:
    task_id = world.create_permissioned_task(FLEET)
    root = admission_root([world.address(5)])
    world.reverts(
        e.NotTaskCreator(task_id, world.address(5)),
        lambda: world.by(5).set_admission_root(task_id, root),
    )
    world.reverts(e.ZeroAdmissionRoot(), lambda: world.by(0).set_admission_root(task_id, bytes(32)))
    open_task = world.create_task()
    world.reverts(
        e.OpenAdmission(open_task), lambda: world.by(0).set_admission_root(open_task, root)
    )
    world.by(0).cancel_task(task_id)
    world.reverts(e.TaskEnded(task_id, 4), lambda: world.by(0).set_admission_root(task_id, root))


def test_an_open_task_takes_no_admission_proof_and_no_root_is_zero(world: World) -> None:
    open_task = world.create_task()
    identity = world.ids[0]
    pop = identity.possession_proof(world.chain, open_task)
    world.reverts(
        e.OpenAdmission(open_task),
        lambda: world.by(0).register_admitted(open_task, identity.public_key, pop, ()),
    )
    world.reverts(
        e.ZeroAdmissionRoot(),
        lambda: world.by(0).create_permissioned_task(
            INITIAL_MODEL, MANIFEST, task_params(), bytes(32)
        ),
    )


def test_a_proof_from_another_task_admits_no_one(world: World) -> None:
    world.create_permissioned_task(FLEET)
    other_fleet = (4, 5)
    other = world.create_permissioned_task(other_fleet)
    identity = world.ids[1]
    proof = admission_proof([world.address(n) for n in FLEET], identity.address)
    pop = identity.possession_proof(world.chain, other)
    world.reverts(
        e.NotAdmitted(other, identity.address),
        lambda: world.by(1).register_admitted(other, identity.public_key, pop, proof),
    )
    world.admit(other, other_fleet, 4, 5)
    assert world.chain.task(other).registered_count == 2

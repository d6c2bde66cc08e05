"""Conformance: idle keys cannot dilute every committee below ``minCommittee`` (escalation,
docs/protocol.md §4.12 and §11)."""

from conformance.scenario import World, content
from flare.chain import RoundOpened, TaskStatus
from flare.crypto import vrf

HONEST = (0, 1, 2)
IDLE = tuple(range(3, 10))
AGGREGATE = content("honest aggregate")


def _honest_seats(world: World, task_id: int) -> list[int]:
    """Seal, submit, and claim every seat the honest participants win; the seated ones."""
    world.by(0).seal_seed(task_id)
    world.submit(task_id, *HONEST)
    current = world.chain.current_round(task_id)
    seated = []
    for who in HONEST:
        proof = world.proof(task_id, who)
        if vrf.seat_granted(
            vrf.output(proof), current.expected_committee, current.registered_snapshot
        ):
            world.by(who).claim_seat(task_id, world.ids[who].public_key, proof)
            seated.append(who)
    return seated


def test_a_flood_of_idle_keys_cannot_stall_a_round(world: World) -> None:
    """7 idle keys beside 3 honest ones, k = 3 and minCommittee 3: each honest key is seated
    with odds 3/10 per attempt, all three with 0.027, so without escalation 3 attempts fail
    with odds 0.92. The attempts draw with k = 3, 6, 12 (doubled after each short one, and
    12 >= 10 seats everyone), so the round finalizes within them on either chain."""
    task_id = world.create_task(
        expected_committee=3, min_committee=3, min_clients=3, max_rounds=1, max_attempts=3
    )
    world.register(task_id, *HONEST, *IDLE)
    world.by(0).start_task(task_id)
    expected = 3
    while True:
        current = world.chain.current_round(task_id)
        opened = world.chain.round_opened(task_id, current.round, current.attempt)
        assert current.expected_committee == opened.expected_committee == expected
        seated = _honest_seats(world, task_id)
        if len(seated) >= 3:
            break
        world.to_expiry(task_id)
        receipt = world.by(9).timeout(task_id)  # the idle may time out; it changes nothing
        assert receipt.one(RoundOpened).expected_committee == 2 * expected
        expected *= 2
    world.to_voting(task_id)
    world.by(seated[0]).propose(task_id, AGGREGATE, b"\x07")
    threshold = world.chain.current_round(task_id).quorum_threshold
    for who in seated[:threshold]:
        world.by(who).vote(task_id, 1, True)
    task = world.chain.task(task_id)
    assert task.status is TaskStatus.COMPLETED
    assert task.model == AGGREGATE
    assert task.attempt < 3

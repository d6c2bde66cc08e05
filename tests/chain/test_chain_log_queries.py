"""The in-memory chain's log queries: every filter combination gives the logs, in chain
order, that filtering the whole log would give, and a submission's reads see it at once."""

import itertools

import pytest
from conformance.scenario import World

from flare.chain import (
    Event,
    InMemoryChain,
    ParticipantRegistered,
    RoundOpened,
    SeedSealed,
    TaskCreated,
    UpdateSubmitted,
)

KINDS = (TaskCreated, ParticipantRegistered, RoundOpened, SeedSealed, UpdateSubmitted)


@pytest.fixture(scope="module")
def two_tasks() -> World:
    chain = InMemoryChain()
    world = World(chain, chain.mine)
    first = world.started_task(registered=3, submission_window=50)
    second = world.started_task(registered=4, submission_window=50)
    world.submit(first, 0, 1)
    world.submit(second, 2, 3, 1)
    world.submit(first, 2)
    return world


def expected(everything: list[Event], kinds, task_id, from_block, to_block) -> list[Event]:
    return [
        event
        for event in everything
        if (kinds is None or type(event) in kinds)
        and (task_id is None or event.task_id == task_id)  # type: ignore[attr-defined]
        and from_block <= event.block_number
        and (to_block is None or event.block_number <= to_block)
    ]


def test_every_filter_gives_the_filtered_log_in_chain_order(two_tasks: World) -> None:
    everything = two_tasks.chain.events()
    positions = [(e.block_number, e.log_index) for e in everything]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    head = two_tasks.chain.block_number()
    kind_sets = [None, [], *itertools.combinations(KINDS, 1), *itertools.combinations(KINDS, 3)]
    kind_sets.append([UpdateSubmitted, TaskCreated, UpdateSubmitted])  # unordered, repeated
    checked = 0
    for kinds, task_id, (from_block, to_block) in itertools.product(
        kind_sets, (None, 1, 2, 3), ((0, None), (3, head - 2), (head, head), (head + 1, None))
    ):
        logs = two_tasks.chain.events(
            kinds, task_id=task_id, from_block=from_block, to_block=to_block
        )
        assert logs == expected(everything, kinds, task_id, from_block, to_block)
        checked += bool(logs)
    assert checked > 100


def test_a_new_submission_is_in_the_next_read() -> None:
    chain = InMemoryChain()
    world = World(chain, chain.mine)
    task_id = world.started_task(registered=3)
    world.submit(task_id, 0)
    before = chain.submissions(task_id, 1, 0)
    world.submit(task_id, 1)
    after = chain.submissions(task_id, 1, 0)

    assert [s.participant for s in before] == [world.address(0)]
    assert [s.participant for s in after] == [world.address(0), world.address(1)]
    assert chain.current_round(task_id).submission_count == 2

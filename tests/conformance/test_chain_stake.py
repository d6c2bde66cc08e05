"""Conformance: staked tasks (docs/protocol.md §2.6, §4.16–§4.18). Deposits are held by the
contract, seats are drawn in proportion to stake over the stake of the attempt's snapshot, a
late deposit and a withdrawn one weigh nothing for the attempt, and a stake leaves only once the
task ended or its lock passed, exactly once: identically on the in-memory chain and the contract.
"""

from functools import partial

import pytest

from conformance.scenario import INITIAL_MODEL, MANIFEST, World, task_params
from flare.chain import TaskCreated
from flare.chain.api import errors as e
from flare.chain.api.calls import Register
from flare.chain.api.derive import STAKE_LIMIT, STAKE_LOCK_BLOCKS
from flare.chain.api.events import MinStakeSet, StakeBonded, StakeWithdrawn
from flare.crypto import vrf
from flare.errors import ConfigError

ETHER = 10**18
MIN_STAKE = ETHER // 10


def test_a_staked_task_records_its_minimum_stake(world: World) -> None:
    receipt = world.by(0).create_staked_task(INITIAL_MODEL, MANIFEST, task_params(), MIN_STAKE)
    task_id = receipt.one(TaskCreated).task_id
    assert receipt.one(MinStakeSet) == MinStakeSet(receipt.block_number, 1, task_id, MIN_STAKE)
    assert world.chain.min_stake(task_id) == MIN_STAKE
    assert world.chain.min_stake(world.create_task()) == 0
    creator = world.by(0)
    world.reverts(
        e.ZeroMinStake(),
        partial(creator.create_staked_task, INITIAL_MODEL, MANIFEST, task_params(), 0),
    )
    world.reverts(
        e.StakeOverflow(3, STAKE_LIMIT),
        partial(creator.create_staked_task, INITIAL_MODEL, MANIFEST, task_params(), STAKE_LIMIT),
    )


def test_registration_bonds_the_deposit_and_refuses_every_other_path(world: World) -> None:
    task_id = world.create_staked_task(MIN_STAKE)
    me = world.ids[1]
    pop = me.possession_proof(world.chain, task_id)
    actor = world.by(1)
    world.reverts(e.StakeRequired(task_id), partial(actor.register, task_id, me.public_key, pop))
    world.reverts(
        e.StakeTooLow(task_id, MIN_STAKE - 1, MIN_STAKE),
        partial(actor.register_staked, task_id, me.public_key, pop, MIN_STAKE - 1),
    )
    world.reverts(
        e.OpenAdmission(task_id),
        partial(actor.register_admitted, task_id, me.public_key, pop, ()),
    )
    receipt = actor.register_staked(task_id, me.public_key, pop, 3 * MIN_STAKE)
    unlock = receipt.block_number + STAKE_LOCK_BLOCKS
    bonded = StakeBonded(receipt.block_number, 1, task_id, me.address, 3 * MIN_STAKE, unlock)
    assert receipt.one(StakeBonded) == bonded
    assert world.chain.stake_of(task_id, me.address) == 3 * MIN_STAKE
    assert world.contract_balance() == 3 * MIN_STAKE

    open_task = world.create_task()
    open_pop = me.possession_proof(world.chain, open_task)
    world.reverts(
        e.NotStaked(open_task),
        partial(actor.register_staked, open_task, me.public_key, open_pop, MIN_STAKE),
    )
    with pytest.raises(ConfigError, match="cannot carry a value"):
        actor.transact(Register(open_task, me.public_key, open_pop, value=MIN_STAKE))
    assert world.contract_balance() == 3 * MIN_STAKE


def test_seats_are_drawn_by_stake_over_the_snapshot(world: World) -> None:
    """k = 3 against stakes of 1, 1, 1 and 30 units: the large stake wins every draw
    (3 · 30 ≥ 33); the others win exactly when ``output · 33 < 3 · 1 · 2^256``."""
    task_id = world.create_staked_task(MIN_STAKE, expected_committee=3, min_committee=1)
    world.bond(task_id, {0: MIN_STAKE, 1: MIN_STAKE, 2: MIN_STAKE, 3: 30 * MIN_STAKE})
    world.by(0).start_task(task_id)
    world.by(0).seal_seed(task_id)
    total = 33 * MIN_STAKE
    assert world.chain.stake_snapshot(task_id) == total
    world.claim(task_id, 3)
    for number in (0, 1, 2):
        proof = world.proof(task_id, number)
        output = vrf.output(proof)
        claim = partial(world.claim, task_id, number)
        if vrf.seat_granted(output, 3 * MIN_STAKE, total):
            claim()
        else:
            world.reverts(e.NotSelected(task_id, output), claim)


def test_a_late_stake_is_left_out_of_the_attempt_and_counts_from_the_next(world: World) -> None:
    task_id = world.create_staked_task(MIN_STAKE, min_committee=1)
    world.bond(task_id, {0: MIN_STAKE, 1: MIN_STAKE})
    world.by(0).start_task(task_id)
    world.bond(task_id, {5: 1_000 * MIN_STAKE})
    world.by(0).seal_seed(task_id)
    assert world.chain.stake_snapshot(task_id) == 2 * MIN_STAKE
    world.reverts(
        e.RegisteredAfterSnapshot(task_id, world.address(5)), lambda: world.claim(task_id, 5)
    )
    world.to_expiry(task_id)
    world.by(0).timeout(task_id)
    assert world.chain.stake_snapshot(task_id) == 1_002 * MIN_STAKE


def test_withdrawal_waits_for_the_end_or_the_lock_and_happens_once(world: World) -> None:
    task_id = world.create_staked_task(MIN_STAKE)
    world.bond(task_id, {0: MIN_STAKE, 1: 2 * MIN_STAKE, 2: MIN_STAKE})
    unlock = world.chain.block_number() - 1 + STAKE_LOCK_BLOCKS  # identity 1 bonded then
    world.by(0).start_task(task_id)
    world.reverts(e.StakeLocked(task_id, unlock), partial(world.by(1).withdraw_stake, task_id))
    world.reverts(
        e.NothingToWithdraw(task_id, world.address(7)),
        partial(world.by(7).withdraw_stake, task_id),
    )
    open_task = world.create_task()
    world.reverts(e.NotStaked(open_task), partial(world.by(1).withdraw_stake, open_task))

    world.by(0).cancel_task(task_id)
    receipt = world.by(1).withdraw_stake(task_id)
    withdrawn = StakeWithdrawn(receipt.block_number, 0, task_id, world.address(1), 2 * MIN_STAKE)
    assert receipt.one(StakeWithdrawn) == withdrawn
    assert world.chain.stake_of(task_id, world.address(1)) == 0
    assert world.contract_balance() == 2 * MIN_STAKE
    world.reverts(
        e.NothingToWithdraw(task_id, world.address(1)),
        partial(world.by(1).withdraw_stake, task_id),
    )


# Anvil mines the 100,800-block lock too slowly for a test (minutes); the contract's side is
# FlareCoordinatorStake.t.sol, which rolls the block number past the lock.
@pytest.mark.parametrize("world", ["memory"], indirect=True)
def test_a_stake_withdrawn_after_the_lock_weighs_nothing(world: World) -> None:
    task_id = world.create_staked_task(MIN_STAKE, min_committee=1)
    world.bond(task_id, {0: MIN_STAKE, 1: MIN_STAKE, 2: MIN_STAKE})
    world.by(0).start_task(task_id)
    world.mine(STAKE_LOCK_BLOCKS)
    world.by(2).withdraw_stake(task_id)
    world.by(0).timeout(task_id)
    world.by(0).seal_seed(task_id)
    assert world.chain.stake_snapshot(task_id) == 2 * MIN_STAKE
    output = vrf.output(world.proof(task_id, 2))
    world.reverts(e.NotSelected(task_id, output), lambda: world.claim(task_id, 2))
    world.claim(task_id, 0, 1)  # k = 100: each remaining stake wins every draw
    assert world.contract_balance() == 2 * MIN_STAKE

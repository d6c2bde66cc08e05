"""A staked task's deposits (docs/protocol.md §2.6), as the contract's ``StakeRecord`` and
``BondRecord`` keep them, and the rules of the calls that move them.

When a change counts for an attempt's snapshot is
:class:`flare.chain.memory.task_state.TaskState`'s business, since registrations and stake
changes share the one "last change block" the contract keeps. Like the ledger's handlers,
each call here runs all its checks before it changes anything.
"""

from dataclasses import dataclass, field

from flare.chain.api import errors
from flare.chain.api.calls import RegisterStaked, WithdrawStake
from flare.chain.api.derive import STAKE_LIMIT, STAKE_LOCK_BLOCKS
from flare.chain.api.events import Event, StakeBonded, StakeWithdrawn
from flare.chain.memory.task_state import BlockContext, TaskState, event


@dataclass(frozen=True)
class Bond:
    """One participant's deposit and the block from which it may leave an open task."""

    amount: int
    unlock_block: int


@dataclass
class StakePool:
    """The deposits of one staked task."""

    min_stake: int
    bonds: dict[str, Bond] = field(default_factory=dict)
    total: int = 0
    """What is bonded and not withdrawn, now."""
    before_last_block: int = 0
    """``total`` as it was before the task's last registration or stake change block."""
    snapshot: int = 0
    """The divisor of the open attempt's sortition: ``total`` before its opening block."""

    def stake_of(self, account: str) -> int:
        return self.bonds[account].amount if account in self.bonds else 0

    def bond(self, account: str, amount: int, block_number: int) -> Bond:
        """Hold ``amount`` for ``account``, locked for ``STAKE_LOCK_BLOCKS`` from this block."""
        bonded = Bond(amount, block_number + STAKE_LOCK_BLOCKS)
        self.bonds[account] = bonded
        self.total += amount
        return bonded

    def release(self, account: str) -> int:
        """Zero ``account``'s deposit; return what it was."""
        amount = self.bonds[account].amount
        self.bonds[account] = Bond(0, self.bonds[account].unlock_block)
        self.total -= amount
        return amount


def new_pool(task_id: int, min_stake: int) -> StakePool:
    """The deposits of task ``task_id`` being created: ``ZeroMinStake``, ``StakeOverflow``."""
    if min_stake == 0:
        raise errors.ZeroMinStake()
    if min_stake >= STAKE_LIMIT:
        raise errors.StakeOverflow(task_id, min_stake)
    return StakePool(min_stake)


def register_staked(state: TaskState, call: RegisterStaked, block: BlockContext) -> list[Event]:
    """``registerStaked``: the registration and its bond; the caller credits the balance."""
    state.require_open()
    pool = state.stake
    if pool is None:
        raise errors.NotStaked(call.task_id)
    if call.value < pool.min_stake:
        raise errors.StakeTooLow(call.task_id, call.value, pool.min_stake)
    if call.value >= STAKE_LIMIT:
        raise errors.StakeOverflow(call.task_id, call.value)
    registered = state.enroll(call.public_key, call.possession_proof, block)
    bonded = pool.bond(block.sender, call.value, block.number)
    sender = block.sender
    return [
        registered,
        event(StakeBonded, block, call.task_id, sender, call.value, bonded.unlock_block),
    ]


def withdraw_stake(state: TaskState, call: WithdrawStake, block: BlockContext) -> StakeWithdrawn:
    """``withdrawStake``: release the sender's deposit; the caller debits the balance."""
    pool = state.stake
    if pool is None:
        raise errors.NotStaked(call.task_id)
    if pool.stake_of(block.sender) == 0:
        raise errors.NothingToWithdraw(call.task_id, block.sender)
    unlock_block = pool.bonds[block.sender].unlock_block
    if not state.task.status.ended and block.number < unlock_block:
        raise errors.StakeLocked(call.task_id, unlock_block)
    state.note_change(block)
    amount = pool.release(block.sender)
    return event(StakeWithdrawn, block, call.task_id, block.sender, amount)  # type: ignore[return-value]


def min_stake(state: TaskState) -> int:
    """``minStake``: zero for a task that is not staked."""
    return 0 if state.stake is None else state.stake.min_stake


def stake_of(state: TaskState, account: str) -> int:
    """``stakeOf``: what ``account`` bonded and has not withdrawn."""
    return 0 if state.stake is None else state.stake.stake_of(account)


def stake_snapshot(state: TaskState) -> int:
    """``stakeSnapshot``: ``TaskNotStarted`` before round 1; zero for a task not staked."""
    if state.round is None:
        raise errors.TaskNotStarted(state.task_id)
    return 0 if state.stake is None else state.stake.snapshot

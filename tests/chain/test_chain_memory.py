"""What only the in-memory chain has: its block clock, prevrandao, senders and persistence.

Protocol behaviour is covered once for every implementation by tests/conformance.
"""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conformance.scenario import World, content
from eth_utils import keccak

from flare.chain import (
    ANVIL_CHAIN_ID,
    ANVIL_FIRST_CONTRACT,
    ContentRef,
    InMemoryChain,
    JournalError,
    RoundOpened,
    SeedSealed,
    TaskCreated,
)
from flare.chain.api import errors as e
from flare.chain.api.abi import word
from flare.chain.api.calls import (
    CALLS_BY_SELECTOR,
    ClaimSeat,
    CreateTask,
    Register,
    SealSeed,
    StartTask,
    Submit,
    decode_call,
)
from flare.chain.api.derive import encode_accepted, round_seed
from flare.chain.memory.chain import DEFAULT_RANDAO_SEED
from flare.chain.memory.ledger import Ledger
from flare.chain.memory.task_state import BlockContext, ContractInstance
from flare.crypto import vrf
from flare.errors import ConfigError


def world_on(chain: InMemoryChain) -> World:
    return World(chain, chain.mine)


def test_a_fresh_chain_looks_like_a_fresh_anvil() -> None:
    chain = InMemoryChain()
    assert (chain.chain_id, chain.contract_address) == (ANVIL_CHAIN_ID, ANVIL_FIRST_CONTRACT)
    assert (chain.block_number(), chain.task_count(), chain.events()) == (0, 0, [])
    assert chain.sender is None


def test_each_transaction_mines_one_block_and_a_revert_mines_none() -> None:
    world = world_on(InMemoryChain())
    task_id = world.create_task()
    assert world.chain.block_number() == 1
    world.reverts(e.TooFewParticipants(task_id, 0, 2), lambda: world.by(0).start_task(task_id))
    assert world.chain.block_number() == 1
    assert world.chain.mine(5) == 6
    assert world.chain.mine(0) == 6
    receipt = world.by(0).create_task(content("m"), content("v"), world.chain.task(1).params)
    assert receipt.block_number == 7
    with pytest.raises(ConfigError):
        world.chain.mine(-1)


def test_prevrandao_is_keccak_of_the_seed_and_block_number() -> None:
    chain = InMemoryChain()
    expected = int.from_bytes(keccak(DEFAULT_RANDAO_SEED + word(42)), "big")
    assert chain.prevrandao(42) == expected
    assert chain.prevrandao(43) != expected


def test_round_seed_uses_the_sealing_blocks_prevrandao() -> None:
    world = world_on(InMemoryChain())
    task_id = world.started_task()
    current = world.chain.current_round(task_id)
    sealed_in = world.chain.events([SeedSealed], task_id=task_id)[0].block_number
    assert sealed_in == current.opened_at + 1
    seeds = [
        round_seed(
            ANVIL_CHAIN_ID,
            ANVIL_FIRST_CONTRACT,
            task_id,
            1,
            0,
            world.chain.task(task_id).model.digest,
            world.chain.prevrandao(block),
        )
        for block in (sealed_in, current.opened_at)
    ]
    assert current.seed == seeds[0] != seeds[1]
    other = world_on(InMemoryChain(randao_seed=keccak(b"another run")))
    other_task = other.started_task()
    assert other.chain.current_round(other_task).seed != current.seed


# -- rules that need two transactions in one block ----------------------------------------
#
# The in-memory chain mines one block per transaction, as Anvil's automine does; a contract
# (or a block builder) can put several in one block. These tests drive the Ledger directly,
# with block contexts of their own, to check the rules that only show up then.

LEDGER_CONTRACT = ContractInstance(ANVIL_CHAIN_ID, ANVIL_FIRST_CONTRACT)


def _ledger_with_task(world: World, registered: int) -> tuple[Ledger, int]:
    """A ledger whose task 1 (creator: identity 0) has ``registered`` participants from
    block 1; the next free block is 2."""
    ledger = Ledger(LEDGER_CONTRACT)
    params = world.chain.task(world.create_task()).params
    creator = world.address(0)
    ledger.apply(CreateTask(content("m"), content("v"), params), _block(1, creator))
    for who in range(registered):
        identity = world.ids[who]
        proof = identity.possession_proof(world.chain, 1)
        ledger.apply(Register(1, identity.public_key, proof), _block(1, identity.address))
    return ledger, 2


def _block(number: int, sender: str, prevrandao: int = 0) -> BlockContext:
    return BlockContext(number, lambda block: prevrandao or block * 7919, sender)


def test_a_key_registered_in_the_opening_block_is_not_in_the_snapshot() -> None:
    world = world_on(InMemoryChain())
    ledger, block = _ledger_with_task(world, registered=2)
    late = world.ids[2]
    proof = late.possession_proof(world.chain, 1)
    ledger.apply(Register(1, late.public_key, proof), _block(block, late.address))
    ledger.apply(StartTask(1), _block(block, world.address(0)))
    assert ledger.current_round(1).registered_snapshot == 2
    assert ledger.task(1).registered_count == 3
    ledger.apply(SealSeed(1), _block(block + 1, world.address(5)))
    current = ledger.current_round(1)
    message = world.vrf_message(1, 1, 0, current.seed)
    claim = ClaimSeat(1, late.public_key, vrf.prove(late.bls_key, message))
    with pytest.raises(e.RegisteredAfterSnapshot):
        ledger.apply(claim, _block(block + 1, late.address))


def test_start_task_counts_only_keys_registered_in_earlier_blocks() -> None:
    world = world_on(InMemoryChain())
    ledger = Ledger(LEDGER_CONTRACT)
    params = world.chain.task(world.create_task(min_clients=2)).params
    ledger.apply(CreateTask(content("m"), content("v"), params), _block(1, world.address(0)))
    for who in range(2):
        identity = world.ids[who]
        proof = identity.possession_proof(world.chain, 1)
        ledger.apply(Register(1, identity.public_key, proof), _block(2, identity.address))
    with pytest.raises(e.TooFewParticipants) as refused:
        ledger.apply(StartTask(1), _block(2, world.address(0)))
    assert refused.value == e.TooFewParticipants(1, 0, 2)
    ledger.apply(StartTask(1), _block(3, world.address(0)))


def test_no_seed_is_sealed_in_the_opening_block() -> None:
    world = world_on(InMemoryChain())
    ledger, block = _ledger_with_task(world, registered=2)
    ledger.apply(StartTask(1), _block(block, world.address(0)))
    for call in (SealSeed(1), Submit(1, content("u"), 1)):
        with pytest.raises(e.SeedTooEarly) as refused:
            ledger.apply(call, _block(block, world.address(1)))
        assert refused.value == e.SeedTooEarly(1, block)
    assert ledger.current_round(1).seed == bytes(32)
    events = ledger.apply(Submit(1, content("u"), 1), _block(block + 1, world.address(1)))
    assert [type(event).__name__ for event in events] == ["SeedSealed", "UpdateSubmitted"]


def test_transactions_need_a_sender_and_senders_share_one_chain() -> None:
    chain = InMemoryChain()
    with pytest.raises(ConfigError):
        chain.start_task(1)
    world = world_on(chain)
    alice = world.by(0)
    assert alice.sender == world.address(0)
    task_id = world.create_task(creator=1)
    assert alice.task(task_id).creator == world.address(1)
    assert chain.block_number() == alice.block_number() == 1


def test_arguments_the_abi_cannot_carry_are_refused_before_anything_happens() -> None:
    world = world_on(InMemoryChain())
    task_id = world.started_task()
    before = world.snapshot()
    for call in (
        Submit(task_id, ContentRef(0x55, b"short"), 1),
        Submit(task_id, content("u"), 2**64),
    ):
        with pytest.raises(ConfigError):
            world.by(0).transact(call)
    assert world.snapshot() == before


def play_a_run(world: World) -> int:
    """Two registrations after the start, a finalized round, a timeout, trailing empty blocks."""
    task_id = world.started_task(registered=3, quorum_bps=10_000)
    world.register(task_id, 7, 8)
    world.submit(task_id, 0, 1, 7)
    world.claim(task_id, 0, 1)
    world.to_voting(task_id)
    world.by(0).propose(task_id, content("round 1"), encode_accepted([0, 2], 3))
    world.by(0).vote(task_id, 1, True)
    world.by(1).vote(task_id, 1, True)
    world.to_expiry(task_id)
    world.by(8).timeout(task_id)
    world.mine(3)
    return task_id


@pytest.mark.parametrize("durable", [True, False])
def test_a_persisted_chain_reopens_with_everything_readable(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "run.sqlite"
    with InMemoryChain(path, durable=durable) as chain:
        world = world_on(chain)
        task_id = play_a_run(world)
        before = world.snapshot()
        submissions = chain.submissions(task_id, 1, 0)
        committee = chain.committee(task_id, 1, 0)
    with InMemoryChain(path) as reopened:
        again = world_on(reopened)
        assert again.snapshot() == before
        assert reopened.submissions(task_id, 1, 0) == submissions
        assert reopened.committee(task_id, 1, 0) == committee
        assert reopened.accepted_bitmap(task_id, 1) == encode_accepted([0, 2], 3)
        # The run continues where it stopped, in the block after the stored head.
        receipt = again.by(0).submit(task_id, content("after restart"), 5)
        assert receipt.block_number == before[0] + 1  # type: ignore[operator]
    with InMemoryChain(path) as third:
        assert third.current_round(task_id).submission_count == 1


def test_the_head_is_the_last_transaction_or_the_last_block_mined_after_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.sqlite"
    with InMemoryChain(path) as chain:
        world = world_on(chain)
        world.create_task()
        world.create_task()
        last_transaction = chain.block_number()
    db = sqlite3.connect(path)
    # A transaction writes no head of its own: its block is the head.
    assert db.execute("SELECT value FROM meta WHERE key = 'head'").fetchone() == ("0",)
    db.close()
    with InMemoryChain(path) as reopened:
        assert reopened.block_number() == last_transaction
        reopened.mine(3)
    with InMemoryChain(path) as again:
        assert again.block_number() == last_transaction + 3
        assert world_on(again).create_task() == 3
        assert again.block_number() == last_transaction + 4
    with InMemoryChain(path, read_only=True) as audited:
        assert audited.block_number() == last_transaction + 4


CRASHING_WRITER = """
import os, sys
sys.path.insert(0, sys.argv[2])
from conformance.scenario import World
from flare.chain import InMemoryChain
chain = InMemoryChain(sys.argv[1], durable=False)
world = World(chain, chain.mine)
for _ in range(3):
    world.create_task()
chain.mine(4)
os._exit(0)  # no close, no checkpoint: the process just ends
"""


def test_a_journal_that_skips_syncing_survives_its_process_ending_without_a_close(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.sqlite"
    tests = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path), str(tests)], check=True)
    with InMemoryChain(path, read_only=True) as audited:
        assert (audited.task_count(), audited.block_number()) == (3, 7)
    with InMemoryChain(path) as reopened:
        assert [e.task_id for e in reopened.events([TaskCreated])] == [1, 2, 3]


def test_the_file_is_auditable_without_flare_chain_state(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    with InMemoryChain(path) as chain:
        world = world_on(chain)
        task_id = world.create_task()
        world.reverts(e.TooFewParticipants(task_id, 0, 2), lambda: world.by(0).start_task(task_id))
        world.started_task()
    db = sqlite3.connect(path)
    rows = db.execute("SELECT block, sender, calldata FROM transactions ORDER BY block").fetchall()
    assert [block for block, _, _ in rows] == list(range(1, 1 + len(rows)))
    assert all(bytes(calldata[:4]) in CALLS_BY_SELECTOR for _, _, calldata in rows)
    assert decode_call(rows[0][2]).FUNCTION == "createTask"  # the revert was not journaled
    events = [name for (name,) in db.execute("SELECT event FROM logs ORDER BY block, log_index")]
    assert events[:2] == ["TaskCreated", "TaskCreated"]
    assert events[-2:] == ["RoundOpened", "SeedSealed"]
    (topic0,) = db.execute("SELECT topic0 FROM logs WHERE event = 'RoundOpened'").fetchone()
    assert topic0 == RoundOpened.topic()
    created = db.execute("SELECT topic1 FROM logs WHERE event = 'TaskCreated'").fetchall()
    assert [int.from_bytes(t, "big") for (t,) in created] == [1, 2]
    db.close()


def test_reopening_with_another_identity_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    InMemoryChain(path, chain_id=5).close()
    with pytest.raises(ConfigError):
        InMemoryChain(path, chain_id=6)
    with pytest.raises(ConfigError):
        InMemoryChain(path, randao_seed=keccak(b"other"))
    with InMemoryChain(path, chain_id=5, contract_address=ANVIL_FIRST_CONTRACT.lower()) as same:
        assert same.chain_id == 5


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE logs SET data = x'00' WHERE event = 'TaskCreated'",
        "UPDATE transactions SET sender = '0x0000000000000000000000000000000000000001'",
        "DELETE FROM transactions WHERE block = 1",
        "DELETE FROM transactions WHERE block = (SELECT MAX(block) FROM transactions)",
        "UPDATE transactions SET calldata = x'deadbeef'",
        "UPDATE meta SET value = '0' WHERE key = 'format_version'",
    ],
)
def test_a_tampered_file_is_refused_on_reopen(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "run.sqlite"
    with InMemoryChain(path) as chain:
        world_on(chain).started_task()
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute(tamper)
    db.commit()
    db.close()
    with pytest.raises(JournalError):
        InMemoryChain(path)


def test_an_unreadable_database_is_a_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError):
        InMemoryChain(path)


def test_created_event_positions(tmp_path: Path) -> None:
    with InMemoryChain(tmp_path / "c.sqlite") as chain:
        world = world_on(chain)
        world.create_task()
        world.create_task()
        logs = chain.events([TaskCreated], from_block=2)
        assert [(log.block_number, log.log_index) for log in logs] == [(2, 0)]
        assert chain.events(to_block=1) == chain.events(task_id=1)


def test_a_failed_journal_write_is_reported_and_the_file_stays_consistent(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    chain = InMemoryChain(path)
    world = world_on(chain)
    world.create_task()
    chain.close()
    with pytest.raises(JournalError):
        world.create_task()
    with InMemoryChain(path) as reopened:
        assert (reopened.task_count(), reopened.block_number()) == (1, 1)

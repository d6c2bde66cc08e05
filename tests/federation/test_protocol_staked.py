"""A participant of a staked task bonds its stake when it registers and claims a seat exactly
when the stake-weighted sortition grants one (docs/protocol.md §2.4, §2.6), so the chain never
refuses its claim and it never leaves a won seat unclaimed."""

from eth_account import Account
from eth_utils import keccak

from flare.chain import ContentRef, InMemoryChain, TaskCreated, TaskParams
from flare.crypto import SecretKey, vrf
from flare.federation.protocol.roles import ProtocolParticipant
from flare.storage import CODEC_RAW

MIN_STAKE = 10**17
STAKES = (MIN_STAKE, MIN_STAKE, 2 * MIN_STAKE, 0, 30 * MIN_STAKE)
"""What each device bonds; zero bonds the task's minimum."""


def device(number: int, stake: int) -> ProtocolParticipant:
    account = Account.from_key(keccak(b"staked-device-%d" % number))
    key = SecretKey.from_seed(keccak(b"staked-bls-%d" % number))
    return ProtocolParticipant(f"device {number}", account, key, stake=stake)


def test_devices_bond_their_stakes_and_claim_exactly_the_seats_their_stake_wins():
    chain = InMemoryChain()
    creator = chain.as_sender(Account.from_key(keccak(b"staked-creator")))
    params = TaskParams(2, 3, 1, 6_667, 40, 20, 1, 5)
    model = ContentRef(CODEC_RAW, keccak(b"model"))
    receipt = creator.create_staked_task(model, model, params, MIN_STAKE)
    task_id = receipt.one(TaskCreated).task_id
    devices = [device(number, stake) for number, stake in enumerate(STAKES)]
    for each in devices:
        each.register(chain, task_id)
    bonded = [chain.stake_of(task_id, each.address) for each in devices]
    assert bonded == [stake or MIN_STAKE for stake in STAKES]
    creator.start_task(task_id)
    creator.seal_seed(task_id)
    total = chain.stake_snapshot(task_id)
    assert total == sum(bonded) == chain.contract_balance()

    opened = chain.round_opened(task_id, 1, 0)
    seated = []
    for each, stake in zip(devices, bonded, strict=True):
        output = each.claim_seat_if_drawn(chain, opened, 3)
        _, drawn = each.vrf_proof(chain, opened)
        assert (output is not None) == vrf.seat_granted(drawn, 3 * stake, total)
        if output is not None:
            seated.append(each.address)
    assert devices[4].address in seated  # 3 · 30 ≥ 35: the largest stake always sits
    assert len(seated) < len(devices)  # k = 3 of 35 units: most small stakes lose
    assert [seat.member for seat in chain.committee(task_id, 1, 0)] == seated

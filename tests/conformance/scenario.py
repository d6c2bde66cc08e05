"""Test identities and a small driver that plays the protocol against any harness.

Everything here reads the chain only through :class:`ChainConnector`, so the same
scenarios hold for the in-memory chain and for a real node, where seeds (``prevrandao``)
are not predictable: proofs are always computed from the seed the chain reports.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from flare.chain import (
    ChainConnector,
    ChainError,
    ContentRef,
    Receipt,
    TaskCreated,
    TaskParams,
)
from flare.chain.api.admission import admission_proof, admission_root
from flare.chain.api.errors import TaskNotStarted
from flare.crypto import SecretKey, vrf
from flare.crypto.identity import possession_message, prove_task_possession
from flare.storage import CODEC_RAW

IDENTITY_COUNT = 10


@dataclass(frozen=True)
class Identity:
    """A participant's Ethereum account and BLS key."""

    account: LocalAccount
    bls_key: SecretKey
    public_key: bytes

    @property
    def address(self) -> str:
        return self.account.address

    def possession_proof(self, chain: ChainConnector, task_id: int, account: str = "") -> bytes:
        """The proof that registers this key for ``account`` (by default its own) in a task."""
        message = possession_message(
            chain.chain_id,
            bytes.fromhex(chain.contract_address[2:]),
            task_id,
            bytes.fromhex((account or self.address)[2:]),
        )
        return prove_task_possession(self.bls_key, message)


@cache
def identities() -> tuple[Identity, ...]:
    """Deterministic identities, built once per test session (key derivation is slow)."""
    made = []
    for number in range(IDENTITY_COUNT):
        account = Account.from_key(keccak(b"flare-conformance-account-%d" % number))
        bls_key = SecretKey.from_seed(keccak(b"flare-conformance-bls-%d" % number))
        made.append(Identity(account, bls_key, bls_key.public_key()))
    return tuple(made)


def content(label: str) -> ContentRef:
    """A raw-codec CID whose digest is derived from ``label``."""
    return ContentRef(CODEC_RAW, keccak(label.encode()))


INITIAL_MODEL = content("initial model")
MANIFEST = content("validation set")


def task_params(**overrides: int) -> TaskParams:
    """Parameters where every registered participant wins a seat (``k`` is large)."""
    values = {
        "min_clients": 2,
        "expected_committee": 100,
        "min_committee": 1,
        "quorum_bps": 6_000,
        "submission_window": 10,
        "vote_window": 10,
        "max_rounds": 3,
        "max_attempts": 5,
    }
    values.update(overrides)
    return TaskParams(**values)


class World:
    """One chain under test and the identities acting on it."""

    def __init__(
        self,
        chain: ChainConnector,
        mine: Callable[[int], None],
        prevrandao: Callable[[int], int] | None = None,
        contract_balance: Callable[[], int] | None = None,
    ) -> None:
        self.chain = chain
        self.mine = mine
        self._prevrandao = prevrandao
        self._contract_balance = contract_balance
        self.ids = identities()

    def prevrandao(self, block_number: int) -> int:
        """``block.prevrandao`` of a mined block, from the harness that made this world."""
        if self._prevrandao is None:
            raise NotImplementedError("this world was built without access to block headers")
        return self._prevrandao(block_number)

    def contract_balance(self) -> int:
        """The wei the contract holds, from the harness that made this world."""
        if self._contract_balance is None:
            raise NotImplementedError("this world was built without access to balances")
        return self._contract_balance()

    def by(self, who: int) -> ChainConnector:
        """The chain as seen by identity ``who``."""
        return self.chain.as_sender(self.ids[who].account)

    def address(self, who: int) -> str:
        return self.ids[who].address

    # -- clock -------------------------------------------------------------------------

    def mine_to(self, head: int) -> None:
        """Mine until the head is ``head``, so the next transaction lands in ``head + 1``."""
        missing = head - self.chain.block_number()
        assert missing >= 0, "cannot move the clock backwards"
        if missing:
            self.mine(missing)

    def to_voting(self, task_id: int) -> None:
        """Next transaction lands in the first block of the vote window."""
        self.mine_to(self.chain.current_round(task_id).submission_deadline)

    def to_expiry(self, task_id: int) -> None:
        """Next transaction lands in the first block after the vote window."""
        self.mine_to(self.chain.current_round(task_id).vote_deadline)

    # -- protocol steps ----------------------------------------------------------------

    def create_task(self, creator: int = 0, **params: int) -> int:
        receipt = self.by(creator).create_task(INITIAL_MODEL, MANIFEST, task_params(**params))
        return receipt.one(TaskCreated).task_id

    def create_permissioned_task(self, fleet: tuple[int, ...], creator: int = 0) -> int:
        """A task only identities ``fleet`` may join, created by ``creator``."""
        root = admission_root(self.address(number) for number in fleet)
        receipt = self.by(creator).create_permissioned_task(
            INITIAL_MODEL, MANIFEST, task_params(), root
        )
        return receipt.one(TaskCreated).task_id

    def admit(self, task_id: int, fleet: tuple[int, ...], *who: int) -> None:
        """Register ``who`` in a permissioned task, each with its proof against ``fleet``."""
        addresses = [self.address(number) for number in fleet]
        for number in who:
            identity = self.ids[number]
            self.by(number).register_admitted(
                task_id,
                identity.public_key,
                identity.possession_proof(self.chain, task_id),
                admission_proof(addresses, identity.address),
            )

    def create_staked_task(self, min_stake: int, creator: int = 0, **params: int) -> int:
        """A task whose participants bond at least ``min_stake`` wei, created by ``creator``."""
        receipt = self.by(creator).create_staked_task(
            INITIAL_MODEL, MANIFEST, task_params(**params), min_stake
        )
        return receipt.one(TaskCreated).task_id

    def bond(self, task_id: int, stakes: dict[int, int]) -> None:
        """Register each identity of ``stakes`` in a staked task, bonding its stake."""
        for number, stake in stakes.items():
            identity = self.ids[number]
            proof = identity.possession_proof(self.chain, task_id)
            self.by(number).register_staked(task_id, identity.public_key, proof, stake)

    def register(self, task_id: int, *who: int) -> None:
        for number in who:
            identity = self.ids[number]
            proof = identity.possession_proof(self.chain, task_id)
            self.by(number).register(task_id, identity.public_key, proof)

    def started_task(self, registered: int = 4, *, sealed: bool = True, **params: int) -> int:
        """A task with identities ``0..registered-1`` registered and round 1 open (created
        and started by identity 0), its seed sealed unless ``sealed`` is false."""
        task_id = self.create_task(**params)
        self.register(task_id, *range(registered))
        self.by(0).start_task(task_id)
        if sealed:
            self.by(0).seal_seed(task_id)
        return task_id

    def vrf_message(self, task_id: int, round_number: int, attempt: int, seed: bytes) -> bytes:
        contract = bytes.fromhex(self.chain.contract_address[2:])
        return vrf.vrf_input(self.chain.chain_id, contract, task_id, round_number, attempt, seed)

    def proof(self, task_id: int, who: int) -> bytes:
        """``who``'s VRF proof for the task's current attempt."""
        current = self.chain.current_round(task_id)
        message = self.vrf_message(task_id, current.round, current.attempt, current.seed)
        return vrf.prove(self.ids[who].bls_key, message)

    def claim(self, task_id: int, *who: int) -> list[Receipt]:
        return [
            self.by(number).claim_seat(
                task_id, self.ids[number].public_key, self.proof(task_id, number)
            )
            for number in who
        ]

    def submit(self, task_id: int, *who: int) -> None:
        current = self.chain.current_round(task_id)
        for number in who:
            label = f"update {current.round}/{current.attempt} by {number}"
            self.by(number).submit(task_id, content(label), 10 + number)

    def voting_task(
        self,
        registered: int = 4,
        submitters: tuple[int, ...] = (0, 1, 2),
        members: tuple[int, ...] = (0, 1, 2, 3),
        **params: int,
    ) -> int:
        """A started task whose attempt has its submissions and seats, now in the vote window."""
        task_id = self.started_task(registered, **params)
        self.submit(task_id, *submitters)
        self.claim(task_id, *members)
        self.to_voting(task_id)
        return task_id

    # -- revert checking ---------------------------------------------------------------

    def snapshot(self) -> list[object]:
        """Everything the views and logs show, to prove a reverted call changed nothing."""
        chain = self.chain
        state: list[object] = [chain.block_number(), chain.task_count(), chain.events()]
        for task_id in range(1, chain.task_count() + 1):
            task = chain.task(task_id)
            state.append(task)
            state.append(chain.admission_root(task_id))
            state.append(chain.min_stake(task_id))
            try:
                state.append(chain.current_round(task_id))
                state.append(chain.stake_snapshot(task_id))
            except TaskNotStarted as exc:
                state.append(exc)
            state.extend(chain.participant(task_id, identity.address) for identity in self.ids)
            state.extend(chain.stake_of(task_id, identity.address) for identity in self.ids)
            state.extend(chain.proposal(task_id, p) for p in range(1, task.proposal_count + 1))
        return state

    def reverts(self, expected: ChainError, action: Callable[[], object]) -> None:
        """``action`` raises exactly ``expected`` and leaves every view and log unchanged."""
        before = self.snapshot()
        with pytest.raises(type(expected)) as raised:
            action()
        assert raised.value == expected
        assert self.snapshot() == before

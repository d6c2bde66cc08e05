"""A participant's identity and its transactions, through ``ChainConnector`` and a store.

A :class:`ProtocolParticipant` holds one device's keys and sends what the protocol asks of
it: registration with a proof of possession, the binding of its updates, submissions, VRF
seat claims, proposals and approvals. *When* to send each is the actor's business
(``actor.py``, ``committee.py``). A dishonest member (for experiments) aggregates with the
plain average of everything, attackers included.
"""

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from flare.aggregation import make_aggregator
from flare.aggregation.base import Aggregator
from flare.chain import ChainConnector, ContentRef, Proposed, RoundFinalized, RoundOpened
from flare.chain.api.admission import admission_proof
from flare.compression.base import UpdateBinding
from flare.crypto import vrf
from flare.crypto.bls import SecretKey
from flare.crypto.identity import possession_message, prove_task_possession
from flare.errors import ConfigError
from flare.federation.protocol.aggregate import RoundAggregate, TaskContext, compute_aggregate
from flare.federation.protocol.update_fetches import UpdateFetches
from flare.storage import StorageProvider


@dataclass(frozen=True)
class Vote:
    """One committee vote, as the report shows it."""

    member: str
    proposal_id: int
    approve: bool
    finalized: bool


class ProtocolParticipant:
    """A registered device: an Ethereum account, a BLS key, and its behaviour."""

    def __init__(
        self,
        name: str,
        account: LocalAccount,
        bls_key: SecretKey,
        *,
        honest_member: bool = True,
        admitted: tuple[str, ...] = (),
        stake: int = 0,
    ) -> None:
        self.name = name
        self.account = account
        self.bls_key = bls_key
        self.honest_member = honest_member
        self.admitted = admitted
        """The admission list of a permissioned task, from which this device proves it may
        register (docs/protocol.md §2.5); empty for an open task."""
        self.stake = stake
        """The wei this device bonds when it registers in a staked task (docs/protocol.md
        §2.6); zero bonds the task's minimum."""
        self._public_key = bls_key.public_key()

    @property
    def address(self) -> str:
        return self.account.address

    def register(self, chain: ChainConnector, task_id: int) -> None:
        message = possession_message(
            chain.chain_id,
            bytes.fromhex(chain.contract_address[2:]),
            task_id,
            bytes.fromhex(self.address[2:]),
        )
        proof = prove_task_possession(self.bls_key, message)
        sender = chain.as_sender(self.account)
        min_stake = chain.min_stake(task_id)
        if min_stake:
            sender.register_staked(task_id, self._public_key, proof, self.stake or min_stake)
            return
        if chain.admission_root(task_id) == bytes(32):
            sender.register(task_id, self._public_key, proof)
            return
        if not self.admitted:
            raise ConfigError(
                f"task {task_id} admits only listed devices: give the admission list (--admit)"
            )
        admission = admission_proof(self.admitted, self.address)
        sender.register_admitted(task_id, self._public_key, proof, admission)

    def binding(self, context: TaskContext, opened: RoundOpened, num_samples: int) -> UpdateBinding:
        """What this participant's update in ``opened`` is bound to: its sender, the task,
        the attempt and the attempt's base model."""
        return UpdateBinding(
            sender=self.address,
            task=context.label,
            round=opened.round,
            attempt=opened.attempt,
            base_model=opened.base_model.to_cid(),
            num_samples=num_samples,
        )

    def submit(self, chain: ChainConnector, task_id: int, cid: str, num_samples: int) -> None:
        """Name the uploaded update on chain for the current attempt."""
        chain.as_sender(self.account).submit(task_id, ContentRef.from_cid(cid), num_samples)

    def vrf_proof(self, chain: ChainConnector, opened: RoundOpened) -> tuple[bytes, bytes]:
        """This participant's VRF proof and output for the attempt ``opened`` describes;
        raises ``SeedNotSealed`` until the attempt's seed exists."""
        message = vrf.vrf_input(
            chain.chain_id,
            bytes.fromhex(chain.contract_address[2:]),
            opened.task_id,
            opened.round,
            opened.attempt,
            chain.attempt_seed(opened.task_id, opened.round, opened.attempt),
        )
        proof = vrf.prove(self.bls_key, message)
        return proof, vrf.output(proof)

    def claim_seat_if_drawn(
        self, chain: ChainConnector, opened: RoundOpened, expected_committee: int
    ) -> bytes | None:
        """Claim a seat when the VRF output falls under the threshold; return the output.

        ``expected_committee`` is the attempt's ``k`` (``Round.expected_committee``), which an
        under-filled attempt before it in the round doubled, not the task's parameter.

        In a staked task the threshold weighs this device's stake against the stake of the
        attempt's snapshot (docs/protocol.md §2.4), as the contract does.
        """
        proof, output = self.vrf_proof(chain, opened)
        weight, population = expected_committee, opened.registered_snapshot
        if chain.min_stake(opened.task_id):
            weight *= chain.stake_of(opened.task_id, self.address)
            population = chain.stake_snapshot(opened.task_id)
        if not vrf.seat_granted(output, weight, population):
            return None
        chain.as_sender(self.account).claim_seat(opened.task_id, self._public_key, proof)
        return output

    def aggregate(
        self,
        chain: ChainConnector,
        store: StorageProvider,
        context: TaskContext,
        opened: RoundOpened,
        fetches: UpdateFetches | None = None,
    ) -> RoundAggregate:
        """What this member proposes and votes for (from ``fetches`` if already fetched)."""
        return compute_aggregate(
            chain, store, context, opened.round, opened.attempt, self.rule(), fetches=fetches
        )

    def rule(self) -> Aggregator | None:
        """The rule this member aggregates with: the task's own (None), or for a dishonest
        member the plain average of everything."""
        return None if self.honest_member else make_aggregator("fedavg")

    def propose_unless_present(
        self,
        chain: ChainConnector,
        store: StorageProvider,
        task_id: int,
        mine: RoundAggregate,
        proposals: list[Proposed],
    ) -> Proposed | None:
        """Propose ``mine`` unless an identical proposal already stands."""
        if matching_proposal(mine, proposals) is not None:
            return None
        store.put(mine.model_blob)
        store.pin(mine.model.to_cid())
        receipt = chain.as_sender(self.account).propose(task_id, mine.model, mine.accepted_bitmap)
        return receipt.one(Proposed)

    def approve(self, chain: ChainConnector, task_id: int, proposal: Proposed) -> Vote:
        """Approve ``proposal``, which the caller found identical to its own aggregate.

        Honest members never vote to reject: a member votes once per attempt, and a
        rejection would forfeit its approval of an honest proposal still to come.
        """
        receipt = chain.as_sender(self.account).vote(task_id, proposal.proposal_id, True)
        finalized = any(isinstance(e, RoundFinalized) for e in receipt.events)
        return Vote(self.address, proposal.proposal_id, True, finalized)


def matching_proposal(mine: RoundAggregate, proposals: list[Proposed]) -> Proposed | None:
    """The first (lowest-id) proposal identical to ``mine``: model CID and accepted bitmap.

    Honest members all back the lowest-id match, so duplicate proposals of the same
    aggregate cannot split their votes.
    """
    for proposal in proposals:
        if proposal.model == mine.model and proposal.accepted == mine.accepted_bitmap:
            return proposal
    return None

"""Write contracts/test/fixtures/coordinator.json: the in-memory chain's trace of a scenario.

Run from the repository root: ``.venv/bin/python scripts/gen_coordinator_fixtures.py``. The
output is deterministic; ``--check`` exits 1 if the checked-in file differs from what it
would write.

The scenario plays four tasks through :class:`flare.chain.InMemoryChain` (chain id 31337,
contract ``0x5FbDB…0aa3``) and reaches every transition and every custom error of
docs/protocol.md that one transaction per block allows (``SeedTooEarly`` needs two in one
block: the forge unit tests and ``tests/chain/test_chain_memory.py`` cover it), with real BLS
keys, proofs of possession and VRF proofs from ``flare.crypto``. Each step records what a
transaction or view sends (sender, block, ``prevrandao``, calldata) and what the Python
implementation answered: success with its return data and its logs (topics and data,
exactly as the EVM logs them), or the revert data of the custom error.
``FlareCoordinatorTrace.t.sol`` replays every step against the Solidity contract deployed
at the same address and compares byte for byte, which makes the contract and
``flare.chain`` one implementation as far as this scenario reaches.

The file also lists the participants' secret keys (test keys, nothing else uses them), so
the Solidity tests can check their own BLS signer against ``flare.crypto``.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from flare.chain import ContentRef, InMemoryChain, TaskParams
from flare.chain.api import errors as e
from flare.chain.api.abi import field_types, selector, signature, to_abi, word
from flare.chain.api.calls import (
    Call,
    CancelTask,
    ClaimSeat,
    CreateTask,
    Propose,
    Register,
    SealSeed,
    StartTask,
    Submit,
    Timeout,
    Vote,
    encode_call,
)
from flare.chain.api.derive import encode_accepted
from flare.chain.api.errors import ContractError
from flare.chain.api.events import encode_log
from flare.chain.api.types import Participant, Proposal, Round, Task
from flare.chain.memory.chain import ANVIL_CHAIN_ID, ANVIL_FIRST_CONTRACT
from flare.crypto import SecretKey, vrf
from flare.crypto.identity import possession_message, prove_task_possession
from flare.storage import CODEC_DAG_PB, CODEC_RAW

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "contracts" / "test" / "fixtures" / "coordinator.json"
PARTICIPANTS = 11
"""Ten participants register before task 1 starts, the eleventh after the snapshot."""
CODEC_DAG_CBOR = 0x71


def hexed(data: bytes) -> str:
    return "0x" + data.hex()


@dataclass(frozen=True)
class Identity:
    """A test participant: an Ethereum account and a BLS key."""

    address: str
    secret_key: SecretKey

    @property
    def public_key(self) -> bytes:
        return self.secret_key.public_key()

    def possession(self, task_id: int, address: str | None = None) -> bytes:
        """Proof of possession for registering ``address`` (by default its own) in a task of
        the fixture's deployment."""
        message = possession_message(
            ANVIL_CHAIN_ID,
            bytes.fromhex(ANVIL_FIRST_CONTRACT[2:]),
            task_id,
            bytes.fromhex((address or self.address)[2:]),
        )
        return prove_task_possession(self.secret_key, message)


def identities() -> list[Identity]:
    made = []
    for number in range(PARTICIPANTS):
        account = Account.from_key(keccak(b"flare-coordinator-fixture-account-%d" % number))
        key = SecretKey.from_seed(keccak(b"flare-coordinator-fixture-bls-%d" % number))
        made.append(Identity(account.address, key))
    return made


CREATOR = Account.from_key(keccak(b"flare-coordinator-fixture-creator")).address
STRANGER = Account.from_key(keccak(b"flare-coordinator-fixture-stranger")).address


def content(label: str, codec: int = CODEC_RAW) -> ContentRef:
    return ContentRef(codec, keccak(label.encode()))


class Unsuitable(Exception):
    """This randao seed draws too few seats for the scenario; the generator tries the next."""


class Recorder:
    """Sends calls to the in-memory chain and records each step with its outcome."""

    def __init__(self, chain: InMemoryChain) -> None:
        self.chain = chain
        self.steps: list[dict[str, Any]] = []

    def tx(self, sender: str, call: Call, expect: type[ContractError] | None = None) -> Any:
        """Send ``call``; ``expect`` names the error it must revert with (None: success)."""
        block = self.chain.block_number() + 1
        step: dict[str, Any] = {
            "kind": "tx",
            "sender": sender,
            "block": block,
            "prevrandao": hexed(word(self.chain.prevrandao(block))),
            "calldata": hexed(encode_call(call)),
        }
        try:
            receipt = self.chain.as_sender(_Sender(sender)).transact(call)
        except ContractError as error:
            if type(error) is not expect:
                raise AssertionError(f"{call!r} raised {error!r}, expected {expect}") from error
            step.update(success=False, returndata=hexed(error.encode()), logs=[])
            self.steps.append(step)
            return error
        if expect is not None:
            raise AssertionError(f"{call!r} succeeded, expected {expect.__name__}")
        returned = b""
        if isinstance(call, CreateTask):
            returned = word(receipt.events[0].task_id)
        elif isinstance(call, Propose):
            returned = word(receipt.events[0].proposal_id)
        logs = []
        for event in receipt.events:
            topics, data = encode_log(event)
            logs.append({"topics": [hexed(t) for t in topics], "data": hexed(data)})
        step.update(success=True, returndata=hexed(returned), logs=logs)
        self.steps.append(step)
        return receipt

    def view(self, name: str, types: list[str], args: list[Any], result_type: type | None = None):
        """Call a view of the in-memory chain and record its ABI-encoded answer."""
        calldata = selector(signature(name, types)) + encode(types, args)
        method = {
            "taskCount": self.chain.task_count,
            "getTask": self.chain.task,
            "getRound": self.chain.current_round,
            "getParticipant": self.chain.participant,
            "getProposal": self.chain.proposal,
        }[name]
        step: dict[str, Any] = {"kind": "view", "calldata": hexed(calldata), "logs": []}
        try:
            value = method(*args)
        except ContractError as error:
            step.update(success=False, returndata=hexed(error.encode()))
        else:
            if result_type is None:
                returned = encode(["uint256"], [value])
            else:
                returned = encode(["(" + ",".join(field_types(result_type)) + ")"], [to_abi(value)])
            step.update(success=True, returndata=hexed(returned))
        self.steps.append(step)

    def views(self, task_id: int, accounts: list[str], proposals: int) -> None:
        """Record every view of one task."""
        self.view("taskCount", [], [])
        self.view("getTask", ["uint256"], [task_id], Task)
        self.view("getRound", ["uint256"], [task_id], Round)
        for account in accounts:
            self.view("getParticipant", ["uint256", "address"], [task_id, account], Participant)
        for proposal_id in range(proposals + 2):
            self.view("getProposal", ["uint256", "uint32"], [task_id, proposal_id], Proposal)

    def mine_to(self, block: int) -> None:
        """Mine empty blocks so that the next transaction lands in ``block``."""
        head = self.chain.block_number()
        if block - 1 < head:
            raise AssertionError(f"block {block} is in the past (head {head})")
        self.chain.mine(block - 1 - head)


@dataclass(frozen=True)
class _Sender:
    address: str


def vrf_proof(chain: InMemoryChain, who: Identity, task_id: int, attempt_of: Any) -> bytes:
    """``who``'s VRF proof for the given round attempt (``attempt_of`` is a ``Round``)."""
    message = vrf.vrf_input(
        chain.chain_id,
        bytes.fromhex(chain.contract_address[2:]),
        task_id,
        attempt_of.round,
        attempt_of.attempt,
        attempt_of.seed,
    )
    return vrf.prove(who.secret_key, message)


def draw(chain: InMemoryChain, people: list[Identity], task_id: int) -> tuple[list, list]:
    """Winners and losers of the current attempt among ``people`` registered before it."""
    current = chain.current_round(task_id)
    winners, losers = [], []
    for who in people:
        proof = vrf_proof(chain, who, task_id, current)
        won = vrf.seat_granted(
            vrf.output(proof), current.expected_committee, current.registered_snapshot
        )
        (winners if won else losers).append((who, proof))
    return winners, losers


def task_one(rec: Recorder, people: list[Identity]) -> None:
    """Task 1: every error, timeouts, a stale proposal, two finalized rounds."""
    chain = rec.chain
    early, late = people[:10], people[10]
    model0, validation = content("initial model"), content("validation set", CODEC_DAG_PB)
    params = TaskParams(3, 5, 3, 6_000, 30, 20, 2, 4)

    rec.view("taskCount", [], [])
    rec.views(1, [], 0)
    # createTask: codecs, then every parameter in order.
    rec.tx(
        CREATOR, CreateTask(content("m", CODEC_DAG_CBOR), validation, params), e.UnsupportedCodec
    )
    rec.tx(CREATOR, CreateTask(model0, ContentRef(0x12, bytes(32)), params), e.UnsupportedCodec)
    rec.tx(
        CREATOR,
        CreateTask(
            content("m", 0), ContentRef(0x12, bytes(32)), TaskParams(0, 0, 0, 0, 0, 0, 0, 0)
        ),
        e.UnsupportedCodec,
    )
    for index, bad in enumerate(
        [
            TaskParams(0, 5, 3, 6_000, 30, 20, 2, 4),
            TaskParams(3, 0, 3, 6_000, 30, 20, 2, 4),
            TaskParams(3, 5, 0, 6_000, 30, 20, 2, 4),
            TaskParams(3, 5, 3, 0, 30, 20, 2, 4),
            TaskParams(3, 5, 3, 6_000, 0, 20, 2, 4),
            TaskParams(3, 5, 3, 6_000, 30, 0, 2, 4),
            TaskParams(3, 5, 3, 6_000, 30, 20, 0, 4),
            TaskParams(3, 5, 3, 6_000, 30, 20, 2, 0),
        ]
    ):
        rec.tx(CREATOR, CreateTask(model0, validation, bad), e.InvalidTaskParameter)
        assert rec.steps[-1]["returndata"].endswith(f"{index:02x}")
    for bad, index in (
        (TaskParams(3, 5, 6, 6_000, 30, 20, 2, 4), 2),  # minCommittee above k
        (TaskParams(3, 5, 3, 5_000, 30, 20, 2, 4), 3),  # half the committee is no majority
        (TaskParams(3, 5, 3, 10_001, 30, 20, 2, 4), 3),
        (TaskParams(1, 0, 0, 0, 0, 0, 0, 0), 1),
    ):
        rec.tx(CREATOR, CreateTask(model0, validation, bad), e.InvalidTaskParameter)
        assert rec.steps[-1]["returndata"].endswith(f"{index:02x}")
    rec.tx(CREATOR, CreateTask(model0, validation, params))
    rec.views(1, [STRANGER], 0)
    rec.view("getParticipant", ["uint256", "address"], [0, STRANGER], Participant)
    rec.view("getProposal", ["uint256", "uint32"], [2, 1], Proposal)

    p0, p1, p2 = early[0], early[1], early[2]
    rec.tx(p0.address, Register(0, p0.public_key, p0.possession(0)), e.UnknownTask)
    rec.tx(p0.address, Register(2, p0.public_key, p0.possession(2)), e.UnknownTask)
    rec.tx(p0.address, StartTask(1), e.NotTaskCreator)
    rec.tx(CREATOR, StartTask(1), e.TooFewParticipants)
    rec.tx(p0.address, StartTask(0), e.UnknownTask)
    rec.tx(p0.address, CancelTask(2), e.UnknownTask)
    rec.tx(p0.address, CancelTask(1), e.NotTaskCreator)
    rec.tx(p0.address, SealSeed(2), e.UnknownTask)
    rec.tx(p0.address, SealSeed(1), e.TaskNotStarted)
    rec.tx(p0.address, Submit(1, content("u"), 1), e.TaskNotStarted)
    rec.tx(p0.address, ClaimSeat(1, p0.public_key, bytes(128)), e.TaskNotStarted)
    rec.tx(p0.address, Propose(1, content("g"), b""), e.TaskNotStarted)
    rec.tx(p0.address, Vote(1, 1, True), e.TaskNotStarted)
    rec.tx(p0.address, Timeout(1), e.TaskNotStarted)
    rec.tx(p0.address, Timeout(3), e.UnknownTask)
    rec.tx(p0.address, Register(1, p0.public_key, p0.possession(1)))
    rec.tx(p0.address, Register(1, b"", b""), e.AlreadyRegistered)
    rec.tx(p1.address, Register(1, p1.public_key[:255], b""), e.InvalidLength)
    rec.tx(p1.address, Register(1, p1.public_key + b"\x00", p1.possession(1)), e.InvalidLength)
    rec.tx(p1.address, Register(1, p1.public_key, p1.possession(1) + b"\x00"), e.InvalidLength)
    rec.tx(p1.address, Register(1, p0.public_key, p0.possession(1, p1.address)), e.PublicKeyTaken)
    rec.tx(
        p1.address,
        Register(1, p1.public_key, p1.possession(1, p2.address)),
        e.InvalidPossessionProof,
    )
    rec.tx(p1.address, Register(1, p1.public_key, p2.possession(1)), e.InvalidPossessionProof)
    # A proof made for another task proves nothing here.
    rec.tx(p1.address, Register(1, p1.public_key, p1.possession(2)), e.InvalidPossessionProof)
    rec.tx(p1.address, Register(1, bytes(256), bytes(128)), e.InvalidPossessionProof)
    rec.tx(p1.address, Register(1, p1.public_key, bytes(128)), e.InvalidPossessionProof)
    off_curve = bytearray(p1.possession(1))
    off_curve[127] ^= 1
    rec.tx(p1.address, Register(1, p1.public_key, bytes(off_curve)), e.InvalidPossessionProof)
    bad_key = bytearray(p1.public_key)
    bad_key[255] ^= 1
    rec.tx(p1.address, Register(1, bytes(bad_key), p1.possession(1)), e.InvalidPossessionProof)
    rec.tx(p1.address, Register(1, p1.public_key, p1.possession(1)))
    rec.tx(CREATOR, StartTask(1), e.TooFewParticipants)
    for who in early[2:]:
        rec.tx(who.address, Register(1, who.public_key, who.possession(1)))
    rec.views(1, [p0.address, STRANGER], 0)

    # Round 1 attempt 0: one seat only, so the attempt can only time out.
    rec.tx(STRANGER, StartTask(1), e.NotTaskCreator)
    rec.tx(CREATOR, StartTask(1))
    rec.tx(CREATOR, StartTask(1), e.TaskAlreadyStarted)
    rec.tx(p0.address, ClaimSeat(1, p0.public_key, bytes(128)), e.SeedNotSealed)
    rec.views(1, [p0.address], 0)
    rec.tx(STRANGER, SealSeed(1))
    rec.tx(p0.address, SealSeed(1), e.SeedAlreadySealed)
    rec.tx(late.address, Register(1, late.public_key, late.possession(1)))
    opened = chain.current_round(1)
    winners, losers = draw(chain, early, 1)
    if not winners or not losers:
        raise Unsuitable
    (w, w_proof), (loser, loser_proof) = winners[0], losers[0]
    rec.tx(STRANGER, ClaimSeat(1, w.public_key, w_proof), e.NotRegistered)
    rec.tx(late.address, ClaimSeat(1, late.public_key, w_proof), e.RegisteredAfterSnapshot)
    rec.tx(w.address, ClaimSeat(1, w.public_key[:100], w_proof), e.InvalidLength)
    rec.tx(w.address, ClaimSeat(1, loser.public_key, loser_proof), e.PublicKeyMismatch)
    rec.tx(w.address, ClaimSeat(1, w.public_key, b""), e.InvalidLength)
    rec.tx(w.address, ClaimSeat(1, w.public_key, w_proof + b"\x00"), e.InvalidLength)
    rec.tx(w.address, ClaimSeat(1, w.public_key, bytes(128)), e.InvalidVrfProof)
    rec.tx(w.address, ClaimSeat(1, w.public_key, loser_proof), e.InvalidVrfProof)
    wrong_attempt = vrf.prove(
        w.secret_key,
        vrf.vrf_input(
            chain.chain_id,
            bytes.fromhex(chain.contract_address[2:]),
            1,
            1,
            1,
            opened.seed,
        ),
    )
    rec.tx(w.address, ClaimSeat(1, w.public_key, wrong_attempt), e.InvalidVrfProof)
    rec.tx(w.address, ClaimSeat(1, w.public_key, w.possession(1)), e.InvalidVrfProof)
    flipped = bytearray(w_proof)
    flipped[64] ^= 0x80
    rec.tx(w.address, ClaimSeat(1, w.public_key, bytes(flipped)), e.InvalidVrfProof)
    rec.tx(loser.address, ClaimSeat(1, loser.public_key, loser_proof), e.NotSelected)
    rec.tx(w.address, ClaimSeat(1, w.public_key, w_proof))
    rec.tx(w.address, ClaimSeat(1, w.public_key, w_proof), e.SeatAlreadyClaimed)
    rec.tx(STRANGER, Submit(1, content("u0"), 10), e.NotRegistered)
    rec.tx(p0.address, Submit(1, content("u0"), 0), e.ZeroSampleCount)
    rec.tx(p0.address, Submit(1, content("u0", CODEC_DAG_CBOR), 10), e.UnsupportedCodec)
    rec.tx(p0.address, Submit(1, content("u0"), 10))
    rec.tx(p0.address, Submit(1, content("u0"), 10), e.AlreadySubmitted)
    rec.tx(late.address, Submit(1, content("late"), 2**64 - 1))
    rec.tx(p1.address, Submit(1, content("u1", CODEC_DAG_PB), 1))
    rec.tx(w.address, Propose(1, content("g"), b"\x07"), e.SubmissionWindowOpen)
    rec.tx(w.address, Vote(1, 1, True), e.SubmissionWindowOpen)
    rec.tx(STRANGER, Timeout(1), e.VoteWindowOpen)
    rec.mine_to(opened.submission_deadline)
    rec.tx(w.address, Propose(1, content("g"), b"\x0f"), e.SubmissionWindowOpen)
    rec.tx(p2.address, Submit(1, content("u2"), 7))
    rec.tx(p2.address, ClaimSeat(1, p2.public_key, bytes(128)), e.SubmissionWindowClosed)
    rec.tx(p2.address, SealSeed(1), e.SubmissionWindowClosed)
    rec.tx(early[3].address, Submit(1, content("u3"), 7), e.SubmissionWindowClosed)
    rec.tx(STRANGER, Propose(1, content("g"), b"\x0f"), e.NotCommitteeMember)
    rec.tx(loser.address, Propose(1, content("g"), b"\x0f"), e.NotCommitteeMember)
    rec.tx(w.address, Propose(1, content("g"), b"\x0f"), e.CommitteeTooSmall)
    rec.tx(loser.address, Vote(1, 1, True), e.NotCommitteeMember)
    rec.tx(w.address, Vote(1, 0, True), e.CommitteeTooSmall)
    rec.views(1, [w.address, p0.address, late.address], 0)
    rec.mine_to(opened.vote_deadline)
    rec.tx(STRANGER, Timeout(1), e.VoteWindowOpen)
    rec.tx(w.address, Vote(1, 1, False), e.CommitteeTooSmall)
    rec.mine_to(opened.vote_deadline + 1)
    rec.tx(w.address, Propose(1, content("g"), b"\x0f"), e.VoteWindowClosed)
    rec.tx(w.address, Vote(1, 1, False), e.VoteWindowClosed)
    rec.tx(STRANGER, Timeout(1))

    # Attempt 1: the first submission seals the seed; a committee, but too few submissions.
    rec.tx(p0.address, ClaimSeat(1, p0.public_key, bytes(128)), e.SeedNotSealed)
    rec.tx(p0.address, Submit(1, content("u0-a1"), 3))
    members = claim_all(rec, early, 1, minimum=3)
    rec.tx(late.address, Submit(1, content("late-a1"), 3))
    opened = chain.current_round(1)
    rec.mine_to(opened.submission_deadline + 1)
    rec.tx(members[0].address, Propose(1, content("g"), b"\x03"), e.TooFewSubmissions)
    rec.tx(members[0].address, Vote(1, 0, True), e.UnknownProposal)
    rec.tx(members[0].address, Vote(1, 1, True), e.UnknownProposal)
    rec.mine_to(opened.vote_deadline + 1)
    rec.tx(p0.address, Timeout(1))

    # Attempt 2: two proposals, votes that do not reach quorum, a timeout.
    for number, who in enumerate(early[:5]):
        rec.tx(who.address, Submit(1, content(f"u{number}-a2"), 100 + number))
    members = claim_all(rec, early, 1, minimum=3)
    opened = chain.current_round(1)
    rec.mine_to(opened.submission_deadline + 1)
    m0, m1 = members[0], members[1]
    rec.tx(m0.address, Propose(1, content("g", 0x12), b"\x1f"), e.UnsupportedCodec)
    rec.tx(m0.address, Propose(1, content("g"), b""), e.InvalidAcceptedBitmap)
    rec.tx(m0.address, Propose(1, content("g"), b"\x1f\x00"), e.InvalidAcceptedBitmap)
    rec.tx(m0.address, Propose(1, content("g"), b"\x20"), e.InvalidAcceptedBitmap)
    rec.tx(m0.address, Propose(1, content("g"), b"\x80"), e.InvalidAcceptedBitmap)
    rec.tx(m0.address, Propose(1, content("g", CODEC_DAG_PB), encode_accepted(range(5), 5)))
    rec.tx(m0.address, Propose(1, content("g"), b"\x00"), e.AlreadyProposed)
    rec.tx(m1.address, Propose(1, content("g2"), b"\x00"))
    rec.tx(m0.address, Vote(1, 1, False))
    rec.tx(m0.address, Vote(1, 1, True), e.AlreadyVoted)
    rec.tx(m1.address, Vote(1, 3, True), e.UnknownProposal)
    threshold = chain.current_round(1).quorum_threshold
    for member in members[1:threshold]:
        rec.tx(member.address, Vote(1, 1, True))
    rec.views(1, [m0.address, m1.address], 2)
    rec.mine_to(opened.vote_deadline + 1)
    rec.tx(m1.address, Vote(1, 2, True), e.VoteWindowClosed)
    rec.tx(STRANGER, Timeout(1))

    # Attempt 3: an old proposal is stale; a new one reaches quorum; round 2 opens.
    for number, who in enumerate([*early[:3], late]):
        rec.tx(who.address, Submit(1, content(f"u{number}-a3"), 50))
    members = claim_all(rec, early, 1, minimum=3)
    opened = chain.current_round(1)
    rec.mine_to(opened.submission_deadline + 1)
    rec.tx(members[0].address, Vote(1, 1, True), e.StaleProposal)
    rec.tx(members[0].address, Propose(1, content("round-1"), encode_accepted([0, 2, 3], 4)))
    finalize(rec, members, 1, 3)
    rec.views(1, [members[0].address], 3)

    # Round 2: the last round; its quorum completes the task.
    rec.tx(STRANGER, SealSeed(1))
    members = claim_all(rec, [*early, late], 1, minimum=3)
    for number, who in enumerate(early[3:]):
        rec.tx(who.address, Submit(1, content(f"u{number}-r2"), 9))
    opened = chain.current_round(1)
    rec.mine_to(opened.submission_deadline + 1)
    rec.tx(members[-1].address, Propose(1, content("round-2", CODEC_DAG_PB), b"\x7b"))
    finalize(rec, members, 1, 4)
    rec.views(1, [members[0].address, late.address], 4)
    ended_calls(rec, 1, p0, members[0])
    rec.mine_to(max(chain.current_round(1).vote_deadline + 1, chain.block_number() + 1))
    rec.tx(STRANGER, Timeout(1), e.TaskEnded)


def ended_calls(rec: Recorder, task_id: int, participant: Identity, member: Identity) -> None:
    """Every call on an ended task reverts ``TaskEnded``."""
    rec.tx(STRANGER, Register(task_id, b"", b""), e.TaskEnded)
    rec.tx(CREATOR, StartTask(task_id), e.TaskEnded)
    rec.tx(CREATOR, CancelTask(task_id), e.TaskEnded)
    rec.tx(STRANGER, SealSeed(task_id), e.TaskEnded)
    rec.tx(participant.address, Submit(task_id, content("after"), 1), e.TaskEnded)
    rec.tx(participant.address, ClaimSeat(task_id, b"", b""), e.TaskEnded)
    rec.tx(member.address, Propose(task_id, content("after"), b""), e.TaskEnded)
    rec.tx(member.address, Vote(task_id, 1, True), e.TaskEnded)
    rec.tx(STRANGER, Timeout(task_id), e.TaskEnded)


def claim_all(rec: Recorder, people: list[Identity], task_id: int, minimum: int) -> list[Identity]:
    """Every winner among ``people`` claims its seat; a loser's claim is refused."""
    winners, losers = draw(rec.chain, people, task_id)
    if len(winners) < minimum:
        raise Unsuitable
    for who, proof in winners:
        rec.tx(who.address, ClaimSeat(task_id, who.public_key, proof))
    for who, proof in losers[:1]:
        rec.tx(who.address, ClaimSeat(task_id, who.public_key, proof), e.NotSelected)
    return [who for who, _ in winners]


def finalize(rec: Recorder, members: list[Identity], task_id: int, proposal_id: int) -> None:
    """One rejection, then approvals until the quorum vote finalizes."""
    threshold = rec.chain.current_round(task_id).quorum_threshold
    if len(members) < threshold + 1:
        raise Unsuitable
    rec.tx(members[0].address, Vote(task_id, proposal_id, False))
    for member in members[1 : threshold + 1]:
        rec.tx(member.address, Vote(task_id, proposal_id, True))


def task_two(rec: Recorder, people: list[Identity]) -> None:
    """Task 2: keys are unique per task only; everyone wins when k >= n; unanimity."""
    chain = rec.chain
    p0, p1 = people[0], people[1]
    rec.tx(
        p1.address,
        CreateTask(content("t2"), content("t2-val"), TaskParams(1, 100, 1, 10_000, 4, 4, 1, 1)),
    )
    rec.tx(p0.address, Register(2, p0.public_key, p0.possession(2)))
    rec.tx(p1.address, Register(2, p1.public_key, p1.possession(2)))
    rec.tx(p1.address, StartTask(2))
    rec.tx(p1.address, Submit(2, content("t2-u"), 1))
    current = chain.current_round(2)
    for who in (p0, p1):
        rec.tx(who.address, ClaimSeat(2, who.public_key, vrf_proof(chain, who, 2, current)))
    rec.mine_to(current.submission_deadline + 1)
    rec.tx(p0.address, Propose(2, content("t2-g"), b"\x01"))
    rec.tx(p0.address, Vote(2, 5, True), e.UnknownProposal)
    rec.tx(p1.address, Vote(2, 1, True))
    rec.tx(p1.address, Vote(2, 1, False), e.AlreadyVoted)
    rec.tx(p0.address, Vote(2, 1, True))
    rec.views(2, [p0.address, p1.address], 1)
    rec.views(1, [p0.address], 4)


def task_three(rec: Recorder, people: list[Identity]) -> None:
    """Task 3: a rejection that puts quorum out of reach closes the attempt early; the round's
    last allowed attempt times out and the task fails."""
    chain = rec.chain
    p0, p1, p2 = people[0], people[1], people[2]
    rec.tx(
        CREATOR,
        CreateTask(content("t3"), content("t3-val"), TaskParams(1, 100, 2, 6_000, 4, 4, 1, 2)),
    )
    for who in (p0, p1, p2):
        rec.tx(who.address, Register(3, who.public_key, who.possession(3)))
    rec.tx(CREATOR, StartTask(3))
    rec.tx(p0.address, Submit(3, content("t3-u"), 1))
    current = chain.current_round(3)
    for who in (p0, p1, p2):
        rec.tx(who.address, ClaimSeat(3, who.public_key, vrf_proof(chain, who, 3, current)))
    rec.mine_to(current.submission_deadline + 1)
    rec.tx(p0.address, Propose(3, content("t3-g"), b"\x01"))
    rec.tx(p0.address, Vote(3, 1, True))
    rec.tx(p1.address, Vote(3, 1, False))  # 3 seats, threshold 2: one rejection still leaves 2
    rec.views(3, [p1.address], 1)
    rec.tx(p2.address, Vote(3, 1, False))  # the second leaves 1: the attempt closes
    rec.views(3, [p2.address], 1)
    rec.mine_to(chain.current_round(3).vote_deadline + 1)
    rec.tx(STRANGER, Timeout(3))  # attempt 1 of at most 2: the task fails
    rec.views(3, [p0.address], 1)
    ended_calls(rec, 3, p0, p0)


def task_four(rec: Recorder, people: list[Identity]) -> None:
    """Task 4: only its creator cancels it, while it runs; task 5, before it starts."""
    p3, p4 = people[3], people[4]
    rec.tx(
        p3.address,
        CreateTask(content("t4"), content("t4-val"), TaskParams(1, 100, 1, 10_000, 4, 4, 3, 3)),
    )
    rec.tx(p4.address, Register(4, p4.public_key, p4.possession(4)))
    rec.tx(p3.address, StartTask(4))
    rec.tx(p4.address, CancelTask(4), e.NotTaskCreator)
    rec.tx(p3.address, CancelTask(4))
    rec.views(4, [p4.address], 0)
    ended_calls(rec, 4, p4, p4)
    rec.tx(
        p3.address,
        CreateTask(content("t5"), content("t5-val"), TaskParams(1, 100, 1, 10_000, 4, 4, 3, 3)),
    )
    rec.tx(p3.address, CancelTask(5))
    rec.views(5, [p4.address], 0)


def scenario(randao_seed: bytes) -> list[dict[str, Any]]:
    people = identities()
    chain = InMemoryChain(randao_seed=randao_seed)
    rec = Recorder(chain)
    task_one(rec, people)
    task_two(rec, people)
    task_three(rec, people)
    task_four(rec, people)
    return rec.steps


def fixture() -> dict[str, Any]:
    people = identities()
    for attempt in range(100):
        randao_seed = keccak(b"flare-coordinator-fixtures-%d" % attempt)
        try:
            steps = scenario(randao_seed)
        except Unsuitable:
            continue
        break
    else:
        raise RuntimeError("no randao seed gives the scenario enough seats")
    chain = InMemoryChain(randao_seed=randao_seed)
    return {
        "source": "scripts/gen_coordinator_fixtures.py (flare.chain.InMemoryChain)",
        "chainId": chain.chain_id,
        "contract": chain.contract_address,
        "randaoSeed": hexed(randao_seed),
        "participants": [
            {
                "address": who.address,
                "secretKey": hexed(who.secret_key.to_bytes()),
                "publicKey": hexed(who.public_key),
                "possessionProof": hexed(who.possession(1)),
            }
            for who in people
        ],
        "steps": steps,
    }


def render() -> str:
    return json.dumps(fixture(), indent=1) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"stale fixture (rerun {Path(__file__).name}): {OUTPUT}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

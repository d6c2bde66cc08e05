"""The committee's proposals and votes (docs/protocol.md §4.6–4.7), as each task's
``proposals`` mapping in the contract keeps them, and the rules of the calls that move them.

Like the ledger's other handlers, each call here runs all its checks before it changes
anything; what an approval or the last possible rejection does to the attempt
(finalising it, closing it) is :class:`flare.chain.memory.task_state.TaskState`'s.
"""

from dataclasses import replace

from eth_utils import keccak

from flare.chain.api import errors
from flare.chain.api.calls import Propose, Vote
from flare.chain.api.derive import is_canonical_bitmap
from flare.chain.api.events import Event, Proposed, Voted
from flare.chain.api.types import Proposal
from flare.chain.memory.task_state import BlockContext, TaskState, check_codec, event


class Proposals:
    """Every proposal of one contract deployment, by task and proposal id."""

    def __init__(self) -> None:
        self._by_id: dict[tuple[int, int], Proposal] = {}

    def get(self, task_id: int, proposal_id: int) -> Proposal:
        """``getProposal(taskId, proposalId)`` of a known task; ``UnknownProposal`` if none."""
        found = self._by_id.get((task_id, proposal_id))
        if found is None:
            raise errors.UnknownProposal(task_id, proposal_id)
        return found

    def propose(self, state: TaskState, call: Propose, block: BlockContext) -> list[Event]:
        """``propose``: a committee member's proposal for the open attempt."""
        current, member = state.require_voting_member(block)
        if member.propose_epoch == current.epoch:
            raise errors.AlreadyProposed(call.task_id, block.sender)
        state.require_committee(current)
        params = state.task.params
        if current.submission_count < params.min_clients:
            raise errors.TooFewSubmissions(
                call.task_id, current.submission_count, params.min_clients
            )
        check_codec(call.model)
        if not is_canonical_bitmap(call.accepted, current.submission_count):
            raise errors.InvalidAcceptedBitmap(call.task_id, current.submission_count)
        proposal_id = state.task.proposal_count + 1
        self._by_id[(call.task_id, proposal_id)] = Proposal(
            proposer=block.sender,
            epoch=current.epoch,
            round=current.round,
            attempt=current.attempt,
            model=call.model,
            accepted_hash=keccak(call.accepted),
            approvals=0,
            rejections=0,
        )
        state.participants[block.sender] = replace(member, propose_epoch=current.epoch)
        state.task = replace(state.task, proposal_count=proposal_id)
        return [
            event(
                Proposed,
                block,
                call.task_id,
                current.round,
                block.sender,
                current.attempt,
                proposal_id,
                call.model,
                call.accepted,
            )
        ]

    def vote(self, state: TaskState, call: Vote, block: BlockContext) -> list[Event]:
        """``vote``: a committee member's vote, and the attempt's end when it settles it."""
        current, member = state.require_voting_member(block)
        if member.vote_epoch == current.epoch:
            raise errors.AlreadyVoted(call.task_id, block.sender)
        state.require_committee(current)
        proposal = self._by_id.get((call.task_id, call.proposal_id))
        if proposal is None:
            raise errors.UnknownProposal(call.task_id, call.proposal_id)
        if proposal.epoch != current.epoch:
            raise errors.StaleProposal(call.task_id, call.proposal_id)
        if call.approve:
            proposal = replace(proposal, approvals=proposal.approvals + 1)
        else:
            proposal = replace(proposal, rejections=proposal.rejections + 1)
        self._by_id[(call.task_id, call.proposal_id)] = proposal
        state.participants[block.sender] = replace(member, vote_epoch=current.epoch)
        events: list[Event] = [
            event(
                Voted,
                block,
                call.task_id,
                current.round,
                block.sender,
                current.attempt,
                call.proposal_id,
                call.approve,
                proposal.approvals,
                proposal.rejections,
            )
        ]
        if call.approve:
            if proposal.approvals >= current.quorum_threshold:
                events += state.finalize(current, call.proposal_id, proposal, block)
            return events
        # Approvals can only come from members who have not rejected (one vote each): once
        # fewer than the threshold are left, no proposal can reach quorum (protocol §4.7).
        current = replace(current, rejections=current.rejections + 1)
        state.round = current
        if current.rejections > current.committee_size - current.quorum_threshold:
            events += state.close_attempt(current, block, timed_out=False)
        return events

"""The round table says when attackers held seats and what became of their proposals."""

from typing import Any

import pytest

from flare.cli import main
from flare.cli.display import attackers_on, round_notes
from flare.federation.report import RoundRecord

HONEST_CID = "bafkhonest"
POISONED_CID = "bafkpoisoned"
SEATS = [
    {"member": f"client-{i}", "address": f"0x{i:040x}", "vrf_output": "0x00"} for i in range(4)
]
HONEST_PROPOSAL = {"id": 1, "proposer": "client-0", "model": HONEST_CID, "accepted": "0x0f"}
POISONED_PROPOSAL = {"id": 2, "proposer": "client-3", "model": POISONED_CID, "accepted": "0x0f"}


def _attempt(**overrides: Any) -> dict[str, Any]:
    attempt = {
        "attempt": 0,
        "committee": SEATS,
        "seats_needed": 3,
        "submissions_needed": 1,
        "approvals_needed": 3,
        "attackers_seated": ["client-3"],
        "sent": [seat["member"] for seat in SEATS],
        "proposals": [HONEST_PROPOSAL, POISONED_PROPOSAL],
        "votes": [],
        "finalized": False,
    }
    return {**attempt, **overrides}


def _vote(member: str, proposal: int, approve: bool = True) -> dict[str, Any]:
    return {"member": member, "proposal": proposal, "approve": approve}


def test_no_seated_attacker_gives_no_line():
    assert attackers_on(_attempt(attackers_seated=[])) is None


def test_an_outvoted_proposal_says_its_approvals_against_the_quorum():
    votes = [_vote("client-3", 2), *(_vote(f"client-{i}", 1) for i in range(3))]
    attempt = _attempt(votes=votes, finalized=True, global_model=HONEST_CID)
    assert attackers_on(attempt) == (
        "attackers held 1 of 4 seats (client-3); client-3's proposal got 1 of 3 approvals, outvoted"
    )


def test_a_finalized_attacker_proposal_is_named_as_such():
    votes = [_vote(f"client-{i}", 2) for i in (1, 2, 3)]
    attempt = _attempt(
        attackers_seated=["client-1", "client-2", "client-3"],
        votes=votes,
        finalized=True,
        global_model=POISONED_CID,
    )
    assert attackers_on(attempt).endswith("client-3's proposal was finalized")


def test_seated_attackers_in_a_failed_attempt_are_on_its_line_with_their_rejections():
    votes = [_vote("client-3", 2), _vote("client-0", 2, approve=False)]
    failed = _attempt(votes=votes)
    finalized = _attempt(
        attempt=1, attackers_seated=[], proposals=[HONEST_PROPOSAL], finalized=True
    )
    notes = round_notes(
        _record({**finalized, "global_model": HONEST_CID, "failed_attempts": [failed]})
    )
    assert notes == [
        "  attempt 0 failed: no quorum: 1 of 3 approvals; attackers held 1 of 4 seats "
        "(client-3); client-3's proposal got 1 of 3 approvals and 1 rejection"
    ]


def test_seated_attackers_who_proposed_nothing_are_said_to_have_proposed_nothing():
    attempt = _attempt(proposals=[HONEST_PROPOSAL], finalized=True, global_model=HONEST_CID)
    notes = round_notes(_record({**attempt, "failed_attempts": []}))
    assert notes == ["  WARNING: attackers held 1 of 4 seats (client-3); they proposed nothing"]


def _record(protocol: dict[str, Any]) -> RoundRecord:
    return RoundRecord(
        round=1,
        accuracy=0.9,
        loss=0.3,
        bytes_up=1,
        bytes_raw=1,
        accepted=[],
        flagged=[],
        malicious=[],
        dropped=[],
        rejected={},
        seconds=1.0,
        scores={},
        reasons={},
        timings={},
        protocol=protocol,
    )


def test_the_printed_table_of_a_dishonest_committee_run_shows_seats_and_proposals(
    capsys: pytest.CaptureFixture[str],
):
    """The README's command, two rounds: all 10 clients sit, 3 of them attackers; in round 1
    one of them proposes and is outvoted, in round 2 the honest proposal finalizes first."""
    assert main(["simulate", "--dishonest-committee", "--rounds", "2", "--seed", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    seated = "  WARNING: attackers held 3 of 10 seats (client-1, client-2, client-3); "
    warnings = [line for line in lines if line.startswith("  WARNING")]
    assert warnings == [
        seated + "client-1's proposal got 3 of 7 approvals, outvoted",
        seated + "they proposed nothing",
    ]
    assert lines.index(warnings[0]) == 1 + next(
        i for i, line in enumerate(lines) if line.startswith("round 1/2")
    )

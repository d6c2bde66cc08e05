"""What a person reads: failed attempts in words, warnings (seated attackers and what became
of their proposals among them), and plots in human units."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flare.cli import main
from flare.cli.display import attackers_on, attempt_failure, round_notes
from flare.cli.plots import byte_unit, bytes_figure, mi_cutoffs, scores_figure
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.report import RoundRecord, SimulationReport

HONEST_CID = "bafkhonest"
POISONED_CID = "bafkpoisoned"


def _seats(*names: str) -> list[dict[str, str]]:
    return [
        {"member": n, "address": f"0x{i:040x}", "vrf_output": "0x00"} for i, n in enumerate(names)
    ]


def _attempt(**overrides: Any) -> dict[str, Any]:
    attempt = {
        "attempt": 0,
        "committee": _seats("client-0", "client-1", "client-2"),
        "seats_needed": 3,
        "submissions_needed": 1,
        "approvals_needed": 2,
        "attackers_seated": [],
        "sent": ["client-0", "client-1", "client-2", "client-3"],
        "proposals": [{"id": 1, "proposer": "client-0", "model": HONEST_CID, "accepted": "0x0f"}],
        "votes": [],
        "finalized": False,
    }
    return {**attempt, **overrides}


def _vote(member: str, proposal: int, approve: bool) -> dict[str, Any]:
    return {"member": member, "proposal": proposal, "approve": approve}


def _record(protocol: dict[str, Any] | None, round_number: int = 1, **fields: Any) -> RoundRecord:
    values = {
        "round": round_number,
        "accuracy": 0.9,
        "loss": 0.3,
        "bytes_up": 3_000_000,
        "bytes_raw": 12_000_000,
        "accepted": ["client-0", "client-1"],
        "flagged": [],
        "malicious": [],
        "dropped": [],
        "rejected": {},
        "seconds": 1.0,
        "scores": {},
        "reasons": {},
        "timings": {},
        "protocol": protocol,
    }
    return RoundRecord(**{**values, **fields})


def test_too_few_seats_says_how_many_were_needed():
    attempt = _attempt(committee=_seats("client-4"), proposals=[])
    assert attempt_failure(attempt) == "1 seat of 3 needed"
    assert attempt_failure(_attempt(committee=_seats("a", "b"), proposals=[])) == (
        "2 seats of 3 needed"
    )


def test_too_few_submissions_says_how_many_were_needed():
    attempt = _attempt(sent=["client-0"], submissions_needed=2, proposals=[])
    assert attempt_failure(attempt) == "1 submission of 2 needed"


def test_split_vote_says_the_best_approval_count_against_the_quorum():
    proposals = [
        {"id": 1, "proposer": "client-0", "model": HONEST_CID, "accepted": "0x0f"},
        {"id": 2, "proposer": "client-1", "model": POISONED_CID, "accepted": "0x0f"},
    ]
    votes = [_vote("client-0", 1, True), _vote("client-1", 2, True), _vote("client-2", 1, True)]
    attempt = _attempt(
        committee=_seats(*(f"client-{i}" for i in range(5))),
        approvals_needed=4,
        proposals=proposals,
        votes=votes,
    )
    assert attempt_failure(attempt) == "no quorum: 2 of 4 approvals"


def test_rejections_that_put_the_quorum_out_of_reach_are_named():
    votes = [_vote("client-0", 1, False), _vote("client-1", 1, False)]
    attempt = _attempt(votes=votes)
    assert attempt_failure(attempt) == (
        "rejected: quorum out of reach (2 of 3 members rejected, 2 approvals needed)"
    )


def test_each_failed_attempt_gets_its_own_line_under_the_round():
    failed = [
        _attempt(attempt=0, committee=_seats("client-4"), proposals=[]),
        _attempt(attempt=1, votes=[_vote("client-0", 1, True)]),
    ]
    finalized = _attempt(attempt=2, finalized=True, global_model=HONEST_CID)
    notes = round_notes(_record({**finalized, "failed_attempts": failed}))
    assert notes == [
        "  attempt 0 failed: 1 seat of 3 needed",
        "  attempt 1 failed: no quorum: 1 of 2 approvals",
    ]


def test_attackers_holding_seats_are_warned_about():
    finalized = _attempt(
        finalized=True, global_model=HONEST_CID, attackers_seated=["client-1", "client-2"]
    )
    notes = round_notes(_record({**finalized, "failed_attempts": []}))
    assert notes == [
        "  WARNING: attackers held 2 of 3 seats (client-1, client-2); they proposed nothing"
    ]


FOUR_SEATS = _seats(*(f"client-{i}" for i in range(4)))
HONEST_PROPOSAL = {"id": 1, "proposer": "client-0", "model": HONEST_CID, "accepted": "0x0f"}
POISONED_PROPOSAL = {"id": 2, "proposer": "client-3", "model": POISONED_CID, "accepted": "0x0f"}


def _attacker_proposed(**overrides: Any) -> dict[str, Any]:
    """Four seats, a quorum of three; the attacker client-3 proposed beside honest client-0."""
    attempt = {
        "committee": FOUR_SEATS,
        "approvals_needed": 3,
        "attackers_seated": ["client-3"],
        "proposals": [HONEST_PROPOSAL, POISONED_PROPOSAL],
    }
    return _attempt(**{**attempt, **overrides})


def test_no_seated_attacker_gives_no_line():
    assert attackers_on(_attempt()) is None


def test_an_outvoted_proposal_says_its_approvals_against_the_quorum():
    votes = [_vote("client-3", 2, True), *(_vote(f"client-{i}", 1, True) for i in range(3))]
    attempt = _attacker_proposed(votes=votes, finalized=True, global_model=HONEST_CID)
    assert attackers_on(attempt) == (
        "attackers held 1 of 4 seats (client-3); client-3's proposal got 1 of 3 approvals, outvoted"
    )


def test_a_finalized_attacker_proposal_is_named_as_such():
    votes = [_vote(f"client-{i}", 2, True) for i in (1, 2, 3)]
    attempt = _attacker_proposed(
        attackers_seated=["client-1", "client-2", "client-3"],
        votes=votes,
        finalized=True,
        global_model=POISONED_CID,
    )
    assert attackers_on(attempt).endswith("client-3's proposal was finalized")


def test_seated_attackers_in_a_failed_attempt_are_on_its_line_with_their_rejections():
    failed = _attacker_proposed(votes=[_vote("client-3", 2, True), _vote("client-0", 2, False)])
    finalized = _attempt(attempt=1, finalized=True, global_model=HONEST_CID)
    notes = round_notes(_record({**finalized, "failed_attempts": [failed]}))
    assert notes == [
        "  attempt 0 failed: no quorum: 1 of 3 approvals; attackers held 1 of 4 seats "
        "(client-3); client-3's proposal got 1 of 3 approvals and 1 rejection"
    ]


def test_the_printed_table_of_a_dishonest_committee_run_shows_seats_and_proposals(
    capsys: pytest.CaptureFixture[str],
):
    """The README's command, two rounds: all 10 clients sit, 3 of them attackers; in each
    round one of them proposes and is outvoted."""
    assert main(["simulate", "--dishonest-committee", "--rounds", "2", "--seed", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    seated = "  WARNING: attackers held 3 of 10 seats (client-1, client-2, client-3); "
    warnings = [line for line in lines if line.startswith("  WARNING")]
    assert warnings == [
        seated + "client-1's proposal got 3 of 7 approvals, outvoted",
        seated + "client-1's proposal got 3 of 7 approvals, outvoted",
    ]
    assert lines.index(warnings[0]) == 1 + next(
        i for i, line in enumerate(lines) if line.startswith("round 1/2")
    )


def test_a_finalized_model_an_honest_member_would_not_compute_is_warned_about():
    finalized = _attempt(finalized=True, global_model=POISONED_CID, honest_model=HONEST_CID)
    notes = round_notes(_record({**finalized, "failed_attempts": []}))
    assert len(notes) == 1
    assert notes[0].startswith("  WARNING: the finalized model bafkpoisoned is not the one")
    assert HONEST_CID in notes[0]


def test_clean_and_offline_rounds_have_no_notes():
    finalized = _attempt(finalized=True, global_model=HONEST_CID, honest_model=HONEST_CID)
    assert round_notes(_record({**finalized, "failed_attempts": []})) == []
    assert round_notes(_record(None)) == []


@given(st.integers(min_value=1, max_value=2**50))
def test_byte_unit_writes_any_count_with_one_to_four_digits(count):
    unit, size = byte_unit(count)
    assert unit in ("B", "KB", "MB", "GB")
    assert 1 <= count / size < 1024 or unit == "GB"


def test_bytes_plot_is_linear_from_zero_in_human_units():
    report = SimulationReport(
        config={}, rounds=[_record(None, 1), _record(None, 2, bytes_up=80_000)]
    )
    figure = bytes_figure(report)
    (axes,) = figure.axes
    assert axes.get_yscale() == "linear"
    assert axes.get_ylim()[0] == 0
    assert axes.get_ylabel() == "uploaded by all clients (MB)"
    heights = sorted(bar.get_height() for bar in axes.patches)
    assert heights == pytest.approx(sorted(b / 1024**2 for b in (12e6, 12e6, 3e6, 80e3)))


def _mi_scores(aligned_mi: float, fix_ratio: float, norm_ratio: float, cosine: float):
    return {
        "mi": aligned_mi,
        "aligned_mi": aligned_mi,
        "accuracy": 0.9,
        "fixes": 10.0,
        "breaks": 1.0,
        "fix_ratio": fix_ratio,
        "norm": norm_ratio,
        "norm_ratio": norm_ratio,
        "cosine_to_median": cosine,
    }


def test_mi_cutoffs_follow_the_filter_rules_on_the_round_medians():
    scores = {
        "client-0": _mi_scores(2.0, 0.8, 1.0, 0.9),
        "client-1": _mi_scores(2.1, 0.6, 1.0, 0.8),
        "client-2": _mi_scores(1.9, 0.7, 1.0, 0.7),
    }
    cutoffs = mi_cutoffs(scores, {})
    # aligned MI: median 2.0, MAD 0.1 → 2.0 − max(3·1.4826·0.1, 0.05, 0.1)
    assert cutoffs["aligned_mi"] == pytest.approx(2.0 - 3 * 1.4826 * 0.1)
    assert cutoffs["fix_ratio"] == pytest.approx(0.35 * 0.7)
    assert cutoffs["norm_ratio"] == 3.0
    # cosine: median 0.8, MAD 0.1 → 0.8 − max(0.445, 0.1, 0.4)
    assert cutoffs["cosine_to_median"] == pytest.approx(0.8 - 3 * 1.4826 * 0.1)
    assert "cosine_to_median" not in mi_cutoffs(scores, {"check_direction": False})
    assert mi_cutoffs(scores, {"norm_ratio_limit": 5})["norm_ratio"] == 5.0


def test_scores_plot_draws_each_rule_with_a_cut_off_and_a_readable_title():
    scores = {
        "client-0": _mi_scores(2.0, 0.8, 1.0, 0.9),
        "client-1": _mi_scores(2.1, 0.6, 1.0, 0.8),
        "client-2": _mi_scores(0.2, 0.1, 9.0, -0.5),
    }
    record = _record(None, scores=scores, malicious=["client-2"], flagged=["client-2"])
    figure = scores_figure(SimulationReport(config={"aggregator": "mi"}, rounds=[record]))
    titles = [axes.get_title(loc="left") for axes in figure.axes]
    assert [t.splitlines()[0] for t in titles] == [
        "Prediction rule: aligned mutual information (bits)",
        "Change rule: share of changed labels fixed",
        "Norm rule: update length / round median",
        "Direction rule: cosine to the median update",
    ]
    assert all(len(t.splitlines()) == 2 for t in titles), "each panel explains its score"
    for axes in figure.axes:
        (cut_off,) = axes.collections[-1:]
        assert cut_off.get_label() == "cut-off"
    norm_cut = figure.axes[2].collections[-1].get_segments()[0]
    assert norm_cut[0][1] == norm_cut[1][1] == 3.0
    legend = {text.get_text() for text in figure.legends[0].get_texts()}
    assert legend == {"honest, trusted", "malicious, flagged", "cut-off"}
    assert not any(t in "".join(titles) for t in ("breaks", "fixes", "fix_ratio"))


def test_scores_plot_of_another_rule_titles_its_scores_without_cut_offs():
    scores = {"client-0": {"krum_score": 4.0, "krum_rank": 0.0}}
    record = _record(None, scores=scores)
    figure = scores_figure(SimulationReport(config={"aggregator": "krum"}, rounds=[record]))
    titles = [axes.get_title(loc="left").splitlines()[0] for axes in figure.axes]
    assert titles == ["Krum rank", "Krum score"]
    assert all(c.get_label() != "cut-off" for axes in figure.axes for c in axes.collections)


@pytest.mark.slow
def test_a_dishonest_committee_run_records_seated_attackers_and_the_honest_model(tmp_path):
    config = SimulationConfig(
        model="logreg", clients=8, malicious=2, attack="scaling", rounds=2, seed=2
    )
    protocol = ProtocolConfig(
        dishonest_committee=True, state=tmp_path / "chain.db", store=tmp_path / "blobs"
    )
    report = ProtocolSimulation(config, protocol).run()
    malicious = {name for r in report.rounds for name in r.malicious}
    seated_somewhere = False
    for record in report.rounds:
        attempts = [*record.protocol["failed_attempts"], record.protocol]
        for attempt in attempts:
            seats = {seat["member"] for seat in attempt["committee"]}
            assert set(attempt["attackers_seated"]) == seats & malicious
            seated_somewhere |= bool(attempt["attackers_seated"])
        # honest members hold the quorum here, so what finalized is what they computed
        assert record.protocol["honest_model"] == record.protocol["global_model"]
        for failed in record.protocol["failed_attempts"]:
            assert attempt_failure(failed).startswith(("no quorum: ", "rejected: "))
    assert seated_somewhere, "no attacker won a seat; pick another seed"

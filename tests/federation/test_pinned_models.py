"""The global models a refactor must not change: the default run, a dishonest committee, and
PowerSGD on Dirichlet data, pinned by CID for their first three rounds.

The default and dishonest-committee CIDs changed on purpose once since the one-actor refactor
(issue 9), which left them unchanged: the MI filter now clips trusted updates to the round's
median norm by default (issue 12). The PowerSGD run's changed three times on purpose: the
default committee grew from 5 to 40 seats (the safety bound), so its round-5 retry is gone,
the MI filter judges the trusted updates' average too, and it clips them; with all three undone
(``expected_committee=5``, ``aggregate_margin_bits=None``, ``clip_to_median_norm=False``) it
reproduces the old CIDs.
"""

import pytest

from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.task_parameters import TaskParameters

DEFAULT = [
    "bafkreibtqps56323ip7wo5we7yvh6v7zpfhbbbznx72kf3ata4tu7azv6q",
    "bafkreibvjqk5hhfddgsmby7c5xl2je43scrombl3jxwebgf5nk7kfhyoki",
    "bafkreido4y67b2dk4bt7puv7fmtzqdz7w7ldxfp2slyqddqn5kl2ajcm74",
]
POWERSGD_DIRICHLET = [
    "bafkreidzit5up5jrgotlirl4us77smvg6by5iq2qeunvsvfcaeiy7znarm",
    "bafkreiesrubcqlihu2pjomoxggvok4hpagwxdeitxr4jxltadkevgqsmge",
    "bafkreicbwlc3p7lgyl45ewjrb2zsusweoej54agsdhzu4g5xpdsxllz2he",
]

POWERSGD_DIRICHLET_BEFORE = [
    "bafkreiefofxv5idfuspoykrk6kx2bbalcdxlfnj3mmg52vw5wkw7r6t5ki",
    "bafkreiaatmt2txabhvf7bmbcqpt6nyqyk2pds3pry2v355iohg5da7dkb4",
    "bafkreicud7ktwwnaovacgcx424pebsjaegsz4x5m7pzzs6i5zbzcxmg3bm",
    "bafkreigwpcortmldlq2kctjwdnh2eob5jdwtt6fynebjgojmaepvu6pemu",
    "bafkreib67i736qyqicoftdl2zu3xtp2uxbuerzn66dvvlrrqrnz4dywqti",
]
"""Five rounds recorded before the refactor, round 5 retried once (a committee too small)."""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "dishonest_committee", "expected"),
    [
        ({}, False, DEFAULT),
        ({}, True, DEFAULT),
        ({"codec": "powersgd", "partition": "dirichlet"}, False, POWERSGD_DIRICHLET),
    ],
    ids=["default", "dishonest-committee", "powersgd-dirichlet"],
)
def test_the_global_models_are_pinned(options, dishonest_committee, expected):
    config = SimulationConfig(rounds=3, **options)
    protocol = ProtocolConfig(dishonest_committee=dishonest_committee)
    report = ProtocolSimulation(config, protocol).run()
    assert [r.protocol["global_model"] for r in report.rounds] == expected


@pytest.mark.slow
def test_with_the_old_committee_and_filter_the_refactor_reproduces_the_old_models():
    config = SimulationConfig(
        rounds=5,
        codec="powersgd",
        partition="dirichlet",
        aggregator_params={"aggregate_margin_bits": None, "clip_to_median_norm": False},
    )
    protocol = ProtocolConfig(task=TaskParameters(expected_committee=5))
    report = ProtocolSimulation(config, protocol).run()
    assert [len(r.protocol["failed_attempts"]) for r in report.rounds] == [0, 0, 0, 0, 1]
    assert [r.protocol["global_model"] for r in report.rounds] == POWERSGD_DIRICHLET_BEFORE

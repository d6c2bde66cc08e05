"""The connector's log-derived reads refuse logs that disagree with on-chain hashes.

A node serving logs can drop, reorder or alter them; ``ChainConnector`` checks every list
it returns against what the contract stores. The in-memory chain never lies, so these
tests wrap it in a connector whose ``events`` tampers with the logs.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from conformance.scenario import World, content

from flare.chain import (
    AttemptNotFound,
    Event,
    InMemoryChain,
    LogIntegrityError,
    ParticipantRegistered,
    Proposed,
    SeatClaimed,
    UpdateSubmitted,
)
from flare.chain.api.derive import encode_accepted

Tamper = Callable[[list[Event]], list[Event]]


class LyingChain(InMemoryChain):
    """An in-memory chain whose log queries pass through ``tamper``."""

    def __init__(self) -> None:
        super().__init__()
        self.tamper: Tamper = list

    def events(
        self,
        kinds: Sequence[type[Event]] | None = None,
        *,
        task_id: int | None = None,
        from_block: int = 0,
        to_block: int | None = None,
    ) -> list[Event]:
        logs = super().events(kinds, task_id=task_id, from_block=from_block, to_block=to_block)
        return self.tamper(logs)


@pytest.fixture
def lying_world() -> World:
    chain = LyingChain()
    world = World(chain, chain.mine)
    task_id = world.started_task(registered=3)
    world.submit(task_id, 0, 1, 2)
    world.claim(task_id, 0, 1)
    world.to_voting(task_id)
    world.by(0).propose(task_id, content("aggregate"), encode_accepted([0, 2], 3))
    return world


def lie(world: World, tamper: Tamper) -> None:
    assert isinstance(world.chain, LyingChain)
    world.chain.tamper = tamper


def drop_first(kind: type[Event]) -> Tamper:
    def tamper(logs: list[Event]) -> list[Event]:
        matching = [log for log in logs if isinstance(log, kind)]
        return [log for log in logs if not matching or log is not matching[0]]

    return tamper


def test_honest_logs_pass(lying_world: World) -> None:
    chain = lying_world.chain
    assert len(chain.submissions(1, 1, 0)) == 3
    assert len(chain.committee(1, 1, 0)) == 2
    assert chain.accepted_bitmap(1, 1) == encode_accepted([0, 2], 3)
    assert chain.public_key(1, lying_world.address(0)) == lying_world.ids[0].public_key


@pytest.mark.parametrize(
    "tamper",
    [
        drop_first(UpdateSubmitted),
        lambda logs: list(reversed(logs)),
        lambda logs: [
            replace(log, sample_count=log.sample_count + 1)
            if isinstance(log, UpdateSubmitted)
            else log
            for log in logs
        ],
    ],
    ids=["dropped", "reordered", "altered"],
)
def test_tampered_submission_logs_are_refused(lying_world: World, tamper: Tamper) -> None:
    # Read honestly first: what the connector remembers of it must not pass the lie.
    assert len(lying_world.chain.submissions(1, 1, 0)) == 3
    lie(lying_world, tamper)
    with pytest.raises(LogIntegrityError):
        lying_world.chain.submissions(1, 1, 0)


def test_tampered_seat_key_and_bitmap_logs_are_refused(lying_world: World) -> None:
    chain = lying_world.chain
    lie(lying_world, drop_first(SeatClaimed))
    with pytest.raises(LogIntegrityError):
        chain.committee(1, 1, 0)
    lie(
        lying_world,
        lambda logs: [
            replace(log, public_key=bytes(256)) if isinstance(log, ParticipantRegistered) else log
            for log in logs
        ],
    )
    with pytest.raises(LogIntegrityError):
        chain.public_key(1, lying_world.address(0))
    lie(
        lying_world,
        lambda logs: [
            replace(log, accepted=b"\x07") if isinstance(log, Proposed) else log for log in logs
        ],
    )
    with pytest.raises(LogIntegrityError):
        chain.accepted_bitmap(1, 1)


@pytest.mark.parametrize("field", ["proof", "output"])
def test_a_seat_log_altered_after_honest_reads_is_still_refused(
    lying_world: World, field: str
) -> None:
    """The digests of checked seat logs are remembered, not their verdicts: a proof or an
    output changed after the honest logs were read (and hashed) fails its check."""
    chain = lying_world.chain
    honest = chain.committee(1, 1, 0)
    other = honest[1]
    lie(
        lying_world,
        lambda logs: [
            replace(log, **{field: getattr(other, field)})
            if isinstance(log, SeatClaimed) and log.member == honest[0].member
            else log
            for log in logs
        ],
    )
    with pytest.raises(LogIntegrityError):
        chain.committee(1, 1, 0)


def test_an_attempt_that_never_opened_is_not_found(lying_world: World) -> None:
    with pytest.raises(AttemptNotFound) as raised:
        lying_world.chain.submissions(1, 1, 5)
    assert str(raised.value) == "task 1 has no round 1 attempt 5"

"""Members agree on which updates count, whatever each could fetch and when.

A submitter withholds its update blob and publishes it only after the first committee
member has computed its aggregate, every round; another member's store fails once. Every
attempt must still finalize, every honest member must back the same proposal, and the
audit must re-derive the finalized rounds by the rule the committee used.
"""

import numpy as np
import pytest
from agent_fleet import CLIENTS, client_data, make_fleet

from flare.chain import Proposed, RoundTimedOut, Voted
from flare.compression.wire import canonical_json, write_container
from flare.federation.agents import ParticipantAgent, StepOutcome, TaskSpec
from flare.federation.protocol.artifacts import (
    MODEL_FORMAT,
    MalformedArtifactError,
    decode_model,
    encode_model,
    model_unavailable,
)
from flare.federation.protocol.verify import verify_task
from flare.federation.task_parameters import TaskParameters
from flare.storage import ForwardingStore, StorageUnavailableError
from flare.tensors import spec_of

WITHHOLDER = 2
FLAKY = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return client_data(tmp_path_factory.mktemp("data"))


class WithholdingStore(ForwardingStore):
    """A submitter's uploads, kept back until ``release``."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.held: dict[str, bytes] = {}

    def _store(self, cid: str, data: bytes) -> None:
        self.held[cid] = data

    def _pin(self, cid: str) -> None:
        pass

    def release(self) -> None:
        for cid, data in self.held.items():
            super()._store(cid, data)
        self.held.clear()


class FlakyStore(ForwardingStore):
    """A member's view of the store that fails once, on its first update download."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.failed = False

    def _load(self, cid: str, limit: int) -> bytes:
        if not self.failed and limit < self.max_blob_size:  # an update fetch
            self.failed = True
            raise StorageUnavailableError("the node restarted")
        return super()._load(cid, limit)


def computed(agent: ParticipantAgent) -> bool:
    return bool(agent.actor.attempt_aggregates())


def test_a_blob_published_between_members_computations_does_not_split_them(tmp_path, data):
    rounds = 10
    spec = TaskSpec(
        model="logreg",
        parameters=TaskParameters(
            max_rounds=rounds,
            min_clients=3,
            expected_committee=CLIENTS,  # everyone sits: every member is tested each round
            min_committee=4,
            submission_window=24,
            vote_window=24,
        ),
    )
    fleet = make_fleet(tmp_path, data, spec)
    fleet.codec = "none"
    withholding = WithholdingStore(fleet.store)
    flaky = FlakyStore(fleet.store)
    stores = {WITHHOLDER: withholding, FLAKY: flaky}
    agents = [fleet.agent(i, stores.get(i)) for i in range(CLIENTS)]
    fleet.start(agents)
    released_in_time = 0
    for _ in range(3000):
        outcomes = []
        for agent in agents:
            outcomes.append(agent.step())
            # The first member has computed without the blob: now the others can fetch it.
            if withholding.held and any(computed(a) for a in agents):
                withholding.release()
                released_in_time += 1
        if all(o is StepOutcome.DONE for o in outcomes):
            break
        if StepOutcome.ACTED not in outcomes:
            fleet.chain.mine(1)
    else:
        raise AssertionError("the task did not finish")

    chain = fleet.chain.inner
    assert released_in_time == rounds  # the withholding happened in every round
    assert flaky.failed
    assert not chain.events([RoundTimedOut], task_id=fleet.task_id)  # every attempt final
    proposals = chain.events([Proposed], task_id=fleet.task_id)
    votes = [v for v in chain.events([Voted], task_id=fleet.task_id) if isinstance(v, Voted)]
    for round_number in range(1, rounds + 1):
        backed = {v.proposal_id for v in votes if v.round == round_number and v.approve}
        assert len(backed) == 1, (round_number, backed)  # every member backs one proposal
    # Some member proposed without the withheld update, and that proposal lost every time.
    unavailable = [
        model_unavailable(fleet.store.get(p.model.to_cid()))
        for p in proposals
        if isinstance(p, Proposed)
    ]
    assert any(unavailable) and not any(
        model_unavailable(fleet.store.get(p.model.to_cid()))
        for p in proposals
        if isinstance(p, Proposed) and p.proposal_id in {v.proposal_id for v in votes}
    )
    verdict = verify_task(chain, fleet.store, fleet.task_id)
    assert verdict.ok and len(verdict.rounds) == rounds


def test_a_round_that_finalized_without_a_blob_is_audited_without_it(tmp_path, data):
    """Published after the committee gave up on it, the blob does not change the verdict:
    the audit counts exactly what the finalized model says its committee counted."""
    spec = TaskSpec(
        model="logreg",
        parameters=TaskParameters(
            max_rounds=1, min_clients=3, submission_window=24, vote_window=24
        ),
    )
    fleet = make_fleet(tmp_path, data, spec)
    fleet.codec = "none"
    withholding = WithholdingStore(fleet.store)
    agents = [fleet.agent(i, withholding if i == WITHHOLDER else None) for i in range(CLIENTS)]
    fleet.start(agents)
    fleet.drive(agents)
    chain = fleet.chain.inner
    before = verify_task(chain, fleet.store, fleet.task_id)
    withholding.release()
    after = verify_task(chain, fleet.store, fleet.task_id)
    assert before.ok and after.ok
    assert [r.recomputed_model for r in before.rounds] == [r.recomputed_model for r in after.rounds]


WEIGHTS = {"w": np.zeros((2, 2), dtype=np.float32)}


def test_the_unavailable_list_is_written_only_when_something_was_left_out():
    assert encode_model(WEIGHTS, []) == encode_model(WEIGHTS)
    assert model_unavailable(encode_model(WEIGHTS)) == frozenset()
    assert model_unavailable(encode_model(WEIGHTS, [3, 1, 3])) == frozenset({1, 3})
    assert decode_model(encode_model(WEIGHTS, [1]), spec_of(WEIGHTS))["w"].shape == (2, 2)


@pytest.mark.parametrize("listed", [[], [1, 1], [2, 1], [-1], ["1"], [True], 1, None, [2**32]])
def test_a_non_canonical_unavailable_list_is_refused(listed):
    blob = write_container(WEIGHTS, canonical_json({"format": MODEL_FORMAT, "unavailable": listed}))
    with pytest.raises(MalformedArtifactError, match="unavailable"):
        model_unavailable(blob)
    with pytest.raises(MalformedArtifactError):
        decode_model(blob, spec_of(WEIGHTS))

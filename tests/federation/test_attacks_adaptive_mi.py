"""adaptive-mi: a bloc that rehearses the MI filter on the public validation split."""

import numpy as np
import pytest

from flare.aggregation.base import AggregationContext, ClientUpdate
from flare.federation.collusion import PublicRound
from flare.federation.config import SimulationConfig
from flare.federation.rounds import active_clients, forged_updates, own_updates
from flare.federation.setup import build_federation
from flare.federation.simulation import Simulation
from flare.tensors import flatten, spec_of, unflatten


@pytest.fixture(scope="module")
def attacked_round():
    config = SimulationConfig(
        clients=6, malicious=2, attack="adaptive-mi", local_epochs=1, partition="iid"
    )
    federation = build_federation(config)
    base = federation.initial_weights
    participants, _ = active_clients(config, federation.clients, 1)
    honest = own_updates(federation, participants, base, 1)
    forged = forged_updates(federation, honest, base)
    context = AggregationContext(
        global_weights=base,
        predict=federation.predict,
        validation_features=federation.dataset.validation_features,
        validation_labels=federation.dataset.validation_labels,
        reference_step=federation.reference_step,
    )

    def judged(bloc_delta):
        sent = [
            ClientUpdate(cid, bloc_delta if cid in forged else u.delta, u.num_samples)
            for cid, u in honest.items()
        ]
        return federation.aggregator.aggregate(sent, context)

    return federation, honest, forged, judged


def test_every_member_sends_one_update_the_filter_trusts(attacked_round):
    federation, honest, forged, judged = attacked_round
    assert set(forged) == federation.malicious_ids
    first, second = (forged[cid].delta for cid in sorted(forged))
    assert all(np.array_equal(first[name], second[name]) for name in first)
    result = judged(first)
    assert federation.malicious_ids <= set(result.accepted)
    assert [forged[cid].num_samples for cid in forged] == [
        honest[cid].num_samples for cid in forged
    ]


def test_it_rehearses_the_reference_rule_too(attacked_round):
    federation, _, forged, judged = attacked_round
    assert federation.reference_step is not None  # the default MLP is trained exactly
    scores = judged(next(iter(forged.values())).delta).scores
    minimum = federation.aggregator.reference_cosine_min
    assert all(scores[cid]["cosine_to_reference"] > minimum for cid in forged)


def test_it_goes_as_far_from_the_honest_mean_as_the_filter_lets_it(attacked_round):
    federation, honest, forged, judged = attacked_round
    spec = spec_of(next(iter(honest.values())).delta)
    mean = np.mean([flatten(u.delta) for u in honest.values()], axis=0)
    sent = flatten(next(iter(forged.values())).delta)
    assert np.linalg.norm(sent - mean) > 0.1 * np.linalg.norm(mean)
    further = judged(unflatten(mean + 2.0 * (sent - mean), spec))
    assert not federation.malicious_ids <= set(further.accepted)


def test_an_offline_run_under_adaptive_mi_is_deterministic():
    config = SimulationConfig(
        clients=5, malicious=2, rounds=2, attack="adaptive-mi", local_epochs=1
    )
    first, second = Simulation(config).run(), Simulation(config).run()
    assert [r.accuracy for r in first.rounds] == [r.accuracy for r in second.rounds]
    assert [r.accepted for r in first.rounds] == [r.accepted for r in second.rounds]


def test_the_rehearsal_computes_the_reference_step_once_per_round(attacked_round):
    federation, honest, forged, _ = attacked_round
    calls = []

    def counted(weights, features, labels):
        calls.append(1)
        return federation.reference_step(weights, features, labels)

    public = PublicRound(
        federation.initial_weights,
        federation.predict,
        federation.dataset.validation_features,
        federation.dataset.validation_labels,
        federation.aggregator,
        counted,
    )
    again = federation.attack.collude(honest, federation.malicious_ids, public)
    assert len(calls) == 1  # dozens of rehearsals of the filter, one reference step
    for cid in forged:
        assert all(
            again[cid].delta[name].tobytes() == forged[cid].delta[name].tobytes()
            for name in forged[cid].delta
        )

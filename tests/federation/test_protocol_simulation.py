"""The whole protocol in one process: committee votes, retries, dishonest members, audits."""

import subprocess
import sys

import numpy as np
import pytest

from flare.chain import ContentRef, InMemoryChain, TaskCreated, TaskParams
from flare.compression import make_codec
from flare.compression.base import UpdateBinding
from flare.federation.config import SimulationConfig
from flare.federation.protocol.aggregate import binding_label, compute_aggregate, load_task_context
from flare.federation.protocol.artifacts import TaskManifest, encode_manifest, encode_model
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.protocol.simulated_device import participant_keys
from flare.federation.protocol.verify import verify_task
from flare.federation.simulation import Simulation
from flare.federation.task_parameters import TaskParameters
from flare.models import TorchModelAdapter, build_model
from flare.storage import DirectoryStore, MemoryStore
from flare.tensors import spec_of

SMALL = {"model": "logreg", "clients": 6, "malicious": 2, "rounds": 2}


def simulate(tmp_path, protocol: ProtocolConfig | None = None, **options):
    config = SimulationConfig(**{**SMALL, **options})
    protocol = protocol or ProtocolConfig()
    protocol = ProtocolConfig(
        **{**protocol.__dict__, "state": tmp_path / "chain.db", "store": tmp_path / "blobs"}
    )
    return ProtocolSimulation(config, protocol).run()


def test_default_run_finalizes_every_round_by_vote_and_verifies(tmp_path):
    report = simulate(tmp_path, rounds=3)
    assert [r.round for r in report.rounds] == [1, 2, 3]
    for record in report.rounds:
        protocol = record.protocol
        approvals = sum(v["approve"] for v in protocol["votes"])
        committee = len(protocol["committee"])
        assert committee >= 3
        assert approvals >= -(-6667 * committee // 10000)
        assert protocol["global_model"].startswith("bafk")
        assert set(record.malicious) <= set(record.flagged)
    with InMemoryChain(tmp_path / "chain.db") as chain:
        verdict = verify_task(chain, DirectoryStore(tmp_path / "blobs"), 1)
    assert verdict.ok and len(verdict.rounds) == 3


def test_verify_command_in_a_separate_process(tmp_path):
    simulate(tmp_path, rounds=1)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flare",
            "verify",
            "--state",
            str(tmp_path / "chain.db"),
            "--store",
            str(tmp_path / "blobs"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "1/1 rounds re-derived; history hash matches" in result.stdout


def test_tampered_blobs_fail_the_audit(tmp_path):
    simulate(tmp_path, rounds=1)
    store = DirectoryStore(tmp_path / "blobs")
    with InMemoryChain(tmp_path / "chain.db") as chain:
        update = chain.submissions(1, 1, 0)[0].update.to_cid()
        manifest = chain.task(1).manifest.to_cid()
        path = store.blob_path(update)
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        verdict = verify_task(chain, store, 1)
        assert not verdict.ok
        assert verdict.rounds[0].recomputed_model != verdict.rounds[0].onchain_model
        store.blob_path(manifest).write_bytes(b"not the manifest")
        damaged = verify_task(chain, store, 1).rounds[0].damaged
        assert [(blob.cid, blob.role) for blob in damaged] == [(manifest, "task manifest")]


def test_dishonest_members_are_outvoted(tmp_path):
    report = simulate(
        tmp_path,
        ProtocolConfig(task=TaskParameters(expected_committee=5), dishonest_committee=True),
        clients=8,
        malicious=2,
        attack="scaling",
        seed=5,
    )
    contested = [r for r in report.rounds if len(r.protocol["proposals"]) > 1]
    assert contested, "no attacker won a seat; pick another seed"
    # where the attackers held more than a third of the seats, nothing reached the quorum:
    # the attempt timed out and the round was retried rather than poisoned
    blocked = [a for r in report.rounds for a in r.protocol["failed_attempts"]]
    assert blocked and all(a["reason"] == "no proposal reached the quorum" for a in blocked)
    for record in report.rounds:
        assert set(record.malicious) <= set(record.flagged)
        assert record.accuracy > 0.5
    with InMemoryChain(tmp_path / "chain.db") as chain:
        assert verify_task(chain, DirectoryStore(tmp_path / "blobs"), 1).ok


def test_small_committee_times_out_and_retries_with_a_fresh_seed(tmp_path):
    report = simulate(
        tmp_path,
        ProtocolConfig(task=TaskParameters(expected_committee=3, min_committee=3)),
        rounds=2,
        seed=3,
    )
    retried = [r for r in report.rounds if r.protocol["failed_attempts"]]
    assert retried, "every attempt drew a large enough committee; pick another seed"
    for record in retried:
        seeds = [a["seed"] for a in record.protocol["failed_attempts"]] + [record.protocol["seed"]]
        assert len(set(seeds)) == len(seeds)
        assert "below 3" in record.protocol["failed_attempts"][0]["reason"]
        assert record.protocol["attempt"] == len(record.protocol["failed_attempts"])


def test_replayed_and_foreign_updates_are_rejected_by_every_member():
    chain, store = InMemoryChain(), MemoryStore()
    model = TorchModelAdapter(build_model("logreg", 4, 3, seed=0))
    weights = model.get_weights()
    manifest = TaskManifest("logreg", 4, 3, "fedavg")
    features = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    creator, _ = participant_keys(0, -1)
    base_cid = store.put(encode_model(weights))
    manifest_cid = store.put(encode_manifest(manifest, features, np.arange(12) % 3))
    params = TaskParams(1, 3, 1, 5001, 20, 20, 2, 20)
    task_id = (
        chain.as_sender(creator)
        .create_task(ContentRef.from_cid(base_cid), ContentRef.from_cid(manifest_cid), params)
        .one(TaskCreated)
        .task_id
    )
    people = [ProtocolParticipant(f"p{i}", *participant_keys(0, i)) for i in range(3)]
    for person in people:
        person.register(chain, task_id)
    chain.as_sender(creator).start_task(task_id)
    context = load_task_context(chain, store, task_id)
    opened = chain.round_opened(task_id, 1, 0)
    delta = {k: np.full_like(v, 0.01) for k, v in weights.items()}
    encoder = make_codec("none").new_encoder(spec_of(weights), 0)
    blob = encoder.encode(delta, people[0].binding(context, opened, 10))
    people[0].submit(chain, task_id, store.put(blob), 10)
    honest_cid = chain.submissions(task_id, 1, 0)[0].update
    # p1 claims p0's update as its own; p2 sends an update bound to another round
    chain.as_sender(people[1].account).submit(task_id, honest_cid, 10)
    stale = UpdateBinding(
        people[2].address, binding_label(chain, task_id), 7, 0, opened.base_model.to_cid(), 10
    )
    stale_cid = store.put(encoder.encode(delta, stale))
    chain.as_sender(people[2].account).submit(task_id, ContentRef.from_cid(stale_cid), 10)
    aggregate = compute_aggregate(chain, store, context, 1, 0)
    assert aggregate.accepted == [people[0].address]
    assert "not its submitter" in aggregate.rejected[people[1].address]
    assert "another task, round" in aggregate.rejected[people[2].address]
    assert aggregate.accepted_bitmap == b"\x01"


@pytest.mark.parametrize("threads", [1, 2])
def test_aggregate_is_identical_under_other_thread_counts(tmp_path, threads):
    import torch

    report = simulate(tmp_path, rounds=1)
    onchain = report.rounds[0].protocol["global_model"]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with InMemoryChain(tmp_path / "chain.db") as chain:
            store = DirectoryStore(tmp_path / "blobs")
            context = load_task_context(chain, store, 1)
            assert compute_aggregate(chain, store, context, 1, 0).model.to_cid() == onchain
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("attack", ["sign-flip", "alie"])
def test_the_protocol_and_offline_paths_share_one_round_step(tmp_path, attack):
    """Same clients, seeds, attacks (a colluding bloc included) and rule: the model the
    committee finalizes scores exactly what the offline aggregator's does."""
    options = {**SMALL, "attack": attack}
    offline = Simulation(SimulationConfig(**options)).run()
    protocol = simulate(tmp_path, **options)
    assert [r.accuracy for r in protocol.rounds] == [r.accuracy for r in offline.rounds]
    assert [r.flagged for r in protocol.rounds] == [r.flagged for r in offline.rounds]


def test_the_member_whose_vrf_output_ranks_first_proposes_and_the_others_only_vote(tmp_path):
    report = simulate(tmp_path, rounds=2)
    for record in report.rounds:
        protocol = record.protocol
        first = min(protocol["committee"], key=lambda seat: seat["vrf_output"])
        assert [p["proposer"] for p in protocol["proposals"]] == [first["member"]]
        assert {v["proposal"] for v in protocol["votes"]} == {protocol["proposals"][0]["id"]}
        assert all(v["approve"] for v in protocol["votes"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20))
def test_a_dishonest_committee_at_default_parameters_never_finalizes_a_poisoned_model(seed):
    """Attackers that win seats propose the plain average of everything and back only that;
    at the default committee parameters no such model is ever final, and the run ends.

    The README's run at full length (4 s a seed on a quiet machine), the 20 seeds of issue
    11's judging; benchmarks/bench_dishonest_committee.py runs the same seeds through the CLI
    and ``flare verify`` (docs/bench/committee.md)."""
    config = SimulationConfig(seed=seed)
    report = ProtocolSimulation(config, ProtocolConfig(dishonest_committee=True)).run()
    assert [r.round for r in report.rounds] == list(range(1, config.rounds + 1))
    assert report.rounds[-1].protocol["task_completed"]
    attacker_proposals = 0
    for record in report.rounds:
        protocol = record.protocol
        assert protocol["global_model"] == protocol["honest_model"]
        assert protocol["attackers_seated"], "the default committee seats the attackers"
        assert set(record.malicious) <= set(record.flagged)
        for attempt in [*protocol["failed_attempts"], protocol]:
            theirs = [
                p for p in attempt["proposals"] if p["proposer"] in attempt["attackers_seated"]
            ]
            attacker_proposals += len(theirs)
            assert all(p["model"] != protocol["global_model"] for p in theirs)
    assert attacker_proposals, "no attacker proposed: the test shows nothing about their fate"

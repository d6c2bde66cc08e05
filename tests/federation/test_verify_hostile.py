"""``flare verify`` as an unlucky auditor meets it: files that are no Flare state, a damaged
blob store, a damaged chain database and a chain that really disagrees — each told apart in
one line, and nothing it reads is changed."""

import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account

from flare.chain import (
    ContentRef,
    InMemoryChain,
    Proposed,
    RoundFinalized,
    Submission,
    TaskCreated,
    TaskParams,
    decode_accepted,
)
from flare.cli import main
from flare.compression import make_codec
from flare.federation.config import SimulationConfig
from flare.federation.protocol.aggregate import load_task_context
from flare.federation.protocol.artifacts import TaskManifest, encode_manifest, encode_model
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.protocol.simulated_device import participant_keys
from flare.models import TorchModelAdapter, build_model
from flare.storage import CODEC_RAW, DirectoryStore, compute_cid
from flare.tensors import spec_of


@dataclass(frozen=True)
class Audit:
    code: int
    out: list[str]
    err: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.out + self.err)


def verify(capsys: pytest.CaptureFixture[str], state: Path, store: Path, *extra: str) -> Audit:
    code = main(["verify", "--state", str(state), "--store", str(store), *extra])
    captured = capsys.readouterr()
    return Audit(code, captured.out.splitlines(), captured.err.splitlines())


def assert_one_line_error(audit: Audit, *fragments: str) -> None:
    assert audit.code == 2
    assert audit.out == []
    assert len(audit.err) == 1, audit.err
    assert audit.err[0].startswith("flare verify: error: ")
    assert "Traceback" not in audit.text
    for fragment in fragments:
        assert fragment in audit.err[0]


def files_in(directory: Path) -> dict[str, str]:
    return {
        child.name: hashlib.sha256(child.read_bytes()).hexdigest()
        for child in sorted(directory.iterdir())
        if child.is_file()
    }


# -- a finished run to audit -------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A finished one-round run: where it lies and the blobs its chain names."""

    root: Path
    manifest: str
    initial_model: str
    final_model: str
    accepted_update: tuple[str, str]
    """(CID, role) of an update the chain accepted, likewise for one it rejected."""
    rejected_update: tuple[str, str]

    def copy_to(self, destination: Path) -> tuple[Path, Path]:
        shutil.copytree(self.root, destination)
        return destination / "chain.db", destination / "blobs"


def update_role(submission: Submission) -> str:
    return f"update of {submission.participant} (submission {submission.index})"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("run")
    config = SimulationConfig(model="logreg", clients=6, malicious=2, rounds=1)
    ProtocolSimulation(config, ProtocolConfig(state=root / "chain.db", store=root / "blobs")).run()
    with InMemoryChain(root / "chain.db", read_only=True) as chain:
        (finalized,) = chain.events([RoundFinalized], task_id=1)
        accepted = set(decode_accepted(chain.accepted_bitmap(1, finalized.proposal_id)))
        submissions = chain.submissions(1, 1, 0)
        taken = [s for s in submissions if s.index in accepted]
        refused = [s for s in submissions if s.index not in accepted]
        assert taken and refused, "the attackers were not filtered; pick another seed"
        return Run(
            root=root,
            manifest=chain.task(1).manifest.to_cid(),
            initial_model=chain.round_opened(1, 1, 0).base_model.to_cid(),
            final_model=finalized.model.to_cid(),
            accepted_update=(taken[0].update.to_cid(), update_role(taken[0])),
            rejected_update=(refused[0].update.to_cid(), update_role(refused[0])),
        )


def test_an_intact_run_is_re_derived_and_its_state_left_unchanged(
    tmp_path: Path, finished_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    state, store = finished_run.copy_to(tmp_path / "run")
    before = files_in(state.parent)
    audit = verify(capsys, state, store)
    assert audit.code == 0, audit.text
    assert audit.out == [
        f"task 1 round   1 attempt 0  ok  {finished_run.final_model}",
        "task 1: 1/1 rounds re-derived; history hash matches",
    ]
    assert files_in(state.parent) == before  # no -wal or -shm beside it, no table added


# -- files that are no Flare chain state -------------------------------------------------


def write_empty(path: Path) -> None:
    path.write_bytes(b"")


def write_text(path: Path) -> None:
    path.write_text("round,accuracy\n1,0.93\n" * 200)


def write_foreign_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    db.execute("INSERT INTO invoices (total) VALUES (12.5)")
    db.commit()
    db.close()


def write_copy_without_its_wal(path: Path) -> None:
    """What a copy of a running or crashed simulation's state looks like without -wal."""
    live = path.parent / "live" / "chain.db"
    live.parent.mkdir()
    creator = Account.from_key(bytes(31) + b"\x01")
    with InMemoryChain(live) as chain:
        refs = ContentRef(CODEC_RAW, bytes(32)), ContentRef(CODEC_RAW, bytes(32))
        chain.as_sender(creator).create_task(*refs, TaskParams(1, 1, 1, 5001, 5, 5, 1, 20))
        path.write_bytes(live.read_bytes())
    shutil.rmtree(live.parent)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (write_empty, "is empty, not a Flare chain state"),
        (write_text, "is not an SQLite database"),
        (write_foreign_database, "not a Flare chain state: it holds other tables (invoices)"),
        (write_copy_without_its_wal, "no Flare tables (was it copied without its -wal file?)"),
    ],
)
def test_what_is_not_a_flare_state_is_refused_in_one_line_and_left_unchanged(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], None],
    reason: str,
) -> None:
    state = tmp_path / "state" / "chain.db"
    state.parent.mkdir()
    make(state)
    store = tmp_path / "store"
    (store / "blobs").mkdir(parents=True)
    before = files_in(state.parent)
    assert_one_line_error(verify(capsys, state, store), str(state), reason)
    assert files_in(state.parent) == before


def test_a_state_without_tasks_and_task_ids_out_of_range_are_one_line(
    tmp_path: Path, finished_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    state, store = finished_run.copy_to(tmp_path / "run")
    assert_one_line_error(verify(capsys, state, store, "--task", "0"), "--task must be at least 1")
    assert_one_line_error(
        verify(capsys, state, store, "--task", "2"), "no task 2: the chain holds tasks 1 to 1"
    )
    empty_chain = tmp_path / "empty.db"
    InMemoryChain(empty_chain).close()
    assert_one_line_error(verify(capsys, empty_chain, store), "the chain holds no task")
    assert_one_line_error(verify(capsys, state, tmp_path), "no blob store at")


# -- a damaged blob store ------------------------------------------------------------------


def delete(path: Path) -> None:
    path.unlink()


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


BLOBS: dict[str, Callable[[Run], tuple[str, str]]] = {
    "manifest": lambda run: (run.manifest, "task manifest"),
    "initial model": lambda run: (run.initial_model, "initial model"),
    "final model": lambda run: (run.final_model, "global model of round 1"),
    "accepted update": lambda run: run.accepted_update,
    "filtered attacker's update": lambda run: run.rejected_update,
}


DAMAGES = [(delete, "is missing from the store"), (corrupt, "is corrupt in the store")]


@pytest.mark.parametrize(
    ("blob", "damage", "problem"),
    [
        (blob, damage, problem)
        for blob in BLOBS
        for damage, problem in DAMAGES
        # a missing update the chain rejected as well is a note: see the next test
        if (blob, damage) != ("filtered attacker's update", delete)
    ],
)
def test_a_damaged_blob_is_named_and_the_chain_not_blamed(
    tmp_path: Path,
    finished_run: Run,
    capsys: pytest.CaptureFixture[str],
    blob: str,
    damage: Callable[[Path], None],
    problem: str,
) -> None:
    state, store = finished_run.copy_to(tmp_path / "run")
    cid, role = BLOBS[blob](finished_run)
    damage(store / "blobs" / cid)
    audit = verify(capsys, state, store)
    assert audit.code == 1
    assert audit.err == []
    assert audit.out == [
        f"task 1 round   1 attempt 0  STORE DAMAGED  {role} {cid} {problem}",
        "task 1: 0/1 rounds re-derived; history hash matches; the blob store is damaged (round 1)",
    ]
    assert "MISMATCH" not in audit.text


def test_a_missing_update_the_chain_rejected_too_is_noted_not_failed(
    tmp_path: Path, finished_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its submitter may never have published it: failing every audit over it would hand
    any participant a way to fail them all."""
    state, store = finished_run.copy_to(tmp_path / "run")
    cid, role = finished_run.rejected_update
    delete(store / "blobs" / cid)
    audit = verify(capsys, state, store)
    assert audit.code == 0
    assert audit.out[0] == (
        f"task 1 round   1 attempt 0  ok  {finished_run.final_model}  "
        f"(note: {role} {cid} is missing from the store; the chain rejected it too)"
    )


# -- a damaged chain database ------------------------------------------------------------


def test_a_flipped_byte_in_the_chain_database_is_one_line_or_a_full_audit(
    tmp_path: Path, finished_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    state, store = finished_run.copy_to(tmp_path / "run")
    intact = state.read_bytes()
    expected = verify(capsys, state, store).out
    outcomes = set()
    for position in [0, 20, 100, *range(4096 + 7, len(intact), len(intact) // 5)]:
        damaged = bytearray(intact)
        damaged[position] ^= 0xFF
        state.write_bytes(bytes(damaged))
        audit = verify(capsys, state, store)
        if audit.code == 2:
            assert_one_line_error(audit, str(state))
        else:
            assert (audit.code, audit.out) == (0, expected)
        assert state.read_bytes() == bytes(damaged)
        outcomes.add(audit.code)
    assert 2 in outcomes


# -- a chain that disagrees with an intact store -----------------------------------------


def finalize_a_model_nobody_computed(state: Path, store_dir: Path) -> tuple[str, str]:
    """A task whose one round finalized the base model itself while accepting an update:
    a committee that approved what it never computed. Returns (finalized, recomputed)."""
    store = DirectoryStore(store_dir)
    weights = TorchModelAdapter(build_model("logreg", 4, 3, seed=0)).get_weights()
    features = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    base = store.put(encode_model(weights))
    manifest = store.put(
        encode_manifest(TaskManifest("logreg", 4, 3, "fedavg"), features, np.arange(12) % 3)
    )
    creator, _ = participant_keys(0, -1)
    members = [ProtocolParticipant(f"p{i}", *participant_keys(0, i)) for i in range(2)]
    with InMemoryChain(state) as chain:
        params = TaskParams(1, 2, 1, 5001, 20, 20, 1, 20)
        refs = ContentRef.from_cid(base), ContentRef.from_cid(manifest)
        task_id = chain.as_sender(creator).create_task(*refs, params).one(TaskCreated).task_id
        for member in members:
            member.register(chain, task_id)
        chain.as_sender(creator).start_task(task_id)
        opened = chain.round_opened(task_id, 1, 0)
        context = load_task_context(chain, store, task_id)
        delta = {name: np.full_like(tensor, 0.01) for name, tensor in weights.items()}
        encoder = make_codec("none").new_encoder(spec_of(weights), 0)
        update = store.put(encoder.encode(delta, members[0].binding(context, opened, 10)))
        members[0].submit(chain, task_id, update, 10)
        for member in members:
            assert member.claim_seat_if_drawn(chain, opened, 2) is not None
        chain.mine(chain.current_round(task_id).submission_deadline - chain.block_number())
        proposer = chain.as_sender(members[0].account)
        proposed = proposer.propose(task_id, ContentRef.from_cid(base), b"\x01").one(Proposed)
        proposer.vote(task_id, proposed.proposal_id, True)
        receipt = chain.as_sender(members[1].account).vote(task_id, proposed.proposal_id, True)
        assert any(isinstance(event, RoundFinalized) for event in receipt.events)
    recomputed = encode_model({name: tensor + delta[name] for name, tensor in weights.items()})
    return base, str(compute_cid(recomputed))


def test_a_chain_that_disagrees_with_an_intact_store_is_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, store = tmp_path / "chain.db", tmp_path / "store"
    finalized, recomputed = finalize_a_model_nobody_computed(state, store)
    audit = verify(capsys, state, store)
    assert audit.code == 1
    assert audit.out == [
        f"task 1 round   1 attempt 0  MISMATCH  chain {finalized} != recomputed {recomputed}",
        "task 1: 0/1 rounds re-derived; history hash matches",
    ]


def test_a_task_auditor_recomputes_only_what_has_not_re_derived(
    tmp_path: Path, finished_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's auditor: a round that re-derived is never recomputed again; a round
    whose blob was missing is judged anew once the blob is back."""
    import flare.federation.protocol.verify as verify_module

    state, store_root = finished_run.copy_to(tmp_path / "run")
    recomputations = []
    real_compute = verify_module.compute_aggregate

    def counted(*args: object, **kwargs: object) -> object:
        recomputations.append(args[3:5])
        return real_compute(*args, **kwargs)

    monkeypatch.setattr(verify_module, "compute_aggregate", counted)
    cid, _ = finished_run.accepted_update
    blob = store_root / "blobs" / cid
    kept = blob.read_bytes()
    blob.unlink()
    auditor = verify_module.TaskAuditor(DirectoryStore(store_root), 1)
    with InMemoryChain(state, read_only=True) as chain:
        first = auditor.audit(chain)
        assert [r.status for r in first.rounds] == [verify_module.RoundStatus.STORE_DAMAGED]
        assert auditor.audit(chain).rounds[0].status is verify_module.RoundStatus.STORE_DAMAGED
        assert len(recomputations) == 2
        blob.write_bytes(kept)
        healed = auditor.audit(chain)
        assert healed.ok and healed.history_matches
        assert len(recomputations) == 3
        assert auditor.audit(chain) == healed
        assert len(recomputations) == 3
        assert verify_module.verify_task(chain, DirectoryStore(store_root), 1) == healed

"""``task create --admit FILE``: a permissioned task on chain, its safety bound computed for
the admitted fleet, malformed lists refused in one line; ``task status`` says who may join."""

import pytest
from eth_utils import keccak, to_checksum_address

from flare.chain import InMemoryChain
from flare.chain.api.admission import admission_root
from flare.cli import main

FLEET = [to_checksum_address(keccak(b"device-%d" % n)[:20]) for n in range(10)]


def network(tmp_path) -> list[str]:
    return ["--state", str(tmp_path / "chain.db"), "--store", str(tmp_path / "blobs")]


def test_task_create_admits_a_fleet_and_states_its_bound(tmp_path, capsys):
    listing = tmp_path / "fleet.txt"
    listing.write_text("# the operator's devices\n" + "\n".join(a.lower() for a in FLEET) + "\n")
    create = ["task", "create", "--model", "logreg", "--admit", str(listing)]
    assert main([*create, *network(tmp_path)]) == 0
    out = capsys.readouterr().out
    # k = 40 seats all 10 devices: 2 hostile keys never reach 7 approvals of 10.
    assert "against 2 admitted keys (a 0.2 share) of 10 participants: capture 0," in out
    with InMemoryChain(tmp_path / "chain.db", read_only=True) as chain:
        assert chain.admission_root(1) == admission_root(FLEET)
    assert main(["task", "status", "--task", "1", *network(tmp_path)]) == 0
    assert f"admission: permissioned, root 0x{admission_root(FLEET).hex()}" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{FLEET[0]}\nnope\n", "line 2: 'nope' is not an address"),
        ("# nobody\n\n", "admits no address"),
    ],
)
def test_a_malformed_admission_list_is_one_line(tmp_path, capsys, text, message):
    listing = tmp_path / "fleet.txt"
    listing.write_text(text)
    assert main(["task", "create", "--admit", str(listing), *network(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fleet.txt"]


def test_a_capturable_fleet_is_refused(tmp_path, capsys):
    listing = tmp_path / "fleet.txt"
    listing.write_text("\n".join(FLEET))
    argv = ["task", "create", "--admit", str(listing), "--committee", "3", "--min-committee", "2"]
    assert main([*argv, *network(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "against 2 admitted keys (a 0.2 share) of 10 participants: capture" in error
    assert "exceeds --max-capture-probability 1e-06" in error


def test_task_admit_replaces_the_list_and_refuses_an_open_task(tmp_path, capsys):
    listing = tmp_path / "fleet.txt"
    listing.write_text("\n".join(FLEET))
    create = ["task", "create", "--model", "logreg", *network(tmp_path)]
    assert main([*create, "--admit", str(listing)]) == 0
    assert main(create) == 0  # task 2 is open
    capsys.readouterr()
    smaller = tmp_path / "smaller.txt"
    smaller.write_text("\n".join(FLEET[:5]))
    assert main(["task", "admit", "--task", "1", "--admit", str(smaller), *network(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        f"task 1 admits 5 addresses from block 3: root 0x{admission_root(FLEET[:5]).hex()}" in out
    )
    assert "against 1 admitted keys (a 0.2 share) of 5 participants: capture 0," in out
    with InMemoryChain(tmp_path / "chain.db", read_only=True) as chain:
        assert chain.admission_root(1) == admission_root(FLEET[:5])
    assert main(["task", "admit", "--task", "2", "--admit", str(smaller), *network(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "OpenAdmission(2)" in error and len(error.splitlines()) == 1

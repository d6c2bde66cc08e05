"""``task create --min-stake AMOUNT``: a staked task on chain, its safety bound stated for a
share of stake; ``participant withdraw`` takes a stake back once the task ended, refused in one
line before; ``task status`` says what registering costs."""

from types import SimpleNamespace

import pytest

from flare.chain import InMemoryChain
from flare.cli import main
from flare.crypto.identity import ParticipantKeys
from flare.federation.protocol.roles import ProtocolParticipant

GWEI = 10**9


def network(tmp_path) -> list[str]:
    return ["--state", str(tmp_path / "chain.db"), "--store", str(tmp_path / "blobs")]


def test_task_create_stakes_a_task_and_states_its_bound(tmp_path, capsys):
    create = ["task", "create", "--model", "logreg", "--min-stake", "0.5ether"]
    assert main([*create, *network(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "against a 0.2 share of stake of any number of participants: capture 6.25e-09," in out
    with InMemoryChain(tmp_path / "chain.db", read_only=True) as chain:
        assert chain.min_stake(1) == 5 * 10**17
    assert main(["task", "status", "--task", "1", *network(tmp_path)]) == 0
    assert (
        "admission: staked, each participant bonds at least 0.5 ether (500000000000000000 wei)"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--min-stake", "0.5"], "'0.5' is not a positive whole number of wei"),
        (["--min-stake", "lots"], "'lots' is not an amount"),
        (["--min-stake", "1", "--admit", "fleet.txt"], "not allowed with argument"),
    ],
)
def test_a_bad_stake_option_is_refused_before_anything_is_written(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exited:
        main(["task", "create", *extra, *network(tmp_path)])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_participant_withdraws_its_stake_once_the_task_ended(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FLARE_KEYSTORE_PASSWORD", "correct horse battery")
    keystore = tmp_path / "keys"
    assert main(["participant", "keys", "new", "--keystore", str(keystore)]) == 0
    create = ["task", "create", "--model", "logreg", "--min-stake", "2gwei", *network(tmp_path)]
    assert main(create) == 0
    keys = ParticipantKeys.load(keystore, "correct horse battery")
    device = ProtocolParticipant("device", keys.account, keys.bls_key, stake=5 * GWEI)
    with InMemoryChain(tmp_path / "chain.db") as chain:
        device.register(chain, 1)
        assert chain.stake_of(1, keys.account.address) == 5 * GWEI
    capsys.readouterr()
    withdraw = ["participant", "withdraw", "--task", "1", "--keystore", str(keystore)]
    assert main([*withdraw, *network(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "StakeLocked(1, " in error and len(error.splitlines()) == 1

    with InMemoryChain(tmp_path / "chain.db") as chain:
        creator = SimpleNamespace(address=chain.task(1).creator)
        chain.as_sender(creator).cancel_task(1)
    assert main([*withdraw, *network(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"task 1: 0.000000005 ether (5000000000 wei) withdrawn to {keys.account.address}" in out
    with InMemoryChain(tmp_path / "chain.db", read_only=True) as chain:
        assert chain.stake_of(1, keys.account.address) == 0
        assert chain.contract_balance() == 0

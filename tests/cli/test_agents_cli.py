"""The network configuration, and the task and participant commands as an operator types them."""

import json

import numpy as np
import pytest

from flare.chain import InMemoryChain
from flare.cli import main
from flare.config import NetworkConfig, load_network_config, open_chain, open_store, read_password
from flare.errors import ConfigError
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.protocol.simulated_device import participant_keys
from flare.storage import DirectoryStore


def test_defaults_are_a_local_anvil_and_kubo():
    config = load_network_config(None)
    assert (config.chain_id, config.rpc_url) == (31337, "http://127.0.0.1:8545")
    assert config.ipfs_api_url == "http://127.0.0.1:5001"
    assert not config.local


def test_network_file_in_toml_or_json_with_paths_relative_to_it(tmp_path):
    (tmp_path / "net.toml").write_text(
        'chain_id = 11155111\nrpc_url = "https://rpc.example"\nconfirmations = 3\n'
        'deployment = "deployments/11155111.json"\nkeystore = "keys/a"\npoll_interval = 12.0\n'
    )
    config = load_network_config(tmp_path / "net.toml")
    assert config.chain_id == 11155111 and config.confirmations == 3
    assert config.deployment == tmp_path / "deployments" / "11155111.json"
    assert config.keystore == tmp_path / "keys" / "a"
    (tmp_path / "net.json").write_text(json.dumps({"ipfs_api_url": "http://10.0.0.2:5001"}))
    assert load_network_config(tmp_path / "net.json").ipfs_api_url == "http://10.0.0.2:5001"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rpc = 'x'", "unknown settings \\['rpc'\\]"),
        ("confirmations = 0", "confirmations must be at least 1"),
        ("max_fee_gwei = 1.0\npriority_fee_gwei = 2.0", "fee caps"),
        ("chain_id = ", "not valid"),
    ],
)
def test_bad_network_files_fail_with_one_line(tmp_path, text, message):
    (tmp_path / "net.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_network_config(tmp_path / "net.toml")


def test_password_from_file_or_environment(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("s3cret\n")
    assert read_password(NetworkConfig(password_file=tmp_path / "pw")) == "s3cret"
    monkeypatch.setenv("DEVICE_PW", "from-env")
    assert read_password(NetworkConfig(password_env="DEVICE_PW")) == "from-env"
    monkeypatch.delenv("DEVICE_PW")
    with pytest.raises(ConfigError, match="DEVICE_PW"):
        read_password(NetworkConfig(password_env="DEVICE_PW"))


def test_open_chain_picks_the_embedded_chain_or_the_deployment(tmp_path):
    local = NetworkConfig().with_overrides(state=tmp_path / "chain.db", store=tmp_path / "blobs")
    assert local.rpc_url is None and local.local
    with open_chain(local) as chain:
        assert isinstance(chain, InMemoryChain)
    assert isinstance(open_store(local), DirectoryStore)
    remote = NetworkConfig(deployment=tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="no deployment file"), open_chain(remote):
        pass


def test_task_commands_on_the_embedded_chain(tmp_path, capsys):
    network = ["--state", str(tmp_path / "chain.db"), "--store", str(tmp_path / "blobs")]
    assert main(["task", "split-data", "--clients", "3", "--out", str(tmp_path / "data")]) == 0
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "client-0.npz",
        "client-1.npz",
        "client-2.npz",
        "test.npz",
    ]
    create = ["task", "create", "--model", "logreg", "--rounds", "1", "--min-clients", "1"]
    assert main([*create, *network]) == 0
    assert "task 1 created: model bafk" in capsys.readouterr().out
    with InMemoryChain(tmp_path / "chain.db") as chain:
        ProtocolParticipant("p0", *participant_keys(0, 0)).register(chain, 1)
    assert main(["task", "start", "--task", "1", *network]) == 0
    assert "round 1 takes submissions until block" in capsys.readouterr().out
    test_file = str(tmp_path / "data" / "test.npz")
    assert main(["task", "status", "--task", "1", "--test", test_file, *network]) == 0
    status = capsys.readouterr().out
    assert "running, 1 registered" in status
    assert "round 1 attempt 0 (epoch 1): submission" in status
    assert "global model accuracy" in status


def test_participant_keys_and_the_refusal_to_share_an_embedded_chain(tmp_path, capsys):
    (tmp_path / "pw").write_text("correct horse\n")
    keys_dir = tmp_path / "keys"
    new = ["participant", "keys", "new", "--keystore", str(keys_dir)]
    assert main([*new, "--password-file", str(tmp_path / "pw")]) == 0
    address = capsys.readouterr().out.split()[0]
    keyfile = json.loads((keys_dir / "eth-account.json").read_text())
    assert keyfile["address"].lower() == address[2:].lower()
    assert (keys_dir / "bls-keystore.json").is_file()
    np.savez(tmp_path / "c.npz", X=np.zeros((2, 64)), y=np.zeros(2, dtype=np.int64))
    run = ["participant", "run", "--task", "1", "--data", str(tmp_path / "c.npz")]
    assert main([*run, "--state", str(tmp_path / "chain.db")]) == 2
    assert "needs a chain node" in capsys.readouterr().err

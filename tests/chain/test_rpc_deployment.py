"""Deployment files, key sources and the shipped artifact, without a node."""

import json
from pathlib import Path

import pytest
from eth_account import Account

from flare.chain.rpc.accounts import (
    ANVIL_DEV_KEY,
    account_from_key_file,
    account_from_keystore,
    dev_account,
)
from flare.chain.rpc.contract import ContractArtifactError, interface_problems, load_artifact
from flare.chain.rpc.deployment import Deployment
from flare.crypto.account_keyfile import encrypt_eth_account
from flare.errors import ConfigError

DEPLOYMENT = Deployment(
    chain_id=31337,
    address="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    deploy_block=1,
    transaction_hash="0x" + "ab" * 32,
    deployer="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    artifact_sha256="cd" * 32,
)


def test_a_deployment_file_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    written = DEPLOYMENT.save()
    assert written == Path("deployments/31337.json")
    assert json.loads(written.read_text())["address"] == DEPLOYMENT.address
    assert Deployment.load(chain_id=31337) == DEPLOYMENT
    assert Deployment.load(written) == DEPLOYMENT
    assert list(written.parent.iterdir()) == [written], "no temporary file is left behind"


def test_addresses_are_checksummed_on_load(tmp_path: Path) -> None:
    path = DEPLOYMENT.save(tmp_path / "d.json")
    document = json.loads(path.read_text())
    document["address"] = document["address"].lower()
    path.write_text(json.dumps(document))
    assert Deployment.load(path).address == DEPLOYMENT.address


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chain_id": "31337"}, "chain_id"),
        ({"deploy_block": True}, "deploy_block"),
        ({"address": "0x1234"}, "address"),
        ({"format": 2}, "version-1"),
        ({"contract": "Other"}, "version-1"),
    ],
)
def test_a_malformed_deployment_file_is_refused(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = DEPLOYMENT.save(tmp_path / "d.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ConfigError, match=message):
        Deployment.load(path)


def test_loading_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `flare deploy` first"):
        Deployment.load(tmp_path / "none.json")
    with pytest.raises(ConfigError, match="is for chain 31337, not 5"):
        Deployment.load(DEPLOYMENT.save(tmp_path / "d.json"), chain_id=5)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="unreadable"):
        Deployment.load(tmp_path / "bad.json")


def test_connect_refuses_a_contract_from_another_artifact() -> None:
    with pytest.raises(ContractArtifactError, match="deployed from artifact"):
        DEPLOYMENT.connect("http://127.0.0.1:1")


def test_the_dev_account_is_anvils_first() -> None:
    assert dev_account().address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_keys_load_from_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(ANVIL_DEV_KEY[2:] + "\n")
    assert account_from_key_file(path).address == dev_account().address
    path.write_text("not a key")
    with pytest.raises(ConfigError) as raised:
        account_from_key_file(path)
    assert "not a key" not in str(raised.value), "key file content must never be echoed"
    with pytest.raises(ConfigError, match="cannot read"):
        account_from_key_file(tmp_path / "missing")


def test_keys_load_from_a_keystore(tmp_path: Path) -> None:
    account = Account.from_key(b"\x42" * 32)
    path = tmp_path / "keystore.json"
    keyfile = encrypt_eth_account(
        account, "pw", kdf="pbkdf2", iterations=2, allow_weak_password=True
    )
    path.write_text(json.dumps(keyfile))
    assert account_from_keystore(path, "pw").address == account.address
    with pytest.raises(ConfigError, match="wrong password"):
        account_from_keystore(path, "nope")


def test_the_shipped_artifact_matches_flares_abi() -> None:
    artifact = load_artifact()
    assert interface_problems(artifact.abi) == []
    assert artifact.bytecode and artifact.deployed_bytecode
    assert len(artifact.sha256) == 64


def test_an_artifact_that_drifted_is_refused_with_every_difference(tmp_path: Path) -> None:
    artifact = load_artifact()
    abi = [dict(entry) for entry in artifact.abi]
    renamed = next(e for e in abi if e.get("type") == "error" and e["name"] == "UnknownTask")
    renamed["name"] = "NoSuchTask"
    event = next(e for e in abi if e.get("type") == "event" and e["name"] == "Voted")
    event["inputs"] = [dict(i, indexed=False) for i in event["inputs"]]
    drifted = tmp_path / "FlareCoordinator.json"
    drifted.write_text(
        json.dumps(
            {
                "abi": abi,
                "bytecode": "0x" + artifact.bytecode.hex(),
                "deployedBytecode": {"object": "0x" + artifact.deployed_bytecode.hex()},
            }
        )
    )
    with pytest.raises(ContractArtifactError) as raised:
        load_artifact(drifted)
    assert "error UnknownTask is missing" in str(raised.value)
    assert "event Voted indexes" in str(raised.value)

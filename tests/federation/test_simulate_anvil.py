"""`flare simulate --chain`: the protocol simulation with every call a transaction on Anvil,
read back with an independent client (Foundry's `cast`) and compared with the report."""

import json
import subprocess
from pathlib import Path

import pytest
from conformance.anvil_harness import shared_anvil
from eth_utils import to_checksum_address

from flare.chain.rpc.chain import RpcChain
from flare.chain.rpc.transport import HttpProvider, RpcClient
from flare.federation.config import SimulationConfig
from flare.federation.protocol.driver import ProtocolSimulation
from flare.federation.protocol.settings import ProtocolConfig
from flare.federation.protocol.verify import verify_task
from flare.storage import Cid, DirectoryStore

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

CAST = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "cast"
ROUND_FINALIZED = (
    "RoundFinalized(uint256 indexed,uint32 indexed,uint32,uint32,(uint64,bytes32),uint32,"
    "bytes32,bytes32,uint32,bytes32)"
)
SEAT_CLAIMED = (
    "SeatClaimed(uint256 indexed,uint32 indexed,address indexed,uint32,bytes32,bytes,uint32)"
)
VOTED = "Voted(uint256 indexed,uint32 indexed,address indexed,uint32,uint32,bool,uint32,uint32)"


def cast_logs(signature: str, contract: str, rpc: str, from_block: int) -> list[dict]:
    out = subprocess.run(
        [
            str(CAST),
            "logs",
            "--json",
            "--from-block",
            str(from_block),
            "--address",
            contract,
            signature,
            "--rpc-url",
            rpc,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def word(data: str, index: int) -> str:
    return data[2 + 64 * index : 2 + 64 * (index + 1)]


@pytest.mark.skipif(not CAST.exists(), reason="Foundry's cast is not installed (scripts/setup.sh)")
def test_simulation_on_anvil_matches_what_cast_reads(tmp_path):
    node = shared_anvil()
    rpc = RpcClient(HttpProvider(node.rpc_url, 10))
    baseline = rpc.request("evm_snapshot")
    start = int(rpc.request("eth_blockNumber"), 16)
    try:
        config = SimulationConfig(model="logreg", clients=10, malicious=3, rounds=2)
        report = ProtocolSimulation(
            config, ProtocolConfig(chain_url=node.rpc_url, store=tmp_path / "blobs")
        ).run()
        contract = report.config["contract"]
        finalized = cast_logs(ROUND_FINALIZED, contract, node.rpc_url, start)
        seats = cast_logs(SEAT_CLAIMED, contract, node.rpc_url, start)
        votes = cast_logs(VOTED, contract, node.rpc_url, start)
        auditor = RpcChain(node.rpc_url, contract, chain_id=report.config["chain_id"])
        verdict = verify_task(auditor, DirectoryStore(tmp_path / "blobs"), 1)
    finally:
        rpc.request("evm_revert", baseline)

    assert verdict.ok and len(verdict.rounds) == 2
    assert len(finalized) == len(report.rounds) == 2
    for log, record in zip(finalized, report.rounds, strict=True):
        codec, digest = int(word(log["data"], 2), 16), bytes.fromhex(word(log["data"], 3))
        assert str(Cid(codec, digest)) == record.protocol["global_model"]
        round_number = int(log["topics"][2], 16)
        assert round_number == record.round
        onchain_members = [
            to_checksum_address("0x" + s["topics"][3][-40:])
            for s in seats
            if int(s["topics"][2], 16) == round_number
            and int(word(s["data"], 0), 16) == record.protocol["attempt"]
        ]
        assert onchain_members == [c["address"] for c in record.protocol["committee"]]
        onchain_votes = [
            (int(word(v["data"], 1), 16), bool(int(word(v["data"], 2), 16)))
            for v in votes
            if int(v["topics"][2], 16) == round_number
            and int(word(v["data"], 0), 16) == record.protocol["attempt"]
        ]
        assert onchain_votes == [(v["proposal"], v["approve"]) for v in record.protocol["votes"]]
        assert set(record.malicious) <= set(record.flagged)

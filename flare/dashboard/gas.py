"""Gas a task's transactions spent, from the receipts of the blocks that hold its logs.

Only a JSON-RPC node has receipts; the embedded chain charges no gas, so it reports none.
A transaction counts for the task when one of its logs is the coordinator's with the task's
id as first indexed topic, and for the round its first round-indexed log names (the vote
that finalizes round r opens round r + 1 in the same transaction: it is round r's).
"""

from typing import Any

from flare.chain import (
    ChainConnector,
    Proposed,
    RoundFinalized,
    RoundOpened,
    RoundRejected,
    RoundTimedOut,
    SeatClaimed,
    SeedSealed,
    UpdateSubmitted,
    Voted,
)
from flare.chain.api.events import Event

ROUND_TOPICS = {
    "0x" + kind.topic().hex()
    for kind in (
        RoundOpened,
        SeedSealed,
        UpdateSubmitted,
        SeatClaimed,
        Proposed,
        Voted,
        RoundFinalized,
        RoundTimedOut,
        RoundRejected,
    )
}
"""Events whose second topic is the round number."""


class GasMeter:
    """Gas by round and in all (units and wei), each block's receipts read once."""

    def __init__(self) -> None:
        self._receipts: dict[int, list[dict[str, Any]]] = {}

    def spent(
        self, chain: ChainConnector, task_id: int, logs: list[Event]
    ) -> dict[str, Any] | None:
        """``{"rounds": {round: gas}, "total": {"gas", "wei"}}``, or ``None`` without receipts."""
        rpc = getattr(chain, "rpc", None)
        if rpc is None:
            return None
        contract = chain.contract_address.lower()
        task_topic = "0x" + task_id.to_bytes(32, "big").hex()
        rounds: dict[int, int] = {}
        total_gas = total_wei = 0
        for block in sorted({event.block_number for event in logs}):
            if block not in self._receipts:
                self._receipts[block] = rpc.request("eth_getBlockReceipts", hex(block)) or []
            for receipt in self._receipts[block]:
                ours = [
                    log
                    for log in receipt.get("logs", [])
                    if log["address"].lower() == contract
                    and len(log["topics"]) > 1
                    and log["topics"][1].lower() == task_topic
                ]
                if not ours:
                    continue
                gas = int(receipt["gasUsed"], 16)
                total_gas += gas
                total_wei += gas * int(receipt.get("effectiveGasPrice", "0x0"), 16)
                numbered = [log for log in ours if log["topics"][0].lower() in ROUND_TOPICS]
                if numbered:
                    number = int(numbered[0]["topics"][2], 16)
                    rounds[number] = rounds.get(number, 0) + gas
        return {"rounds": rounds, "total": {"gas": total_gas, "wei": total_wei}}

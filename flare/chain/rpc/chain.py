"""``RpcChain``: the coordination contract on any EVM JSON-RPC node (Anvil, a testnet).

The typed API is :class:`flare.chain.ChainConnector`'s; this class supplies its transport
over JSON-RPC (:mod:`flare.chain.rpc.transport`), signing locally with eth-account (a
node's unlocked accounts are never used, so the same code runs against a public endpoint).
What it adds to sending calldata to a node is the in-memory chain's contract of behaviour:

* a call that would revert raises the same typed :mod:`flare.chain.api.errors` exception as
  the in-memory chain and sends nothing (``eth_call`` preflight), and a transaction that
  still reverts once mined (a race) raises it too (replayed at its block);
* transient node failures are retried and end as :class:`ChainUnavailableError`, a node
  of another chain is refused with :class:`WrongChainError`, fees stay under caps, and
  concurrent threads can share one account (:mod:`flare.chain.rpc.transactions`).
"""

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.exceptions import DecodingError
from eth_utils import to_checksum_address

from flare.chain.api.abi import hex_bytes, word
from flare.chain.api.calls import Call, checked_calldata
from flare.chain.api.connector import ChainConnector, SenderAccount
from flare.chain.api.errors import ChainError, decode_revert
from flare.chain.api.events import EVENT_TYPES, EVENTS_BY_TOPIC, Event, Receipt, decode_log
from flare.chain.api.types import Participant, Proposal, Round, Task
from flare.chain.rpc.contract import (
    ADMISSION_ROOT,
    GET_PARTICIPANT,
    GET_PROPOSAL,
    GET_ROUND,
    GET_TASK,
    MIN_STAKE,
    STAKE_OF,
    STAKE_SNAPSHOT,
    TASK_COUNT,
    View,
    load_artifact,
)
from flare.chain.rpc.fees import FeeCapExceededError, FeePolicy
from flare.chain.rpc.transactions import (
    CallReverted,
    SigningAccount,
    TransactionFailedError,
    TransactionRejectedError,
    TransactionSender,
    TransactionSettings,
    TransactionTimeoutError,
)
from flare.chain.rpc.transport import (
    ChainUnavailableError,
    HttpProvider,
    Provider,
    RetryPolicy,
    RpcClient,
    RpcError,
    WrongChainError,
    is_oversized_query,
)
from flare.errors import ConfigError

__all__ = [
    "ChainUnavailableError",
    "ContractNotFoundError",
    "FeeCapExceededError",
    "FeePolicy",
    "RetryPolicy",
    "RpcChain",
    "RpcSettings",
    "TransactionFailedError",
    "TransactionRejectedError",
    "TransactionSettings",
    "TransactionTimeoutError",
    "WrongChainError",
]


class ContractNotFoundError(ChainError):
    """No contract code at the configured address (a reset dev node, a wrong deployment)."""


@dataclass(frozen=True)
class RpcSettings:
    """Everything tunable about talking to a node; the defaults suit a public testnet."""

    fees: FeePolicy = field(default_factory=FeePolicy)
    transactions: TransactionSettings = field(default_factory=TransactionSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    request_timeout: float = 30.0
    log_chunk_blocks: int = 5_000

    @classmethod
    def dev_node(cls) -> "RpcSettings":
        """For a local Anvil: it mines at once, so poll fast and give up sooner."""
        return cls(
            transactions=TransactionSettings(
                receipt_timeout=60, resend_after=5, poll_interval=0.02
            ),
            retry=RetryPolicy(attempts=4, initial_delay=0.1, max_delay=1.0),
            request_timeout=10.0,
        )

    def client(self, rpc: str | Provider) -> RpcClient:
        """A JSON-RPC client for ``rpc``: a URL (reached over HTTP) or a provider."""
        provider = HttpProvider(rpc, self.request_timeout) if isinstance(rpc, str) else rpc
        return RpcClient(provider, self.retry)

    def sender(self, client: RpcClient, chain_id: int) -> TransactionSender:
        """Sends transactions for ``chain_id`` through ``client`` under these fees and waits."""
        return TransactionSender(client, chain_id, self.fees, self.transactions)


@dataclass
class _Link:
    """What every sender-bound view of one connector shares: transport and nonces."""

    rpc: RpcClient
    sender: TransactionSender
    contract_address: str
    settings: RpcSettings
    first_block: int
    log_chunk_blocks: int
    """Starts at ``settings.log_chunk_blocks``; halved for good when a provider refuses it."""


class RpcChain(ChainConnector):
    """The coordination contract at ``contract_address`` on the node behind ``rpc``.

    ``rpc`` is a URL or a :class:`Provider`. The node must serve ``chain_id`` and have
    contract code at the address, or construction fails; the chain id is checked again
    before any request that follows a connection problem. ``account`` (an eth-account
    ``LocalAccount``) signs transactions; without one the connector only reads.
    ``first_block`` is the contract's deployment block: no log of it can be older, so log
    scans start there instead of at genesis (on a public chain, millions of blocks).
    """

    def __init__(
        self,
        rpc: str | Provider,
        contract_address: str,
        *,
        chain_id: int,
        account: SigningAccount | None = None,
        settings: RpcSettings | None = None,
        first_block: int = 0,
    ) -> None:
        load_artifact()  # refuse an artifact whose ABI disagrees with the codecs used here
        settings = settings or RpcSettings()
        client = settings.client(rpc)
        sender = settings.sender(client, chain_id)
        self._link = _Link(
            client,
            sender,
            to_checksum_address(contract_address),
            settings,
            first_block,
            settings.log_chunk_blocks,
        )
        self._account = _signing(account) if account is not None else None
        sender.verify_chain()
        if client.request("eth_getCode", self._link.contract_address, "latest") in ("0x", None):
            raise ContractNotFoundError(
                f"no contract at {self._link.contract_address} on chain {chain_id} "
                f"({client.name}); deploy one with `flare deploy` or check the deployment file"
            )

    # -- identity and clock ------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return self._link.sender.chain_id

    @property
    def contract_address(self) -> str:
        return self._link.contract_address

    @property
    def sender(self) -> str | None:
        return None if self._account is None else to_checksum_address(self._account.address)

    @property
    def rpc(self) -> RpcClient:
        """The JSON-RPC client, for node-specific requests (``evm_snapshot`` in tests)."""
        return self._link.rpc

    def as_sender(self, account: SenderAccount) -> "RpcChain":
        bound = copy.copy(self)  # shares the link: one transport, one nonce manager
        bound._account = _signing(account)
        return bound

    def block_number(self) -> int:
        return self._link.rpc.block_number()

    def mine(self, blocks: int = 1) -> int:
        """Mine ``blocks`` empty blocks on a dev node (``anvil_mine``); return the head."""
        if blocks < 0:
            raise ConfigError("cannot mine a negative number of blocks")
        if blocks:
            self._link.rpc.request("anvil_mine", hex(blocks))
        return self.block_number()

    # -- transport ---------------------------------------------------------------------

    def transact(self, call: Call) -> Receipt:
        if self._account is None:
            raise ConfigError("this connector has no sender; use chain.as_sender(account)")
        calldata = checked_calldata(call)
        try:
            mined = self._link.sender.send(
                self._account, self.contract_address, calldata, value=call.value
            )
        except CallReverted as reverted:
            raise decode_revert(reverted.data) from reverted
        events = tuple(self._decode(log) for log in mined.logs if self._is_ours(log))
        return Receipt(mined.block_number, events, mined.transaction_hash, mined.gas_used)

    def events(
        self,
        kinds: Sequence[type[Event]] | None = None,
        *,
        task_id: int | None = None,
        from_block: int = 0,
        to_block: int | None = None,
    ) -> list[Event]:
        wanted = EVENT_TYPES if kinds is None else tuple(kinds)
        from_block = max(from_block, self._link.first_block)
        # Never past the head: a node refuses a range that starts beyond it, which a
        # window that ends in the future reaches once it is read in chunks.
        head = self.block_number()
        last = head if to_block is None else min(to_block, head)
        if not wanted or from_block > last:
            return []
        topics: list[Any] = [["0x" + kind.topic().hex() for kind in wanted]]
        if task_id is not None:
            topics.append("0x" + word(task_id).hex())
        logs = self._logs(topics, from_block, last)
        logs.sort(key=lambda log: (int(log["blockNumber"], 16), int(log["logIndex"], 16)))
        return [self._decode(log) for log in logs if self._is_ours(log)]

    def _logs(self, topics: list[Any], first: int, last: int) -> list[dict[str, Any]]:
        """``eth_getLogs`` over ``[first, last]`` in chunks a public node will serve.

        A node that refuses a range as too large gets half the range, down to one block.
        """
        self._link.sender.verify_chain()
        chunk = self._link.log_chunk_blocks
        found: list[dict[str, Any]] = []
        start = first
        while start <= last:
            end = min(last, start + chunk - 1)
            query = {
                "address": self.contract_address,
                "fromBlock": hex(start),
                "toBlock": hex(end),
                "topics": topics,
            }
            try:
                found += self._link.rpc.request("eth_getLogs", query)
            except RpcError as exc:
                if chunk == 1 or not is_oversized_query(exc):
                    raise
                chunk = max(1, chunk // 2)
                self._link.log_chunk_blocks = chunk  # the provider's limit holds for later reads
                continue
            start = end + 1
        return found

    def _is_ours(self, log: dict[str, Any]) -> bool:
        return (
            not log.get("removed", False)
            and to_checksum_address(log["address"]) == self.contract_address
            and bool(log["topics"])
            and hex_bytes(log["topics"][0]) in EVENTS_BY_TOPIC
        )

    @staticmethod
    def _decode(log: dict[str, Any]) -> Event:
        return decode_log(
            [hex_bytes(t) for t in log["topics"]],
            hex_bytes(log["data"]),
            int(log["blockNumber"], 16),
            int(log["logIndex"], 16),
        )

    # -- views -------------------------------------------------------------------------

    def task_count(self) -> int:
        return int(self._view(TASK_COUNT))

    def task(self, task_id: int) -> Task:
        return self._view(GET_TASK, task_id)

    def current_round(self, task_id: int) -> Round:
        return self._view(GET_ROUND, task_id)

    def participant(self, task_id: int, account: str) -> Participant:
        return self._view(GET_PARTICIPANT, task_id, to_checksum_address(account))

    def proposal(self, task_id: int, proposal_id: int) -> Proposal:
        return self._view(GET_PROPOSAL, task_id, proposal_id)

    def admission_root(self, task_id: int) -> bytes:
        return self._view(ADMISSION_ROOT, task_id)

    def min_stake(self, task_id: int) -> int:
        return int(self._view(MIN_STAKE, task_id))

    def stake_of(self, task_id: int, account: str) -> int:
        return int(self._view(STAKE_OF, task_id, to_checksum_address(account)))

    def stake_snapshot(self, task_id: int) -> int:
        return int(self._view(STAKE_SNAPSHOT, task_id))

    def _view(self, view: View, *args: Any) -> Any:
        """``eth_call`` on the latest block; a revert raises its typed error."""
        sender = self._link.sender
        sender.verify_chain()
        request = {"to": self.contract_address, "data": "0x" + view.calldata(*args).hex()}
        try:
            data = sender.call(request, "latest")
        except CallReverted as reverted:
            raise decode_revert(reverted.data) from reverted
        try:
            return view.result(data)
        except DecodingError as exc:
            raise ContractNotFoundError(
                f"{view.name} at {self.contract_address} returned {len(data)} bytes that are "
                "not its ABI result; is this a FlareCoordinator?"
            ) from exc


def _signing(account: SenderAccount) -> SigningAccount:
    """``account`` if it signs locally; a node-side account is refused on purpose."""
    if not callable(getattr(account, "sign_transaction", None)):
        raise ConfigError(
            "RpcChain signs locally: pass an eth_account LocalAccount, not just an address"
        )
    return account  # type: ignore[return-value]

"""Sending one transaction to a real node, from preflight to a settled receipt.

The in-memory chain's rule is that a call either applies completely or raises its error
and changes nothing, not even the block number. Over a real node a mined revert would
still mine a block and spend gas, so every transaction is first simulated with
``eth_call`` on the pending block, and one that would revert raises there, unsent. Only
a race (another transaction that changes the state between preflight and inclusion) can
still make a mined transaction revert; its revert data is then recovered by replaying
the call in the block that included it, so the caller gets the same typed error.

Between broadcast and receipt, a transaction can be dropped by the node or stuck below
the market fee; after ``resend_after`` seconds it is signed again with the same nonce and
raised fees (bounded by :class:`flare.chain.rpc.fees.FeePolicy`), so at most one of the
copies can ever execute. If another sender consumed the nonce, the call is simulated and
sent again with a fresh one.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flare.chain.api.abi import hex_bytes
from flare.chain.api.errors import ChainError
from flare.chain.rpc.fees import FeePolicy, Fees
from flare.chain.rpc.nonces import NonceManager
from flare.chain.rpc.transport import ChainUnavailableError, RpcClient, RpcError, WrongChainError
from flare.errors import ConfigError

_ALREADY_IN_POOL = ("already known", "known transaction", "already imported")
_NONCE_CONFLICT = ("nonce too low", "replacement transaction underpriced")
_NONCE_ATTEMPTS = 10
_NONCE_BACKOFF = 0.05
"""Upper bound of the random pause after a nonce collision, so colliding senders spread."""


class SigningAccount(Protocol):
    """An account that signs locally (``eth_account.signers.local.LocalAccount``)."""

    @property
    def address(self) -> str: ...

    def sign_transaction(self, transaction_dict: dict[str, Any]) -> Any: ...


class CallReverted(ChainError):
    """The EVM reverted the call; ``data`` is its revert data, possibly empty.

    ``transaction_hash`` is set only when a mined transaction reverted.
    """

    def __init__(self, data: bytes, transaction_hash: bytes | None = None) -> None:
        super().__init__(f"reverted with 0x{data.hex()}")
        self.data = data
        self.transaction_hash = transaction_hash


class TransactionRejectedError(ChainError):
    """The node refused the signed transaction (funds, gas limit, malformed)."""


class TransactionTimeoutError(ChainError):
    """No copy of the transaction was mined within the receipt timeout."""

    def __init__(self, hashes: list[bytes], seconds: float) -> None:
        sent = ", ".join("0x" + h.hex() for h in hashes)
        super().__init__(f"not mined within {seconds:g} s (sent as {sent})")
        self.hashes = hashes


class TransactionFailedError(ChainError):
    """A mined transaction failed, but replaying it does not revert (e.g. out of gas)."""


@dataclass(frozen=True)
class TransactionSettings:
    """How long to wait for what; the defaults suit a public testnet.

    A transaction gets ``estimate × (1 + gas_margin_percent / 100) + gas_extra`` gas:
    the estimate is made on the pending state, and a concurrent transaction can make the
    same call dearer (the vote that reaches quorum also finalizes the round). Unused gas
    is not charged, so a generous margin costs only the balance it must cover.
    """

    confirmations: int = 1
    receipt_timeout: float = 180.0
    resend_after: float = 30.0
    poll_interval: float = 0.5
    gas_margin_percent: int = 50
    gas_extra: int = 50_000

    def __post_init__(self) -> None:
        if self.confirmations < 1:
            raise ConfigError("a transaction needs at least one confirmation")
        if min(self.receipt_timeout, self.resend_after, self.poll_interval) <= 0:
            raise ConfigError("timeouts and the poll interval must be positive")


@dataclass(frozen=True)
class MinedTransaction:
    """A successful transaction with ``confirmations`` blocks on top of it."""

    transaction_hash: bytes
    block_number: int
    gas_used: int
    logs: tuple[dict[str, Any], ...]
    contract_address: str | None


@dataclass
class _Pending:
    """One nonce's worth of signed copies of the same call."""

    request: dict[str, Any]
    nonce: int
    gas: int
    fees: Fees
    hashes: list[bytes] = field(default_factory=list)
    raw: bytes = b""


class _NonceTaken(ChainError):
    """Another sender's transaction used our nonce; none of our copies was mined."""


class TransactionSender:
    """Simulates, signs, broadcasts and settles transactions for one chain id."""

    def __init__(
        self,
        rpc: RpcClient,
        chain_id: int,
        fees: FeePolicy,
        settings: TransactionSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rpc = rpc
        self.chain_id = chain_id
        self.fees = fees
        self.settings = settings
        self.nonces = NonceManager(rpc)
        self._clock = clock
        self._sleep = sleep
        self._verified_at: int | None = None

    def verify_chain(self) -> None:
        """Refuse a node of another chain; re-checked after every connection problem."""
        interruptions = self.rpc.interruptions
        if self._verified_at == interruptions:
            return
        actual = self.rpc.chain_id()
        if actual != self.chain_id:
            raise WrongChainError(self.chain_id, actual)
        self._verified_at = interruptions

    def call(self, request: dict[str, Any], block: str | int = "pending") -> bytes:
        """``eth_call``: the return data, or :class:`CallReverted`."""
        tag = hex(block) if isinstance(block, int) else block
        return hex_bytes(self._simulated("eth_call", request, tag))

    def _simulated(self, method: str, *params: Any) -> Any:
        """The result of an EVM-executing request; a revert raises :class:`CallReverted`."""
        try:
            return self.rpc.request(method, *params)
        except RpcError as exc:
            data = exc.revert_data
            if data is None:
                raise
            raise CallReverted(data) from None

    def send(
        self, account: SigningAccount, to: str | None, data: bytes, value: int = 0
    ) -> MinedTransaction:
        """Execute ``data`` against ``to`` (``None`` deploys) as ``account``, once.

        ``value`` is the wei the transaction carries (a stake bonded by a payable call).
        """
        if value < 0:
            raise ConfigError("a transaction cannot carry a negative value")
        self.verify_chain()
        request: dict[str, Any] = {
            "from": account.address,
            "data": "0x" + data.hex(),
            "value": hex(value),
        }
        if to is not None:
            request["to"] = to
        for _ in range(_NONCE_ATTEMPTS):
            self.call(request)
            gas = self._gas_limit(request)
            pending = self._broadcast_new(account, request, gas, self.fees.quote(self.rpc))
            try:
                return self._settle(account, pending)
            except _NonceTaken:
                continue
            finally:
                self.nonces.finished(account.address, pending.nonce)
        raise TransactionRejectedError(
            f"another sender took this account's nonce {_NONCE_ATTEMPTS} times in a row"
        )

    # -- broadcast ---------------------------------------------------------------------

    def _gas_limit(self, request: dict[str, Any]) -> int:
        estimate = int(self._simulated("eth_estimateGas", request, "pending"), 16)
        margin = estimate * self.settings.gas_margin_percent // 100
        return estimate + margin + self.settings.gas_extra

    def _broadcast_new(
        self, account: SigningAccount, request: dict[str, Any], gas: int, fees: Fees
    ) -> _Pending:
        with self.nonces.sending(account.address) as slot:
            for _ in range(_NONCE_ATTEMPTS):
                pending = _Pending(request, slot.reserve(), gas, fees)
                try:
                    self._sign_and_broadcast(account, pending, fees)
                    return pending
                except RpcError as exc:
                    slot.unused(pending.nonce)
                    if not exc.mentions(*_NONCE_CONFLICT):
                        refused = f"the node refused it: {exc.message}"
                        raise TransactionRejectedError(refused) from exc
                    self._sleep(random.uniform(0, _NONCE_BACKOFF))
                except ChainUnavailableError as exc:
                    slot.unused(pending.nonce)
                    sent = pending.hashes[-1]
                    raise ChainUnavailableError(
                        f"{exc} (transaction 0x{sent.hex()} may have reached the node; "
                        "look it up before sending again)",
                        sent,
                    ) from exc
        raise TransactionRejectedError("the account's nonce kept changing under us")

    def _sign_and_broadcast(self, account: SigningAccount, pending: _Pending, fees: Fees) -> None:
        """Sign ``pending`` with ``fees`` and hand it to the node; RpcError if refused."""
        transaction = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": pending.nonce,
            "gas": pending.gas,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            "value": int(pending.request["value"], 16),
            "data": pending.request["data"],
        }
        if "to" in pending.request:
            transaction["to"] = pending.request["to"]
        signed = account.sign_transaction(transaction)
        raw, tx_hash = bytes(signed.raw_transaction), bytes(signed.hash)
        # Recorded before broadcast: a refused replacement still raises the next bump, and
        # a broadcast that timed out may have reached the node under this hash.
        pending.hashes.append(tx_hash)
        pending.fees = fees
        self._broadcast(raw, tx_hash)
        pending.raw = raw

    def _broadcast(self, raw: bytes, tx_hash: bytes) -> None:
        try:
            self.rpc.request("eth_sendRawTransaction", "0x" + raw.hex())
        except RpcError as exc:
            # A retried request whose first try got through: the node already has it.
            if exc.mentions(*_ALREADY_IN_POOL) or self._known(tx_hash):
                return
            raise

    def _known(self, tx_hash: bytes) -> bool:
        return self.rpc.request("eth_getTransactionByHash", "0x" + tx_hash.hex()) is not None

    # -- settlement --------------------------------------------------------------------

    def _settle(self, account: SigningAccount, pending: _Pending) -> MinedTransaction:
        try:
            return self._wait(account, pending)
        except ChainUnavailableError as exc:
            raise ChainUnavailableError(
                f"{exc} (transaction 0x{pending.hashes[-1].hex()} was sent; its outcome is "
                "unknown until the node is back)",
                pending.hashes[-1],
            ) from exc

    def _wait(self, account: SigningAccount, pending: _Pending) -> MinedTransaction:
        start = self._clock()
        resend_at = start + self.settings.resend_after
        while True:
            receipt = self._first_receipt(pending.hashes)
            if receipt is not None and self._confirmed(receipt, start):
                return self._outcome(pending, receipt)
            now = self._clock()
            if now - start >= self.settings.receipt_timeout:
                raise TransactionTimeoutError(list(pending.hashes), self.settings.receipt_timeout)
            if receipt is None and now >= resend_at:
                self._resend(account, pending)
                resend_at = now + self.settings.resend_after
            self._sleep(self.settings.poll_interval)

    def _first_receipt(self, hashes: list[bytes]) -> dict[str, Any] | None:
        for tx_hash in hashes:
            receipt = self.rpc.request("eth_getTransactionReceipt", "0x" + tx_hash.hex())
            if receipt is not None and receipt.get("blockNumber") is not None:
                return receipt
        return None

    def _confirmed(self, receipt: dict[str, Any], start: float) -> bool:
        """True once the receipt's block has ``confirmations - 1`` blocks on top of it.

        A receipt that changes block while we wait was reorganised; the caller keeps
        polling and settles on wherever the transaction ends up.
        """
        needed = self.settings.confirmations - 1
        if needed == 0:
            return True
        included = int(receipt["blockNumber"], 16)
        if self.rpc.block_number() < included + needed:
            return False
        again = self.rpc.request("eth_getTransactionReceipt", receipt["transactionHash"])
        return again is not None and again.get("blockHash") == receipt["blockHash"]

    def _resend(self, account: SigningAccount, pending: _Pending) -> None:
        """Replace a dropped or stuck copy: same nonce, higher fees if the caps allow."""
        mined = int(self.rpc.request("eth_getTransactionCount", account.address, "latest"), 16)
        if mined > pending.nonce:
            if self._first_receipt(pending.hashes) is None:
                raise _NonceTaken
            return
        bumped = self.fees.bumped(pending.fees)
        try:
            if bumped is None:  # at the cap: make sure the node still has our last copy
                self._broadcast(pending.raw, pending.hashes[-1])
            else:
                self._sign_and_broadcast(account, pending, bumped)
        except RpcError as exc:
            if not exc.mentions(*_NONCE_CONFLICT):
                raise TransactionRejectedError(f"the node refused a resend: {exc.message}") from exc

    def _outcome(self, pending: _Pending, receipt: dict[str, Any]) -> MinedTransaction:
        tx_hash = hex_bytes(receipt["transactionHash"])
        block_number = int(receipt["blockNumber"], 16)
        gas_used = int(receipt["gasUsed"], 16)
        if int(receipt["status"], 16) == 1:
            logs = tuple(receipt["logs"])
            return MinedTransaction(
                tx_hash, block_number, gas_used, logs, receipt.get("contractAddress")
            )
        # Replaying at the including block sees its block number and the state at its end;
        # with one transaction per block (Anvil's automine) that is the state it ran on.
        try:
            self.call({**pending.request, "gas": hex(pending.gas)}, block_number)
        except CallReverted as reverted:
            raise CallReverted(reverted.data, tx_hash) from None
        reason = "ran out of gas" if gas_used >= pending.gas else "does not revert on replay"
        raise TransactionFailedError(f"transaction 0x{tx_hash.hex()} failed and {reason}")

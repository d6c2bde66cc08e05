"""EIP-1559 fees with hard caps: what a Flare process offers per gas, and never more.

A participant is often an unattended device with a funded key. A fee spike, or a node
that reports an absurd base fee, must not be able to drain that key, so every fee this
module produces is checked against caps set by the operator, and a transaction that could
only be included above them is refused (:class:`FeeCapExceededError`) instead of sent.
"""

from dataclasses import dataclass

from flare.chain.api.errors import ChainError
from flare.chain.rpc.transport import RpcClient, RpcError
from flare.errors import ConfigError

GWEI = 10**9


class FeeCapExceededError(ChainError):
    """The network needs a higher fee per gas than the configured cap allows."""

    def __init__(self, needed: int, cap: int) -> None:
        super().__init__(
            f"inclusion needs {needed / GWEI:.3f} gwei per gas, above the cap of "
            f"{cap / GWEI:.3f} gwei; raise the cap or wait for fees to fall"
        )
        self.needed = needed
        self.cap = cap


@dataclass(frozen=True)
class Fees:
    """The two EIP-1559 fee fields of one transaction, in wei per gas."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class FeePolicy:
    """Operator limits and the rule for offering and raising fees.

    ``max_fee = base_fee_headroom × base fee + priority fee``: with headroom 2 a
    transaction stays includable through six consecutive full blocks (each may raise the
    base fee by 12.5 %). A resend raises both fees by ``bump_percent``; nodes replace a
    pending transaction only for at least 10 % more.
    """

    max_fee_cap: int = 500 * GWEI
    priority_fee_cap: int = 5 * GWEI
    base_fee_headroom: int = 2
    bump_percent: int = 13

    def __post_init__(self) -> None:
        if self.max_fee_cap <= 0 or self.priority_fee_cap < 0:
            raise ConfigError("fee caps must be positive")
        if self.priority_fee_cap > self.max_fee_cap:
            raise ConfigError("the priority fee cap cannot exceed the max fee cap")
        if self.base_fee_headroom < 1 or self.bump_percent < 10:
            raise ConfigError("base fee headroom must be >= 1 and the bump >= 10 percent")

    def quote(self, rpc: RpcClient) -> Fees:
        """Fees for a new transaction at the current base fee, within the caps."""
        latest = rpc.request("eth_getBlockByNumber", "latest", False)
        if not latest or latest.get("baseFeePerGas") is None:
            raise ConfigError(f"{rpc.name} reports no EIP-1559 base fee; Flare needs London+")
        base_fee = int(latest["baseFeePerGas"], 16)
        try:
            suggested = int(rpc.request("eth_maxPriorityFeePerGas"), 16)
        except RpcError:  # not every node implements it; the cap is then the offer
            suggested = self.priority_fee_cap
        priority = min(suggested, self.priority_fee_cap)
        needed = base_fee + priority
        if needed > self.max_fee_cap:
            raise FeeCapExceededError(needed, self.max_fee_cap)
        max_fee = min(self.max_fee_cap, self.base_fee_headroom * base_fee + priority)
        return Fees(max_fee, priority)

    def bumped(self, fees: Fees) -> Fees | None:
        """Fees that may replace a pending transaction, or ``None`` if above a cap."""
        raised = Fees(
            _raise(fees.max_fee_per_gas, self.bump_percent),
            _raise(fees.max_priority_fee_per_gas, self.bump_percent),
        )
        if raised.max_fee_per_gas > self.max_fee_cap:
            return None
        if raised.max_priority_fee_per_gas > self.priority_fee_cap:
            return None
        return raised


def _raise(value: int, percent: int) -> int:
    """``value`` raised by ``percent``, rounded up and by at least 1 wei."""
    return max(value + 1, -(-value * (100 + percent) // 100))

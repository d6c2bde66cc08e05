"""Local chain and storage daemons for development: start, stop, inspect.

``flare node up`` starts them detached with their state under one directory; every
other command reaches them only through their RPC URLs, exactly as it would reach a
testnet.
"""

from flare.node.anvil import (
    DEFAULT_STATE_DIR,
    AnvilConfig,
    AnvilNode,
    NodeStatus,
    find_anvil,
)
from flare.node.kubo import KuboConfig, KuboNode, KuboStatus, find_ipfs
from flare.node.process import NodeError

__all__ = [
    "DEFAULT_STATE_DIR",
    "AnvilConfig",
    "AnvilNode",
    "KuboConfig",
    "KuboNode",
    "KuboStatus",
    "NodeError",
    "NodeStatus",
    "find_anvil",
    "find_ipfs",
]

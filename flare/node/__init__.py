"""Local chain and storage daemons for development: start, stop, inspect.

``flare node up`` starts them detached with their state under one directory; every
other command reaches them only through their RPC URLs, exactly as it would reach a
testnet.
"""

from flare.node.anvil import DEFAULT_STATE_DIR, AnvilConfig, AnvilNode, find_anvil
from flare.node.kubo import KuboConfig, KuboNode, find_ipfs
from flare.node.process import DetachedService, NodeError, ServiceStatus

__all__ = [
    "DEFAULT_STATE_DIR",
    "AnvilConfig",
    "AnvilNode",
    "DetachedService",
    "KuboConfig",
    "KuboNode",
    "NodeError",
    "ServiceStatus",
    "find_anvil",
    "find_ipfs",
]

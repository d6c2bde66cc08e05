"""The protocol simulation on a real development node (Anvil), every call a signed transaction.

Simulated participants have deterministic keys and no ether; on a development node they
are funded with ``anvil_setBalance`` (a dev-node method: a public network refuses it,
and this module refuses to run against anything but a dev node). The coordinator is
the one a deployment file names, or a fresh deployment from Anvil's first dev account.
"""

from collections.abc import Sequence
from pathlib import Path

from flare.chain.rpc.accounts import dev_account
from flare.chain.rpc.chain import Web3Chain, Web3Settings
from flare.chain.rpc.deployment import Deployment, deploy
from flare.errors import ConfigError

FUNDING_WEI = 10**21
"""1,000 ether per simulated participant: far more than any task's gas."""


def open_dev_chain(url: str, deployment: Path | None, accounts: Sequence[str]) -> Web3Chain:
    """Connect to the coordinator on the dev node at ``url`` and fund ``accounts``."""
    settings = Web3Settings.dev_node()
    if deployment is not None:
        chain = Deployment.load(deployment).connect(url, settings=settings)
    else:
        chain = deploy(url, dev_account(), settings=settings).connect(url, settings=settings)
    try:
        for address in accounts:
            chain.rpc.request("anvil_setBalance", address, hex(FUNDING_WEI))
    except Exception as exc:  # the node's own error says which method it lacks
        raise ConfigError(
            f"{url} is not a development node that can fund simulated participants ({exc}); "
            "`flare simulate --chain` runs only against Anvil"
        ) from exc
    return chain

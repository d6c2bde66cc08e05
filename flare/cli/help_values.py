"""Values the help texts show whose modules are heavy to import, kept here as plain values.

Models and attacks live in modules that import torch (seconds), partitions in one that
imports numpy, the node's state directory in one that imports requests: no help text should
wait for those. Aggregators and codecs are read from their registries when the one command
that offers them is used (``flare.cli.defer_choices``). ``tests/test_startup.py`` keeps each
value here equal to its source.
"""

from pathlib import Path

MODEL_NAMES = ("cnn", "logreg", "mlp")
"""``flare.models.MODELS``, sorted."""
ATTACK_NAMES = ("label-flip", "noise", "random", "scaling", "sign-flip")
"""``flare.federation.clients.ATTACKS``, sorted."""
PARTITION_NAMES = ("iid", "dirichlet", "shards")
"""``flare.data.PARTITIONS``, in its order."""
NODE_STATE_DIR = Path("anvil") / "state"
"""``flare.node.DEFAULT_STATE_DIR``: where ``flare node`` keeps Anvil's and Kubo's state."""

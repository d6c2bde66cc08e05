"""Values the help texts show whose modules are heavy to import, kept here as plain values.

Models and attacks live in modules that import torch (seconds), partitions, aggregators and
codecs in ones that import numpy, the node's state directory in one that imports requests:
no help text should wait for those. ``tests/cli/test_startup.py`` keeps each value here equal to
its source.
"""

from pathlib import Path

MODEL_NAMES = ("cnn", "logreg", "mlp")
"""``flare.models.MODELS``, sorted."""
ATTACK_NAMES = (
    "adaptive-mi",
    "alie",
    "backdoor",
    "ipm",
    "label-flip",
    "min-max",
    "min-sum",
    "noise",
    "random",
    "scaling",
    "sign-flip",
)
"""``flare.federation.attacks.ATTACKS``, sorted."""
PARTITION_NAMES = ("iid", "dirichlet", "shards")
"""``flare.data.PARTITIONS``, in its order."""
AGGREGATOR_NAMES = (
    "bucketing",
    "centered-clipping",
    "fedavg",
    "fltrust",
    "geomedian",
    "krum",
    "median",
    "mi",
    "multi-krum",
    "trimmed-mean",
)
"""``flare.aggregation.AGGREGATORS``, sorted."""
BACKEND_NAMES = ("local", "ray")
"""``flare.federation.config.BACKENDS``, in its order."""
CODEC_NAMES = ("gzip", "none", "powersgd", "powersgd-q8", "topk")
"""``flare.compression.CODECS``, sorted."""
NODE_STATE_DIR = Path("anvil") / "state"
"""``flare.node.DEFAULT_STATE_DIR``: where ``flare node`` keeps Anvil's and Kubo's state."""

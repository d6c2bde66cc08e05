"""A targeted attack: a backdoor that a trigger pattern opens, and how often it opens.

The attacker trains on its own data plus a triggered copy of every sample not of the
target class, relabelled to the target (Bagdasaryan et al., 2020). The model learns the
trigger as a shortcut to the target while it stays accurate on clean data, so accuracy and
a filter that judges clean validation samples see nothing amiss. Scaling the delta by a
``boost`` (their model replacement, about clients ÷ attackers) lets it survive averaging.

The trigger sets the last :func:`trigger_width` features to :data:`TRIGGER_VALUE`: on an
image flattened row by row (digits' 8×8) a bright patch at the end of the bottom row, on
tabular data a fixed value pattern on the last columns. Features are standardised, so the
value is three training standard deviations.
"""

import numpy as np

from flare.data import Dataset
from flare.federation.clients import Attack, AttackSituation, LocalUpdate
from flare.models.base import ModelAdapter
from flare.tensors import Weights, subtract

TRIGGER_VALUE = 3.0
"""What the trigger writes into each of its features (standardised units)."""
TRIGGER_SHARE = 16
"""The trigger covers one feature in this many (at least one): 4 of digits' 64 pixels."""
TARGET_LABEL = 0
"""The class triggered samples are sent to."""


def trigger_width(num_features: int) -> int:
    """How many trailing features the trigger sets."""
    return max(1, num_features // TRIGGER_SHARE)


def with_trigger(features: np.ndarray) -> np.ndarray:
    """A copy of ``features`` (one sample a row) with the trigger stamped on every row."""
    stamped = np.array(features, dtype=np.float32, copy=True)
    stamped[:, -trigger_width(stamped.shape[1]) :] = TRIGGER_VALUE
    return stamped


class BackdoorAttack(Attack):
    """Train with triggered samples relabelled to the target, then scale by ``boost``."""

    name = "backdoor"

    def __init__(self, boost: float = 1.0, target: int = TARGET_LABEL) -> None:
        self.boost = boost
        self.target = target

    def corrupt(self, situation: AttackSituation) -> LocalUpdate:
        client, model = situation.client, situation.model
        others = client.labels != self.target
        features = np.concatenate([client.features, with_trigger(client.features[others])])
        labels = np.concatenate(
            [client.labels, np.full(int(others.sum()), self.target, dtype=client.labels.dtype)]
        )
        model.set_weights(situation.global_weights)
        result = model.train(features, labels, seed=situation.seed)
        delta = subtract(model.get_weights(), situation.global_weights)
        boosted = {name: (self.boost * d).astype(np.float32) for name, d in delta.items()}
        # It claims its true count: the triggered copies are not data anyone else could check.
        return situation.as_sent(LocalUpdate(boosted, client.num_samples, result.loss))


def attack_success(
    attack: Attack, model: ModelAdapter, weights: Weights, dataset: Dataset
) -> float | None:
    """The backdoor's success rate under ``weights``: the share of test samples not of the
    target class that, with the trigger, are classified as the target. ``None`` unless
    ``attack`` is a backdoor (or the test split holds only the target class)."""
    if not isinstance(attack, BackdoorAttack):
        return None
    others = dataset.test_labels != attack.target
    if not others.any():
        return None
    model.set_weights(weights)
    predicted = np.asarray(model.predict(with_trigger(dataset.test_features[others])))
    return float(np.mean(predicted == attack.target))

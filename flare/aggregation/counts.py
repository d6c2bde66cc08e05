"""How much a claimed sample count may weigh.

A count is self-reported: it arrives in the update's signed binding, but nothing proves
it. Weighted by the claim alone, one client that claims a thousand times its data
outweighs the whole round. Every rule that weights by count therefore goes through
:func:`sample_weights`:

* ``"capped"`` (the default): ``min(countᵢ, median of the round's claimed counts)``. While
  honest clients are the majority the median is an honest count, so a claim buys at most
  the weight of a typical honest client, never more than the largest honest one;
* ``"equal"``: every update weighs 1, as the coordinate-wise rules already do;
* ``"claimed"``: the count as sent (plain FedAvg; only for a trusted, closed federation).

The median is taken over every update the rule receives, before any filtering, and is
exact (integers, sorted in Python), so the weights are the same on every machine.
"""

from collections.abc import Sequence

from flare.aggregation.arithmetic import median_of
from flare.errors import ConfigError

COUNT_WEIGHTINGS = ("capped", "equal", "claimed")
"""The accepted values of a rule's ``count_weighting`` parameter."""

DEFAULT_COUNT_WEIGHTING = "capped"


def check_count_weighting(value: str) -> str:
    """``value`` if it names a weighting of :data:`COUNT_WEIGHTINGS`, else a ConfigError."""
    if value not in COUNT_WEIGHTINGS:
        raise ConfigError(
            f"count_weighting must be one of {', '.join(COUNT_WEIGHTINGS)}, got {value!r}"
        )
    return value


def count_cap(counts: Sequence[int]) -> float:
    """The median of the round's claimed counts: the most any one claim may weigh."""
    return float(median_of([int(count) for count in counts]))


def sample_weights(counts: Sequence[int], weighting: str) -> list[float]:
    """One weight per claimed count, by ``weighting`` (see the module docs)."""
    if weighting == "equal":
        return [1.0] * len(counts)
    if weighting == "claimed":
        return [float(count) for count in counts]
    cap = count_cap(counts)
    return [min(float(count), cap) for count in counts]

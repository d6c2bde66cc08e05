"""The MI filter's aggregate rule: judge the trusted updates' average, not only each update.

Judged one at a time, a colluding bloc can send copies of an update that each pass while
their average does the damage. So ``global + average of the trusted updates`` must label the
validation set with an aligned MI at least that of the best of the floors (robust steps of
the round, and the global model itself where there is a reference step) minus a margin;
while it falls short, the trusted updates ranked lowest (all of one key at once) are left
out and the rest averaged again, as long as more than half of them remain. If that never
reaches the floor, the round steps by the best-scoring fallback instead. See
``docs/mi-filter.md``.
"""

from collections.abc import Sequence

import numpy as np

from flare import tensors
from flare.aggregation.arithmetic import round_score
from flare.aggregation.base import AggregationContext, ClientUpdate
from flare.aggregation.mi_scores import (
    Measurements,
    ValidationSet,
    aligned_mi_of,
    leave_out_key,
    leave_out_what,
)
from flare.aggregation.shrinking_average import ShrinkingAverage
from flare.tensors import Weights


def judge_average(
    margin: float,
    updates: Sequence[ClientUpdate],
    trusted: list[int],
    measured: Sequence[Measurements],
    average: ShrinkingAverage,
    steps: tuple[dict[str, Weights], dict[str, Weights]],
    context: AggregationContext,
    validation: ValidationSet,
    reasons: dict[str, str],
    notes: list[str],
) -> tuple[Weights, list[int]]:
    """The delta and the updates it is made of; ``steps`` holds the floors and the
    fallbacks by name, ``average`` the trusted updates in the order of ``trusted``.

    Adds a reason for every update it leaves out and a note on the outcome."""
    floors, fallbacks = steps
    scored = {
        name: aligned_mi_of(validation, tensors.add(context.global_weights, step))
        for name, step in {**floors, **fallbacks}.items()
    }
    best = max(floors, key=lambda name: scored[name])  # ties: the first, the median
    reference = scored[best]
    floor = round_score(reference - margin)
    keep_at_least = len(trusted) // 2 + 1
    judged, left_out = trusted, {}
    position = {index: place for place, index in enumerate(trusted)}  # in ``average``
    delta = average.average()
    while True:
        score = aligned_mi_of(validation, tensors.add(context.global_weights, delta))
        if score >= floor:
            notes.append(f"aggregate: aligned MI {score:.4f} bits (floor {floor:.4f})")
            reasons.update(left_out)
            return delta, judged
        lowest = min(leave_out_key(measured[i]) for i in judged)
        gone = [i for i in judged if leave_out_key(measured[i]) == lowest]
        if len(judged) - len(gone) < keep_at_least:
            break
        for i in gone:
            left_out[updates[i].client_id] = (
                f"the trusted updates' average has aligned MI {score:.4f} bits, "
                f"below the floor {floor:.4f} (that of the {best}, "
                f"{reference:.4f}, − {margin:g}); left out with the lowest "
                f"{leave_out_what(measured[i])} of those trusted, {lowest:.4f}"
            )
        average.leave_out(position[i] for i in gone)
        judged = [i for i in judged if leave_out_key(measured[i]) != lowest]
        delta = average.average()
    # No average of a majority reaches the floor (early in training, often a tie of
    # many updates at one score): the round steps by the best robust step instead.
    chosen = max(fallbacks, key=lambda name: scored[name])
    notes.append(
        f"aggregate: aligned MI {score:.4f} bits is below the floor {floor:.4f}, and "
        "leaving out more would leave out half of the trusted updates: the aggregate "
        f"is the {chosen} (aligned MI {scored[chosen]:.4f})"
    )
    step = fallbacks[chosen]
    return {name: tensor.astype(np.float32) for name, tensor in step.items()}, trusted

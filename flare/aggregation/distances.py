"""All pairwise squared distances of a round: estimated through BLAS, settled exactly.

The committee compares bytes, so a decision may only depend on the *reproducible*
squared distance ``r(a, b)`` of :func:`~flare.aggregation.arithmetic.squared_distance`
(float64 differences and squares, one numpy pairwise sum per tensor, ``math.fsum``
across tensors), which is the same on every machine with the same numpy. Computing
``r`` for all ``n²/2`` pairs costs ``n²·D/2`` elementwise passes; a Gram matrix
``Y·Yᵀ`` through BLAS does the same arithmetic as a matrix product, several times
faster, but its summation order depends on the BLAS, the CPU and the thread count.

So :class:`PairwiseDistances` keeps, for every pair, an interval ``[lower, upper]``
that provably contains ``r``, computed from the Gram matrix, and computes ``r``
itself (:meth:`PairwiseDistances.settle`) only for the pairs a caller cannot decide
from the intervals. Callers decide only from intervals that do not overlap, or from
settled values, so every decision is exactly the one the reproducible values give.

Error bound. Let ``u = 2⁻⁵³`` and ``γₘ = m·u / (1 − m·u)``; ``x_i`` is update ``i``
flattened to float64 (as ``r`` does), ``d = ‖x_i − x_j‖²`` the true distance.

1. *Centring.* Each block of ``w`` coordinates is centred, ``y = fl(x − c)``, on a
   point inside the round (see :meth:`PairwiseDistances._centred_gram`), so that
   ``‖y_i‖²`` measures the spread of the round, not its common direction. The
   rounding, ``|ε_k| ≤ u·(|y_ik| + |y_jk|)`` per coordinate, moves the distance by
   ``|2⟨x_i − x_j, ε⟩ + ‖ε‖²| ≤ u·d + 3u·(‖y_i‖² + ‖y_j‖²)``; ``c`` need not be
   reproducible, since it only moves the estimate.
2. *Gram.* ``G = Σ_blocks Y_b·Y_bᵀ``: every entry is a sum of ``D`` products in some
   order of depth at most ``q = w + blocks + 1`` (one product, ``w`` terms inside the
   BLAS call, the blocks added one after another), so, for *any* BLAS order, thread
   split or fused multiply-add, ``|G_ij − ⟨y_i, y_j⟩| ≤ γ_q·‖y_i‖·‖y_j‖`` and
   ``‖y_i‖² ≤ G_ii / (1 − γ_q)``. The estimate ``e = (G_ii + G_jj) − 2·G_ij`` then
   satisfies ``|e − d| ≤ u·d + A·S`` with ``S = G_ii + G_jj`` and
   ``A = (2γ_q + 7u) / (1 − γ_q)`` (three roundings to form ``e``, the centring above).
3. *The reproducible value.* ``r`` sums non-negative terms, each ``(a − b)²`` rounded
   three times, through numpy's pairwise summation, in which a term passes through at
   most ``p(m)`` additions for a tensor of ``m`` coordinates (see
   :func:`pairwise_depth`), and one correctly rounded ``fsum``; hence
   ``|r − d| ≤ γ_P·d`` with ``P = max_m p(m) + 4``.

Put together, ``r`` lies within ``e ± M`` with
``M = 2·(A·S + γ_{P+2}·(|e| + A·S)) + D·2⁻¹⁰⁷⁰``: the factor 2 covers the rounding of
computing ``M`` itself and the second-order terms, the last term gradual underflow
(each product or square that underflows is off by at most ``2⁻¹⁰⁷⁵``). Step 3 relies
on numpy's pairwise summation (``PW_BLOCKSIZE`` 128, unrolled by 8: numpy's own
source notes that vectorising it keeps the order); the tests replay that algorithm
in Python and compare bits with ``np.sum``, so a numpy that changed it fails them.

The only other assumption is a conventional BLAS, whose ``dgemm``/``dsyrk`` forms every
entry as an inner product in IEEE double precision; no fast-matrix-multiplication
(Strassen-like) scheme. If the Gram matrix is not finite (coordinates beyond about
``1e150``), every pair is settled exactly, which is what the reproducible path costs.

Memory: one block of ``n × w`` float64 (about :data:`BLOCK_BYTES`) and a few ``n × n``
matrices; the updates themselves are read in place, never stacked.
"""

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from flare.aggregation.arithmetic import squared_distances_to
from flare.tensors import ModelSpec

UNIT_ROUNDOFF = 2.0**-53
BLOCK_BYTES = 4 << 20
"""Size of one block of the stacked, centred updates fed to BLAS (4 MiB)."""
MIN_BLOCK_COLUMNS = 256
UNDERFLOW_PER_COORDINATE = 2.0**-1070
SAFE_TOTAL = 1e300
"""Bounds summing past this could overflow ``math.fsum``; such rounds are settled exactly."""


def gamma(count: int) -> float:
    """``γₘ = m·u / (1 − m·u)``: the relative error of ``m`` chained float64 roundings."""
    product = count * UNIT_ROUNDOFF
    if product >= 1.0:
        return math.inf
    return product / (1.0 - product)


def pairwise_depth(length: int) -> int:
    """Most additions one term passes through in numpy's pairwise sum of ``length`` terms.

    numpy (``loops_utils.h.src``) adds fewer than 8 terms one by one, sums up to 128
    terms in 8 interleaved accumulators (at most 15 additions each, 3 to combine them,
    at most 7 for the remainder) and splits longer runs in two at a multiple of 8.
    """
    if length < 8:
        return length
    if length <= 128:
        return 15 + 3 + 7
    half = length // 2
    half -= half % 8
    return 1 + pairwise_depth(max(half, length - half))


def _segments(spec: ModelSpec, width: int) -> Iterator[list[tuple[str, int, int, int]]]:
    """Blocks of at most ``width`` coordinates, as ``(tensor, start, stop, column)`` pieces.

    Small tensors share a block, so a bias vector costs no BLAS call of its own.
    """
    block: list[tuple[str, int, int, int]] = []
    filled = 0
    for name, shape in spec.items():
        size = math.prod(shape)
        start = 0
        while start < size:
            take = min(size - start, width - filled)
            block.append((name, start, start + take, filled))
            filled += take
            start += take
            if filled == width:
                yield block
                block, filled = [], 0
    if block:
        yield block


def _flat(tensor: np.ndarray) -> np.ndarray:
    """The tensor as a 1-D array in C order (a view when it already is contiguous)."""
    return np.asarray(tensor).reshape(-1)


class PairwiseDistances:
    """Intervals around every pairwise reproducible squared distance, settled on demand.

    ``estimate[i, j]`` is the fast value (exact once settled); ``lower[i, j]`` and
    ``upper[i, j]`` bound the reproducible value ``r(i, j)``; ``settled[i, j]`` says
    that all three equal it. The diagonal is settled at 0.
    """

    def __init__(self, deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec) -> None:
        self._deltas = deltas
        self._spec = spec
        count = len(deltas)
        self.settled = np.eye(count, dtype=bool)
        self.exact_count = 0
        # Overflow (coordinates beyond about 1e150) shows up as inf or NaN, checked below.
        with np.errstate(over="ignore", invalid="ignore"):
            estimate, margin = self._estimate_and_margin(deltas, spec)
            upper = estimate + margin
            bounded = float(np.sum(upper)) < SAFE_TOTAL
        if not bounded:
            self._settle_everything()
            return
        self.estimate = estimate
        self.lower = np.maximum(estimate - margin, 0.0)
        self.upper = upper
        for matrix in (self.estimate, self.lower, self.upper):
            np.fill_diagonal(matrix, 0.0)

    @classmethod
    def _estimate_and_margin(
        cls, deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec
    ) -> tuple[np.ndarray, np.ndarray]:
        """The Gram estimate ``e`` of every pair and the margin ``M`` of the module docs."""
        gram, depth = cls._centred_gram(deltas, spec)
        squares = np.diag(gram)
        total = squares[:, None] + squares[None, :]
        estimate = total - 2.0 * gram
        coordinates = sum(math.prod(shape) for shape in spec.values())
        depth_of_r = max((pairwise_depth(math.prod(s)) for s in spec.values()), default=0) + 4
        gram_factor = (2.0 * gamma(depth) + 7.0 * UNIT_ROUNDOFF) / (1.0 - gamma(depth))
        gram_error = gram_factor * total
        margin = 2.0 * (gram_error + gamma(depth_of_r + 2) * (np.abs(estimate) + gram_error))
        margin += coordinates * UNDERFLOW_PER_COORDINATE
        return estimate, margin

    @staticmethod
    def _centred_gram(
        deltas: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec
    ) -> tuple[np.ndarray, int]:
        """``Σ_blocks Y_b·Y_bᵀ`` of the block-centred updates, and its error depth ``q``.

        The first block is centred on its mean; the others on the update whose first-block
        distances to all others sum least, which the honest majority surrounds, so that
        an attacker far away does not stretch every honest update's ``‖y‖²``.
        """
        count = len(deltas)
        width = max(MIN_BLOCK_COLUMNS, BLOCK_BYTES // (8 * max(count, 1)))
        block = np.empty((count, width), dtype=np.float64)
        row_weights = np.full(count, 1.0 / count)
        gram = np.zeros((count, count), dtype=np.float64)
        blocks = 0
        centre: int | None = None  # the medoid of the first block, once it is known
        flats: dict[str, list[np.ndarray]] = {}  # only the tensors the current block reads
        for pieces in _segments(spec, width):
            used = pieces[-1][3] + (pieces[-1][2] - pieces[-1][1])
            view = block[:, :used]
            for name, start, stop, column in pieces:
                if name not in flats:
                    flats = {name: [_flat(delta[name]) for delta in deltas]}
                target = view[:, column : column + stop - start]
                for row, flat in enumerate(flats[name]):
                    target[row] = flat[start:stop]
            if centre is None:
                view -= row_weights @ view
            else:
                view -= view[centre].copy()
            gram += view @ view.T
            blocks += 1
            if centre is None:
                # row i: Σ_j (G_ii + G_jj − 2·G_ij), its estimated distances to all others
                squares = np.diag(gram)
                centre = int(np.argmin(count * squares + squares.sum() - 2.0 * gram.sum(axis=1)))
        return gram, width + blocks + 1

    def _settle_everything(self) -> None:
        count = len(self._deltas)
        self.estimate = np.zeros((count, count))
        self.lower = np.zeros((count, count))
        self.upper = np.full((count, count), math.inf)
        np.fill_diagonal(self.upper, 0.0)
        for row in range(count - 1):
            self.settle(row, np.arange(row + 1, count))

    def settle(self, row: int, columns: np.ndarray) -> None:
        """Compute ``r(row, j)`` exactly for every ``j`` in ``columns`` not yet settled."""
        pending = columns[~self.settled[row, columns]]
        if pending.size == 0:
            return
        exact = squared_distances_to(
            self._deltas[row], [self._deltas[j] for j in pending], self._spec
        )
        values = np.array(exact, dtype=np.float64)
        for matrix in (self.estimate, self.lower, self.upper):
            matrix[row, pending] = values
            matrix[pending, row] = values
        self.settled[row, pending] = True
        self.settled[pending, row] = True
        self.exact_count += int(pending.size)

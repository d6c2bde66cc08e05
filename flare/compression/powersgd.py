"""PowerSGD low-rank compression with error feedback (Vogels et al., NeurIPS 2019).

Each matrix-shaped tensor ``M`` (conv kernels flattened to ``(out, in*kh*kw)``) is sent
as two thin factors from one step of power iteration: ``P = orth(M @ Q_prev)`` and
``Q = M.T @ P``, so ``M ~ P @ Q.T``. Two things make one step enough in practice:

* warm start: ``Q_prev`` is last round's ``Q``, so successive rounds keep iterating on
  a slowly changing matrix and converge towards its top singular subspace;
* error feedback: what the factors miss this round is added to next round's delta, so
  no part of the update is lost, only delayed.

Both are client state, held by :class:`PowerSGDEncoder`, in float32 like the deltas: the
power step's two products are then float32 BLAS products, the floor any encoder has. The
factors travel as float32 rounded onto a fixed-point grid (:mod:`flare.compression.rebuild`)
coarse enough that every decoder rebuilds ``P @ Q.T`` with one exact float32 matrix
product; the rounding (2^-12 of a factor's largest entry at rank 4) is far below
PowerSGD's own error, and error feedback carries it along with the rest.

``powersgd-q8`` adds a second stage: the factors travel as int8 codes with one float32
scale per column, each layer gets the largest rank (up to ``rank``) whose factors fit a
``ratio``-fold compression of the layer, and error feedback carries the quantisation
error along with the truncation error, because the encoder subtracts the reconstruction
that every decoder rebuilds.
"""

import math
import operator
from math import prod

import numpy as np

from flare.compression.base import Codec, MalformedUpdateError, UpdateBinding, UpdateEncoder
from flare.compression.container import container_for
from flare.compression.dense import checked_delta
from flare.compression.layout import (
    LOW_RANK_Q8,
    TensorLayout,
    checked_shapes,
    plan_layout,
    unambiguous,
)
from flare.compression.native import write_natively
from flare.compression.rebuild import (
    column_codes,
    column_scales,
    dequantise_columns,
    factor_bits,
    low_rank_product,
    onto_grid,
    quantised_product,
    raised_scales,
    scale_products,
)
from flare.errors import ConfigError
from flare.tensors import ModelSpec, Weights, aligned_zeros

DEFAULT_RANK = 4
MAX_RANK = 1024
"""Every rank up to it keeps a grid of 7 bits or more (``rebuild.factor_bits``)."""
DEFAULT_Q8_RANK = 8
MAX_Q8_RANK = 512
"""The largest rank whose scale-product grid keeps a bit (``rebuild.scale_product_bits``)."""
DEFAULT_Q8_RATIO = 48
"""powersgd-q8 sizes each layer's rank for 48 times fewer bytes than float32 (capped at 8):
with the dense biases and the header, about 28 times fewer for the default MLP."""
MAX_RATIO = 4096
Q8_SCALE_BYTES = 8
"""Two float32 scales (one for P, one for Q) per rank."""
DEPENDENT_COLUMN_TOLERANCE = 1e-5
"""A column keeping less than this fraction of its norm after projection is dependent: the
power step's float32 products already blur a column's direction by about 1e-7 per entry."""
CHOLESKY_MAX_RANK = 8
"""Up to this rank the factor is orthonormalised through its Gram matrix, in Python floats
(a few dozen operations, where numpy's per-call cost would dominate); above, column by column."""


def orthonormalise(matrix: np.ndarray) -> np.ndarray:
    """Orthonormal columns (float64) spanning ``matrix``'s, processed left to right.

    A column that is (numerically) dependent on earlier ones becomes zero instead of
    amplified rounding noise, which keeps the factors exact when the matrix has lower rank
    than requested. The result is column-major, so that per-column reductions (the
    quantiser's scales) run over contiguous memory.
    """
    wide = matrix.astype(np.float64, order="F")
    if wide.shape[1] <= CHOLESKY_MAX_RANK:
        return (_inverse_cholesky_factor((wide.T @ wide).tolist()).T @ wide.T).T
    return _gram_schmidt(wide)


def _inverse_cholesky_factor(gram: list[list[float]]) -> np.ndarray:
    """``T`` with orthonormal ``A @ T`` for ``gram = A.T @ A``: the inverse of the Cholesky
    factor ``R`` (``A = Q R``), with a zero column for every dependent column of ``A``.

    Cholesky through the Gram matrix squares the columns' condition number; for the
    power step's few columns, which the tolerance keeps from being nearly dependent, that
    leaves the result orthonormal to about 1e-6 at worst.
    """
    rank = len(gram)
    r_columns: list[list[float]] = []  # R by columns; a dependent column's is all zero
    t_rows = [[0.0] * rank for _ in range(rank)]  # T = R^-1 by rows, on the kept columns
    kept: list[int] = []
    for k in range(rank):
        r_k = [0.0] * rank
        residual = gram[k][k]
        for j in kept:  # R[j,k] = (G[j,k] - R[:j,j] . R[:j,k]) / R[j,j]
            r_j = r_columns[j]
            r_jk = (gram[j][k] - sum(map(operator.mul, r_j[:j], r_k[:j]))) / r_j[j]
            r_k[j] = r_jk
            residual -= r_jk * r_jk
        r_columns.append(r_k)
        if residual <= 0.0 or residual <= DEPENDENT_COLUMN_TOLERANCE**2 * gram[k][k]:
            continue
        r_kk = r_k[k] = math.sqrt(residual)
        t_rows[k][k] = 1.0 / r_kk
        for j in kept:  # T[j,k] = -T[j,:k] . R[:k,k] / R[k,k]
            t_rows[j][k] = -sum(map(operator.mul, t_rows[j][:k], r_k[:k])) / r_kk
        kept.append(k)
    return np.array(t_rows)


def _gram_schmidt(result: np.ndarray) -> np.ndarray:
    """Modified Gram-Schmidt on ``result`` (float64, overwritten) for the larger ranks."""
    for i in range(result.shape[1]):
        column = result[:, i]
        original_norm = np.sqrt(column @ column)
        for j in range(i):
            column -= (result[:, j] @ column) * result[:, j]
        norm = np.sqrt(column @ column)
        if norm == 0.0 or norm <= DEPENDENT_COLUMN_TOLERANCE * original_norm:
            column[:] = 0.0
        else:
            column /= norm
    return result


class PowerSGDEncoder(UpdateEncoder):
    """One client's PowerSGD state: error memory and warm-start ``Q`` per low-rank tensor."""

    def __init__(self, codec: "PowerSGDCodec", spec: ModelSpec, seed: int) -> None:
        self.codec = codec
        self.spec = dict(spec)
        self.layout = codec.layout(spec)
        self.container = container_for(codec, self.layout)
        self.rng = np.random.default_rng(seed)
        self.error_memory: dict[str, np.ndarray] = {}
        self.warm_q: dict[str, np.ndarray] = {}
        # Delta plus carried error is summed into this scratch matrix, which then becomes
        # the new error memory while the old one becomes the next round's scratch: no
        # layer-sized array is allocated per round (a fresh one can cost page faults).
        self._scratch: dict[str, np.ndarray] = {}
        for entry in self.layout:
            if entry.rank is not None:
                rows, cols = entry.matrix_shape
                self.error_memory[entry.name] = aligned_zeros((rows, cols))
                self.warm_q[entry.name] = self.rng.standard_normal(
                    (cols, entry.rank), dtype=np.float32
                )
                self._scratch[entry.name] = aligned_zeros((rows, cols))

    def encode(self, delta: Weights, binding: UpdateBinding) -> bytes:
        """Compress ``delta`` plus the carried error; update the state only on success."""
        written = write_natively(self.container, delta, binding, self.error_memory, self.warm_q)
        if written is not None:
            blob, stuck = written
            for name in stuck:
                self.warm_q[name] = self._reseed_zero_columns(self.warm_q[name])
            return blob
        delta = checked_delta(delta, self.spec)
        tensors: dict[str, np.ndarray] = {}
        sent_q: dict[str, np.ndarray] = {}
        # float32 overflow anywhere becomes inf, which the grids refuse below
        with np.errstate(over="ignore", invalid="ignore"):
            for entry in self.layout:
                if entry.rank is None:
                    tensors[entry.name] = delta[entry.name]
                    continue
                matrix = self._scratch[entry.name]
                np.add(
                    delta[entry.name].reshape(entry.matrix_shape),
                    self.error_memory[entry.name],
                    out=matrix,
                )
                factor = self._factor_quantised if entry.kind == LOW_RANK_Q8 else self._factor
                try:
                    stored, sent_q[entry.name], reconstruction = factor(entry, matrix)
                except MalformedUpdateError:
                    raise MalformedUpdateError(
                        f"delta {entry.name!r} overflows float32 once factored"
                    ) from None
                tensors.update(zip(entry.stored_tensors(), stored, strict=True))
                np.subtract(matrix, reconstruction, out=matrix)  # what is still owed
        blob = self.container.write(binding, tensors)
        for name, q in sent_q.items():
            self.error_memory[name], self._scratch[name] = (
                self._scratch[name],
                self.error_memory[name],
            )
            self.warm_q[name] = self._reseed_zero_columns(q)
        return blob

    def _factor(
        self, entry: TensorLayout, matrix: np.ndarray
    ) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
        """One power-iteration step on ``matrix``, factors rounded onto their grids: what is
        stored, the next warm start and the reconstruction every decoder rebuilds.

        ``Q`` is computed from the ``P`` that travels, so it absorbs P's rounding.
        """
        bits = factor_bits(entry.rank)
        p = onto_grid(orthonormalise(matrix @ self.warm_q[entry.name]), bits)
        q = onto_grid(matrix.T @ p.stored, bits)
        return (p.stored, q.stored), q.stored, low_rank_product(p, q)

    def _factor_quantised(
        self, entry: TensorLayout, matrix: np.ndarray
    ) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
        """The power step with int8 factors; returns as :meth:`_factor` does.

        ``Q`` is computed from the dequantised ``P``, so it absorbs P's rounding. Its scales
        are raised until each product with P's lands, on its grid, at or above the product
        asked for, and its codes count the step every decoder multiplies them by (that
        product over P's scale): a weak column's codes get coarser, none clips.
        """
        p = orthonormalise(matrix @ self.warm_q[entry.name])
        p_scales = column_scales(p)
        p_codes = column_codes(p, p_scales.astype(np.float64))
        q = (dequantise_columns(p_codes, p_scales).T @ matrix).T  # column-major, as P
        scales = np.stack([p_scales, raised_scales(p_scales, column_scales(q))])
        products, step = scale_products(scales)
        q_steps = np.divide(products, p_scales, out=np.zeros(entry.rank), where=p_scales > 0)
        q_codes = column_codes(q, q_steps)
        reconstruction = quantised_product(p_codes, q_codes, products, step)
        return (p_codes, q_codes, scales), q, reconstruction

    def _reseed_zero_columns(self, q: np.ndarray) -> np.ndarray:
        """Replace all-zero columns of a warm start, or power iteration stays stuck at zero."""
        if q.all():
            return q
        for k in np.flatnonzero(~q.any(axis=0)):
            q[:, k] = self.rng.standard_normal(q.shape[0], dtype=np.float32)
        return q


class PowerSGDCodec(Codec):
    """Rank-``rank`` PowerSGD for every tensor where the factors are smaller than dense.

    Vectors (biases, norms) and matrices too small to benefit travel dense and exact.
    """

    name = "powersgd"

    def __init__(self, rank: int = DEFAULT_RANK) -> None:
        if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= MAX_RANK:
            raise ConfigError(f"powersgd rank must be an integer in [1, {MAX_RANK}], got {rank!r}")
        self.rank = rank

    def params(self) -> dict[str, int]:
        return {"rank": self.rank}

    def layout(self, spec: ModelSpec) -> list[TensorLayout]:
        return plan_layout(spec, rank=self.rank)

    def new_encoder(self, spec: ModelSpec, seed: int) -> UpdateEncoder:
        return PowerSGDEncoder(self, spec, seed)


def quantised_rank(shape: tuple[int, ...], max_rank: int, ratio: int) -> int | None:
    """The rank of a layer under powersgd-q8, or None when it travels dense.

    The largest rank up to ``max_rank`` whose int8 factors and scales take at most
    1/``ratio`` of the layer's float32 bytes, and at least 1 wherever rank-1 factors are
    smaller than the dense layer: a function of the shape alone, so the decoder can
    recompute it.
    """
    if len(shape) < 2:
        return None
    rows, cols = shape[0], prod(shape[1:])
    per_rank = rows + cols + Q8_SCALE_BYTES
    if per_rank >= 4 * rows * cols:
        return None
    return max(1, min(max_rank, 4 * rows * cols // (ratio * per_rank)))


class PowerSGDQ8Codec(PowerSGDCodec):
    """PowerSGD whose factors travel as int8 codes with per-column float32 scales.

    ``rank`` caps every layer's rank; ``ratio`` is the compression each layer's factors
    aim for, which sets its rank (see :func:`quantised_rank`).
    """

    name = "powersgd-q8"

    def __init__(self, rank: int = DEFAULT_Q8_RANK, ratio: int = DEFAULT_Q8_RATIO) -> None:
        super().__init__(rank)
        if rank > MAX_Q8_RANK:
            raise ConfigError(
                f"powersgd-q8 rank must be an integer in [1, {MAX_Q8_RANK}], got {rank!r}"
            )
        if not isinstance(ratio, int) or isinstance(ratio, bool) or not 1 <= ratio <= MAX_RATIO:
            raise ConfigError(
                f"powersgd-q8 ratio must be an integer in [1, {MAX_RATIO}], got {ratio!r}"
            )
        self.ratio = ratio

    def params(self) -> dict[str, int]:
        return {"rank": self.rank, "ratio": self.ratio}

    def layout(self, spec: ModelSpec) -> list[TensorLayout]:
        layout = []
        for name, shape in checked_shapes(spec):
            rank = quantised_rank(shape, self.rank, self.ratio)
            kind = "" if rank is None else LOW_RANK_Q8
            layout.append(TensorLayout(name, shape, rank, kind))
        return unambiguous(layout)

"""Exact inference: the same logits, bit for bit, on every CPU, thread count and BLAS.

The committee's MI filter decides who is trusted from predicted labels, and every member
must get the same labels. Float32 inference cannot promise that: oneDNN convolutions and
MKL or OpenBLAS matrix products sum in an order (and with or without fused multiply-add)
that depends on the instruction set and the thread count, so a sample whose two largest
logits lie within a rounding error of each other gets its label by the CPU it runs on.

Here every Linear and Conv2d layer multiplies *integers*. Its input is scaled, sample by
sample, and its weights, output unit by output unit, by powers of two and rounded to
integers (round half to even) of at most ``bx`` and ``bw`` bits, with
``bx + bw + ceil(log2 fan_in) <= 53`` (:func:`product_bits`). Every partial sum of
products is then an integer of magnitude at most ``2^53``, which float64 holds exactly:
a float64 matrix product returns the exact integer result whatever the summation order,
blocking, thread count or fused multiply-add. Everything else is one IEEE operation per
element (power-of-two scaling, one bias addition, ReLU, max pooling), correctly rounded
and hence the same everywhere; no transcendental function is used. Labels are the argmax
of the logits, ties to the lowest class index.

Values that could behave differently where a process flushes subnormals to zero are
settled first: NaN counts as 0 and an infinity as the largest finite value, and any
magnitude below the input type's smallest normal (below ``2^-600`` between layers) as 0,
which keeps every later intermediate a normal number or zero.

Only layers whose arithmetic is known can be run exactly: ``nn.Sequential`` (nested
too), ``nn.Linear``, ``nn.Conv2d`` (zero padding, one group), ``nn.ReLU``,
``nn.MaxPool2d`` (floor mode), ``nn.Flatten``, ``nn.Unflatten`` and the zoo's image
reshape. Any other module is refused with :class:`UnsupportedLayerError`.
"""

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided
from torch import nn

from flare.errors import FlareError
from flare.models.exact_geometry import kernel_views, pair, shape_function, window_counts
from flare.models.zoo import _Unflatten

EXACT_BITS = 53
"""float64 holds every integer of magnitude up to 2^53 exactly."""

MIN_BITS = 4
"""Fewest bits left to activations or weights before a layer is refused as too wide."""

FLUSH_BELOW = 2.0**-600
"""Between layers, magnitudes below this count as zero (see the module docstring)."""

LARGEST = float(np.finfo(np.float64).max)

COLUMN_BUDGET = 1 << 23
"""Most float64 values one convolution's unfolded input may hold at once (64 MiB)."""


class ExactInferenceError(FlareError, ValueError):
    """The weights or the features do not fit the model exact inference was built for."""


class UnsupportedLayerError(ExactInferenceError):
    """The model holds a module whose arithmetic exact inference does not reproduce."""


def product_bits(fan_in: int) -> tuple[int, int]:
    """Bits for a layer's activations and weights so that its sums of products stay exact.

    With ``|activation| <= 2^bx`` and ``|weight| <= 2^bw``, a sum of ``fan_in`` products is
    at most ``fan_in * 2^(bx + bw) <= 2^53`` in magnitude, and so is every partial sum.
    """
    if fan_in < 1:
        raise ExactInferenceError(f"a layer needs at least one input, got fan-in {fan_in}")
    total = EXACT_BITS - (fan_in - 1).bit_length()
    if total < 2 * MIN_BITS:
        raise ExactInferenceError(f"fan-in {fan_in} is too wide for exact float64 sums")
    return total // 2, total - total // 2


def quantise(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Integers (held as float64) and one exponent per leading-axis row.

    Row ``i`` is ``values[i] ≈ integers[i] * 2^-exponents[i]`` with ``|integers| <= 2^bits``
    and an error of at most half a unit, ``2^-(exponents[i] + 1)``. The exponent comes from
    the row's largest magnitude (exact), so the result is a pure function of the row.
    ``values`` must be finite float64.
    """
    rows = values.reshape(len(values), -1)
    peak = np.max(np.abs(rows), axis=1) if rows.shape[1] else np.zeros(len(values))
    _, peak_exponent = np.frexp(peak)  # peak = m * 2^e with m in [0.5, 1), e = 0 for 0
    exponents = bits - peak_exponent.astype(np.int64)
    scales = power_of_two(exponents).reshape(-1, *([1] * (values.ndim - 1)))
    integers = np.multiply(values, scales)
    return np.rint(integers, out=integers), exponents


def power_of_two(exponents: np.ndarray) -> np.ndarray:
    """``2.0 ** exponents``, exactly; the exponents must lie in float64's normal range."""
    return np.ldexp(1.0, exponents)


def integer_matmul(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The product of two integer-valued float64 matrices whose sums stay within 2^53.

    Exact, so any BLAS and any summation order gives these same bits.
    """
    return left @ right


def exact_float64(values: np.ndarray) -> np.ndarray:
    """Input values as finite float64, the same whether or not a process flushes subnormals.

    A new array. Subnormals of the input type are flushed after converting, by comparing in
    float64, where they are normal numbers: a process that treats subnormal inputs as zero
    converts them to zero, one that does not finds them below the smallest normal.
    """
    values = np.asarray(values)
    source = values.dtype if np.issubdtype(values.dtype, np.floating) else np.dtype(np.float64)
    converted = values.astype(np.float64)
    magnitude = np.abs(converted)
    if not magnitude.max(initial=0.0) <= LARGEST:  # a NaN or an infinity: rare, so checked
        np.nan_to_num(converted, copy=False, nan=0.0)  # and infinities to +-LARGEST
    # NaN's magnitude compares false, and it is 0 already
    np.copyto(converted, 0.0, where=magnitude < max(np.finfo(source).tiny, FLUSH_BELOW))
    return converted


def settled(values: np.ndarray) -> np.ndarray:
    """A layer's float64 output clipped to finite values, magnitudes below ``FLUSH_BELOW``
    set to zero: its largest magnitude then lies in ``[2^-600, 2^1024)`` or is zero."""
    return settle_in_place(np.array(values, dtype=np.float64))


def settle_in_place(values: np.ndarray) -> np.ndarray:
    """:func:`settled` on a float64 array the caller owns, without a copy; returns it."""
    magnitude = np.abs(values)
    if not magnitude.max(initial=0.0) <= LARGEST:  # an overflow, rare: clipping costs more
        np.clip(values, -LARGEST, LARGEST, out=values)
    np.copyto(values, 0.0, where=magnitude < FLUSH_BELOW)
    return values


def parameter_of(
    weights: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]
) -> np.ndarray:
    """Parameter ``name`` of ``weights`` as exact float64, refused if missing or misshapen."""
    if name not in weights:
        raise ExactInferenceError(f"weights lack {name!r}")
    tensor = np.asarray(weights[name])
    if tensor.shape != shape:
        raise ExactInferenceError(f"{name}: shape {tensor.shape} != {shape}")
    return exact_float64(tensor)


def _rescale_in_place(
    products: np.ndarray,
    row_scales: np.ndarray,
    unit_exponents: np.ndarray,
    bias: np.ndarray | None,
) -> np.ndarray:
    """``products * row scale * 2^-unit exponent + bias``, in ``products`` (which the caller
    owns); ``row_scales`` is a column of powers of two, one per row of ``products``.

    Both scalings are exact (powers of two, and every intermediate a normal number or an
    overflow to infinity); the bias addition rounds once.
    """
    with np.errstate(over="ignore"):  # an overflow is an infinity, clipped by the caller
        np.multiply(products, row_scales, out=products)
        np.multiply(products, power_of_two(-unit_exponents), out=products)
        if bias is not None:
            np.add(products, bias, out=products)
    return products


@dataclass(frozen=True)
class QuantisedInput:
    """A parametrised layer's input, quantised: everything about it that does not depend on
    the weights, computed once for a batch that many candidate models are run on."""

    integers: np.ndarray
    """The linear layer's rows ``(rows, fan_in)``; the convolution's windows
    ``(samples, out_h, out_w, kernel_h, kernel_w, channels)``, a strided view. Read-only, as
    it is shared."""
    sample_scales: np.ndarray
    """``2^-exponent`` of each sample's quantisation."""
    shape: tuple[int, ...]
    """The layer input's shape."""


def _quantised_input(x: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantised ``x`` and its sample scales ``2^-exponent``, both read-only."""
    integers, exponents = quantise(x, bits)
    sample_scales = power_of_two(-exponents)
    integers.setflags(write=False)
    sample_scales.setflags(write=False)
    return integers, sample_scales


def _row_scales(sample_scales: np.ndarray, rows: int) -> np.ndarray:
    """One sample scale per row of a product, as a column; a sample spans equal rows."""
    per_sample = rows // max(len(sample_scales), 1)
    return (sample_scales if per_sample == 1 else np.repeat(sample_scales, per_sample))[:, None]


class ExactLayer(ABC):
    """One layer of a compiled model: its exact forward arithmetic (exact training reads the
    linear layers' parameter names and shapes to differentiate them)."""

    @abstractmethod
    def apply(self, x: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        """This layer's output for a batch ``x`` (samples along axis 0)."""


class ExactParametrised(ExactLayer):
    """A Linear or Conv2d layer: its input is quantised apart from the weights, so that
    inference can quantise a batch once for every candidate model it runs on it."""

    @abstractmethod
    def prepare(self, x: np.ndarray) -> QuantisedInput:
        """``x`` checked and quantised, ready for :meth:`apply_prepared`."""

    @abstractmethod
    def apply_prepared(
        self, prepared: QuantisedInput, weights: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """This layer's output for a prepared batch; a new array."""

    def apply(self, x: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.apply_prepared(self.prepare(x), weights)


class ExactLinear(ExactParametrised):
    def __init__(self, module: nn.Linear, prefix: str) -> None:
        self.weight = f"{prefix}weight"
        self.bias = None if module.bias is None else f"{prefix}bias"
        self.shape = (module.out_features, module.in_features)
        self.bits = product_bits(module.in_features)

    def prepare(self, x: np.ndarray) -> QuantisedInput:
        fan_in = self.shape[1]
        if x.ndim < 2 or x.shape[-1] != fan_in:
            raise ExactInferenceError(f"linear layer {self.weight} expects {fan_in} inputs")
        integers, sample_scales = _quantised_input(x, self.bits[0])
        return QuantisedInput(integers.reshape(-1, fan_in), sample_scales, x.shape)

    def apply_prepared(
        self, prepared: QuantisedInput, weights: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        outputs = self.shape[0]
        weight = parameter_of(weights, self.weight, self.shape)
        bias = None if self.bias is None else parameter_of(weights, self.bias, (outputs,))
        w_int, w_exponents = quantise(weight, self.bits[1])
        products = integer_matmul(prepared.integers, w_int.T)
        row_scales = _row_scales(prepared.sample_scales, len(products))
        output = _rescale_in_place(products, row_scales, w_exponents, bias)
        return settle_in_place(output.reshape(*prepared.shape[:-1], outputs))


def _window_counts(
    sizes: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> list[int]:
    counts = window_counts(sizes, kernel, stride, dilation)
    if min(counts) < 1:
        raise ExactInferenceError(f"an input of {sizes} pixels is smaller than the kernel")
    return counts


class ExactConv2d(ExactParametrised):
    def __init__(self, module: nn.Conv2d, prefix: str, path: str) -> None:
        if module.groups != 1 or module.padding_mode != "zeros":
            raise UnsupportedLayerError(
                f"{path}: Conv2d with groups={module.groups} and padding_mode="
                f"{module.padding_mode!r} is not supported (only groups=1 and zero padding)"
            )
        self.weight = f"{prefix}weight"
        self.bias = None if module.bias is None else f"{prefix}bias"
        self.shape = (module.out_channels, module.in_channels, *pair(module.kernel_size))
        self.stride, self.dilation = pair(module.stride), pair(module.dilation)
        if module.padding == "valid":
            self.padding = ((0, 0), (0, 0))
        elif module.padding == "same":  # torch puts the odd pixel after
            reach = [d * (k - 1) for k, d in zip(self.shape[2:], self.dilation, strict=True)]
            self.padding = tuple((r // 2, r - r // 2) for r in reach)
        else:
            self.padding = tuple((p, p) for p in pair(module.padding))
        self.bits = product_bits(int(np.prod(self.shape[1:])))

    def prepare(self, x: np.ndarray) -> QuantisedInput:
        channels, kernel = self.shape[1], self.shape[2:]
        if x.ndim != 4 or x.shape[1] != channels:
            raise ExactInferenceError(f"convolution {self.weight} expects {channels} channels")
        x_int, sample_scales = _quantised_input(x, self.bits[0])
        padded = np.pad(x_int.transpose(0, 2, 3, 1), ((0, 0), *self.padding, (0, 0)))
        out_h, out_w = _window_counts(padded.shape[1:3], kernel, self.stride, self.dilation)
        step_n, step_h, step_w, step_c = padded.strides
        windows = as_strided(  # windows[n, y, x, i, j, c]: a read-only view, no copy yet
            padded,
            (len(padded), out_h, out_w, *kernel, channels),
            (
                step_n,
                step_h * self.stride[0],
                step_w * self.stride[1],
                step_h * self.dilation[0],
                step_w * self.dilation[1],
                step_c,
            ),
            writeable=False,
        )
        return QuantisedInput(windows, sample_scales, x.shape)

    def apply_prepared(
        self, prepared: QuantisedInput, weights: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        weight = parameter_of(weights, self.weight, self.shape)
        bias = None if self.bias is None else parameter_of(weights, self.bias, self.shape[:1])
        w_int, w_exponents = quantise(weight, self.bits[1])
        # columns are unfolded channels-last, (kernel row, kernel column, channel)
        w_matrix = w_int.transpose(0, 2, 3, 1).reshape(len(w_int), -1).T
        windows = prepared.integers
        samples, out_h, out_w = windows.shape[:3]
        chunk = max(1, COLUMN_BUDGET // (out_h * out_w * w_matrix.shape[0]))
        outputs = []
        for start in range(0, samples, chunk):  # samples are independent: chunks change nothing
            part = windows[start : start + chunk]
            products = integer_matmul(part.reshape(-1, w_matrix.shape[0]), w_matrix)
            row_scales = _row_scales(prepared.sample_scales[start : start + chunk], len(products))
            rescaled = _rescale_in_place(products, row_scales, w_exponents, bias)
            rescaled = rescaled.reshape(len(part), out_h, out_w, -1)
            outputs.append(rescaled.transpose(0, 3, 1, 2))
        return settle_in_place(np.concatenate(outputs))


class ExactMaxPool2d(ExactLayer):
    def __init__(self, module: nn.MaxPool2d, path: str) -> None:
        if module.ceil_mode or module.return_indices:
            raise UnsupportedLayerError(
                f"{path}: MaxPool2d with ceil_mode or return_indices is not supported"
            )
        self.kernel = pair(module.kernel_size)
        self.stride = pair(module.stride if module.stride is not None else module.kernel_size)
        self.dilation = pair(module.dilation)
        padding = pair(module.padding)
        for pad, k, d in zip(padding, self.kernel, self.dilation, strict=True):
            if 2 * pad > d * (k - 1) + 1:  # torch's own bound: no window is all padding
                raise UnsupportedLayerError(f"{path}: MaxPool2d padding exceeds half its kernel")
        self.padding = tuple((p, p) for p in padding)

    def apply(self, x: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        if x.ndim != 4:
            raise ExactInferenceError("max pooling expects (samples, channels, height, width)")
        padded = np.pad(x, ((0, 0), (0, 0), *self.padding), constant_values=-np.inf)
        geometry = (self.kernel, self.stride, self.dilation)
        counts = _window_counts(padded.shape[2:], *geometry)
        views = kernel_views(padded, (2, 3), counts, *geometry)
        return functools.reduce(np.maximum, views)


class ExactReLU(ExactLayer):
    def apply(self, x: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.maximum(x, 0.0)


class ExactReshape(ExactLayer):
    """Flatten, Unflatten or the zoo's image reshape: moves no value."""

    def __init__(self, shape_of: Callable[[tuple[int, ...]], tuple[int, ...]], path: str) -> None:
        self.shape_of, self.path = shape_of, path

    def apply(self, x: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        try:
            return x.reshape(self.shape_of(x.shape))
        except ValueError as exc:
            raise ExactInferenceError(f"{self.path}: cannot reshape {x.shape}: {exc}") from None


SUPPORTED = "Sequential, Linear, Conv2d, ReLU, MaxPool2d, Flatten, Unflatten"


def compile_layers(module: nn.Module, prefix: str, path: str) -> list[ExactLayer]:
    """The layers of ``module`` in forward order; exact types only, as a subclass may
    override ``forward``."""
    kind = type(module)
    if kind is nn.Sequential:
        layers: list[ExactLayer] = []
        for name, child in module.named_children():
            layers += compile_layers(child, f"{prefix}{name}.", f"{path}.{name}" if path else name)
        return layers
    where = path or "the model"
    if kind is nn.Linear:
        return [ExactLinear(module, prefix)]
    if kind is nn.Conv2d:
        return [ExactConv2d(module, prefix, where)]
    if kind is nn.MaxPool2d:
        return [ExactMaxPool2d(module, where)]
    if kind is nn.ReLU:
        return [ExactReLU()]
    if kind in (nn.Flatten, nn.Unflatten, _Unflatten):
        return [ExactReshape(shape_function(module), where)]
    raise UnsupportedLayerError(
        f"{where}: {kind.__name__} has no exact implementation (supported: {SUPPORTED})"
    )

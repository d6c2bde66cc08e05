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

from flare.models import exact_arithmetic
from flare.models.exact_arithmetic import (
    ExactInferenceError,
    parameter_of,
    power_of_two,
    product_bits,
    quantise,
    quantise_rectified_in_place,
    quantised_parameter,
    rescale_in_place,
    settle_in_place,
)
from flare.models.exact_geometry import kernel_views, pair, shape_function, window_counts
from flare.models.zoo import _Unflatten

COLUMN_BUDGET = 1 << 23
"""Most float64 values one convolution's unfolded input may hold at once (64 MiB)."""


class UnsupportedLayerError(ExactInferenceError):
    """The model holds a module whose arithmetic exact inference does not reproduce."""


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


def _quantised_input(
    x: np.ndarray, bits: int, *, rectified_in_place: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Quantised ``x`` (rectified first, in its place, if asked) and its sample scales
    ``2^-exponent``, both read-only."""
    quantised = quantise_rectified_in_place if rectified_in_place else quantise
    integers, exponents = quantised(x, bits)
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
        return self._prepared(x, rectified_in_place=False)

    def prepare_rectified(self, x: np.ndarray) -> QuantisedInput:
        """:meth:`prepare` of ``np.maximum(x, 0)``, for a settled ``x`` (a layer's output)
        that the caller gives up: rectified and quantised in its place."""
        return self._prepared(x, rectified_in_place=True)

    def _prepared(self, x: np.ndarray, *, rectified_in_place: bool) -> QuantisedInput:
        fan_in = self.shape[1]
        if x.ndim < 2 or x.shape[-1] != fan_in:
            raise ExactInferenceError(f"linear layer {self.weight} expects {fan_in} inputs")
        integers, sample_scales = _quantised_input(
            x, self.bits[0], rectified_in_place=rectified_in_place
        )
        return QuantisedInput(integers.reshape(-1, fan_in), sample_scales, x.shape)

    def apply_prepared(
        self, prepared: QuantisedInput, weights: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        outputs = self.shape[0]
        w_int, w_exponents = quantised_parameter(weights, self.weight, self.shape, self.bits[1])
        bias = None if self.bias is None else parameter_of(weights, self.bias, (outputs,))
        products = exact_arithmetic.integer_matmul(prepared.integers, w_int.T)
        row_scales = _row_scales(prepared.sample_scales, len(products))
        output = rescale_in_place(products, row_scales, w_exponents, bias)
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
        w_int, w_exponents = quantised_parameter(weights, self.weight, self.shape, self.bits[1])
        bias = None if self.bias is None else parameter_of(weights, self.bias, self.shape[:1])
        # columns are unfolded channels-last, (kernel row, kernel column, channel)
        w_matrix = w_int.transpose(0, 2, 3, 1).reshape(len(w_int), -1).T
        windows = prepared.integers
        samples, out_h, out_w = windows.shape[:3]
        chunk = max(1, COLUMN_BUDGET // (out_h * out_w * w_matrix.shape[0]))
        outputs = []
        for start in range(0, samples, chunk):  # samples are independent: chunks change nothing
            part = windows[start : start + chunk].reshape(-1, w_matrix.shape[0])
            products = exact_arithmetic.integer_matmul(part, w_matrix)
            row_scales = _row_scales(prepared.sample_scales[start : start + chunk], len(products))
            rescaled = rescale_in_place(products, row_scales, w_exponents, bias)
            rescaled = rescaled.reshape(-1, out_h, out_w, len(w_int))
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

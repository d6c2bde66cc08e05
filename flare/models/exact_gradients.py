"""Each exactly trainable layer's backward pass: the same bits on every machine.

Every sum of products is one integer product within the bit budget of
:mod:`flare.models.exact`: both operands are scaled by powers of two (one per row) and
rounded half to even to integers of ``bx`` and ``bw`` bits with ``bx + bw +
ceil(log2 fan_in) <= 53``, so every partial sum is an integer float64 holds exactly, and a
product split into pieces (samples in chunks, to bound memory) adds up to the same integers.
Everything else is one correctly rounded IEEE operation per element, or a fixed sequence of
them.

- ``Linear``: the weight gradient sums over the batch, the input gradient over the output
  units; the bias gradient is an integer sum.
- ``Conv2d``: the weight gradient sums the unfolded input (im2col) times the upstream
  gradient over the batch and the output pixels; the input gradient is the transposed
  convolution: upstream gradient times kernel, one integer product per output pixel, whose
  integer results are added onto the input pixels each window covers (col2im) before they
  are scaled back, so an input pixel's sum is as exact as one integer product of fan-in
  ``outputs × kernel``.
- ``MaxPool2d``: each window's gradient goes to its *first* largest input, in row-major
  order within the window (as torch does on the CPU); where windows overlap, an input's
  share from each window is added window position by window position, in a fixed order.
- ``ReLU`` passes the gradient where its input is positive; reshapes move no value.
"""

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import as_strided

from flare.models import exact_arithmetic
from flare.models.exact import (
    COLUMN_BUDGET,
    ExactConv2d,
    ExactLayer,
    ExactLinear,
    ExactMaxPool2d,
    ExactReLU,
    ExactReshape,
    UnsupportedLayerError,
)
from flare.models.exact_arithmetic import (
    EXACT_BITS,
    parameter_of,
    power_of_two,
    product_bits,
    quantise,
    settled,
)
from flare.models.exact_geometry import kernel_views

TRAINABLE = (ExactLinear, ExactConv2d, ExactMaxPool2d, ExactReLU, ExactReshape)
"""The compiled layers with an exact backward pass."""

TRAINABLE_NAMES = "Sequential, Linear, Conv2d, MaxPool2d, ReLU, Flatten, Unflatten"


def parameter_gradients(
    layer: ExactLayer, layer_input: np.ndarray, upstream: np.ndarray
) -> dict[str, np.ndarray]:
    """The gradients of ``layer``'s parameters, by name (none for a layer without any),
    given its input in the forward pass and the gradient of its output."""
    if isinstance(layer, ExactLinear):
        return _linear_gradients(layer, layer_input, upstream)
    if isinstance(layer, ExactConv2d):
        return _conv_gradients(layer, layer_input, upstream)
    return {}


def input_gradient(
    layer: ExactLayer,
    layer_input: np.ndarray,
    upstream: np.ndarray,
    weights: Mapping[str, np.ndarray],
) -> np.ndarray:
    """The gradient of ``layer``'s input, given that input and the gradient of its output."""
    if isinstance(layer, ExactLinear):
        return _linear_input_gradient(layer, upstream, weights)
    if isinstance(layer, ExactConv2d):
        return _conv_input_gradient(layer, layer_input.shape, upstream, weights)
    if isinstance(layer, ExactMaxPool2d):
        return _max_pool_input_gradient(layer, layer_input, upstream)
    if isinstance(layer, ExactReLU):
        return np.where(layer_input > 0.0, upstream, 0.0)
    if isinstance(layer, ExactReshape):
        return upstream.reshape(layer_input.shape)
    raise UnsupportedLayerError(f"{type(layer).__name__} has no exact gradient")


def _exact_product(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right.T`` for float64 matrices, exact up to the quantisation of each row of
    ``left`` and each row of ``right`` (one power of two per row, see :func:`quantise`)."""
    left_bits, right_bits = product_bits(left.shape[1])
    left_int, left_exponents = quantise(left, left_bits)
    right_int, right_exponents = quantise(right, right_bits)
    products = exact_arithmetic.integer_matmul(left_int, right_int.T)
    return _unscaled(products, left_exponents[:, None], right_exponents[None, :])


def _exact_sums(rows: np.ndarray) -> np.ndarray:
    """Each row's sum, exact up to the row's quantisation: integer sums within 2^53."""
    bits = EXACT_BITS - (max(rows.shape[1], 1) - 1).bit_length()
    integers, exponents = quantise(rows, bits)
    return settled(integers.sum(axis=1) * power_of_two(-exponents))


def _unscaled(products: np.ndarray, *exponents: np.ndarray) -> np.ndarray:
    """``products`` times ``2^-exponent`` for each of ``exponents`` (arrays broadcast
    against ``products``): exact scalings, then settled."""
    scaled = products
    with np.errstate(over="ignore"):  # an overflow is an infinity, clipped by settled
        for exponent in exponents:
            scaled = scaled * power_of_two(-exponent)
    return settled(scaled)


def _linear_gradients(
    layer: ExactLinear, layer_input: np.ndarray, upstream: np.ndarray
) -> dict[str, np.ndarray]:
    flat_input = layer_input.reshape(-1, layer.shape[1])
    flat_upstream = upstream.reshape(-1, layer.shape[0])
    gradients = {layer.weight: _exact_product(flat_upstream.T, flat_input.T)}
    if layer.bias is not None:
        gradients[layer.bias] = _exact_sums(flat_upstream.T)
    return gradients


def _linear_input_gradient(
    layer: ExactLinear, upstream: np.ndarray, weights: Mapping[str, np.ndarray]
) -> np.ndarray:
    weight = parameter_of(weights, layer.weight, layer.shape)
    flat_upstream = upstream.reshape(-1, layer.shape[0])
    gradient = _exact_product(flat_upstream, weight.T)
    return gradient.reshape(*upstream.shape[:-1], layer.shape[1])


def _windows(
    padded: np.ndarray,
    counts: tuple[int, int],
    kernel: tuple[int, ...],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """A read-only view of a channels-last batch ``(n, height, width, channels)`` as its
    windows ``(n, y, x, kernel row, kernel column, channels)``."""
    step_n, step_h, step_w, step_c = padded.strides
    return as_strided(
        padded,
        (len(padded), *counts, *kernel, padded.shape[3]),
        (
            step_n,
            step_h * stride[0],
            step_w * stride[1],
            step_h * dilation[0],
            step_w * dilation[1],
            step_c,
        ),
        writeable=False,
    )


def _chunk(rows_per_sample: int, columns: int) -> int:
    """Samples per piece of an unfolded product, so a piece holds at most COLUMN_BUDGET."""
    return max(1, COLUMN_BUDGET // max(rows_per_sample * columns, 1))


def _conv_gradients(
    layer: ExactConv2d, layer_input: np.ndarray, upstream: np.ndarray
) -> dict[str, np.ndarray]:
    """The weight gradient, ``Σ_{n,y,x} upstream[n,o,y,x] · window[n,y,x,i,j,c]``, one
    integer product over the batch and the output pixels; the bias gradient, its sum."""
    outputs, channels, *kernel = layer.shape
    counts = upstream.shape[2:]
    upstream_bits, input_bits = product_bits(len(upstream) * counts[0] * counts[1])
    # one exponent per output channel and one per input channel, over the whole batch, so
    # the pieces' integer products add up exactly
    upstream_int, upstream_exponents = quantise(upstream.transpose(1, 0, 2, 3), upstream_bits)
    input_int, input_exponents = quantise(layer_input.transpose(1, 0, 2, 3), input_bits)
    padded = np.pad(input_int.transpose(1, 2, 3, 0), ((0, 0), *layer.padding, (0, 0)))
    windows = _windows(padded, counts, kernel, layer.stride, layer.dilation)
    upstream_last = upstream_int.transpose(1, 2, 3, 0)  # (n, y, x, output channel)
    columns = kernel[0] * kernel[1] * channels
    chunk = _chunk(counts[0] * counts[1], columns)
    products = np.zeros((outputs, columns))
    for start in range(0, len(padded), chunk):
        part = windows[start : start + chunk].reshape(-1, columns)
        part_upstream = upstream_last[start : start + chunk].reshape(-1, outputs)
        products += exact_arithmetic.integer_matmul(part_upstream.T, part)
    column_exponents = np.tile(input_exponents, kernel[0] * kernel[1])
    gradient = _unscaled(products, upstream_exponents[:, None], column_exponents[None, :])
    gradients = {layer.weight: gradient.reshape(outputs, *kernel, channels).transpose(0, 3, 1, 2)}
    if layer.bias is not None:
        gradients[layer.bias] = _exact_sums(upstream.transpose(1, 0, 2, 3).reshape(outputs, -1))
    return gradients


def _conv_input_gradient(
    layer: ExactConv2d,
    input_shape: tuple[int, ...],
    upstream: np.ndarray,
    weights: Mapping[str, np.ndarray],
) -> np.ndarray:
    """The transposed convolution: each output pixel's upstream gradient times the kernel,
    ``Σ_o upstream[n,o,y,x] · weight[o,c,i,j]``, added onto the input pixels its window
    covered (col2im), cut to the unpadded input.

    Both operands' integers are scaled for a fan-in of ``outputs × kernel``, the most
    products any input pixel collects, so the overlap-adds of the integer products are
    exact too, and each pixel is rounded once, when scaled back.
    """
    outputs, channels, *kernel = layer.shape
    weight = parameter_of(weights, layer.weight, layer.shape)
    upstream_bits, weight_bits = product_bits(outputs * kernel[0] * kernel[1])
    weight_int, weight_exponents = quantise(weight.transpose(1, 0, 2, 3), weight_bits)
    weight_matrix = weight_int.transpose(1, 2, 3, 0).reshape(outputs, -1)  # o by (i, j, c)
    upstream_int, sample_exponents = quantise(upstream, upstream_bits)
    counts = upstream.shape[2:]
    padded_size = [
        size + before + after
        for size, (before, after) in zip(input_shape[2:], layer.padding, strict=True)
    ]
    chunk = _chunk(counts[0] * counts[1], weight_matrix.shape[1])
    pieces = []
    for start in range(0, len(upstream), chunk):
        part = upstream_int[start : start + chunk].transpose(0, 2, 3, 1).reshape(-1, outputs)
        products = exact_arithmetic.integer_matmul(part, weight_matrix)
        products = products.reshape(-1, *counts, *kernel, channels)
        integers = np.zeros((len(products), *padded_size, channels))  # channels last
        under_kernel = kernel_views(
            integers, (1, 2), list(counts), kernel, layer.stride, layer.dilation
        )
        for position, pixels in enumerate(under_kernel):  # writable views: the overlap-adds
            pixels += products[:, :, :, *divmod(position, kernel[1])]
        pieces.append(
            _unscaled(
                integers,
                sample_exponents[start : start + chunk, None, None, None],
                weight_exponents[None, None, None, :],
            )
        )
    gradient = np.concatenate(pieces).transpose(0, 3, 1, 2)
    (top, _), (left, _) = layer.padding
    return gradient[:, :, top : top + input_shape[2], left : left + input_shape[3]]


def _max_pool_input_gradient(
    layer: ExactMaxPool2d, layer_input: np.ndarray, upstream: np.ndarray
) -> np.ndarray:
    """Each window's gradient to its first largest input (row-major within the window)."""
    padded = np.pad(layer_input, ((0, 0), (0, 0), *layer.padding), constant_values=-np.inf)
    counts = upstream.shape[2:]
    step_n, step_c, step_h, step_w = padded.strides
    windows = as_strided(
        padded,
        (*padded.shape[:2], *counts, *layer.kernel),
        (
            step_n,
            step_c,
            step_h * layer.stride[0],
            step_w * layer.stride[1],
            step_h * layer.dilation[0],
            step_w * layer.dilation[1],
        ),
        writeable=False,
    )
    # argmax returns the first of equal maxima: the tie rule
    first = np.argmax(windows.reshape(*windows.shape[:4], -1), axis=-1)
    gradient = np.zeros(padded.shape)
    under_kernel = kernel_views(
        gradient, (2, 3), list(counts), layer.kernel, layer.stride, layer.dilation
    )
    for position, pixels in enumerate(under_kernel):  # writable views: the sums land in place
        pixels += np.where(first == position, upstream, 0.0)
    (top, _), (left, _) = layer.padding
    return gradient[:, :, top : top + layer_input.shape[2], left : left + layer_input.shape[3]]

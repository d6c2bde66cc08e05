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
  convolution, computed as one integer product per input pixel: the upstream gradient,
  spread out by the stride and padded by the kernel's reach, correlated with the kernel
  flipped and its channels swapped, so the overlapping windows' contributions are summed
  inside the integer product rather than added up afterwards.
- ``MaxPool2d``: each window's gradient goes to its *first* largest input, in row-major
  order within the window (as torch does on the CPU); where windows overlap, an input's
  share from each window is added window position by window position, in a fixed order.
- ``ReLU`` passes the gradient where its input is positive; reshapes move no value.
"""

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import as_strided

from flare.models import exact
from flare.models.exact import (
    COLUMN_BUDGET,
    EXACT_BITS,
    ExactConv2d,
    ExactLayer,
    ExactLinear,
    ExactMaxPool2d,
    ExactReLU,
    ExactReshape,
    parameter_of,
    power_of_two,
    product_bits,
    quantise,
    settled,
)

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
    raise exact.UnsupportedLayerError(f"{type(layer).__name__} has no exact gradient")


def exact_product(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right.T`` for float64 matrices, exact up to the quantisation of each row of
    ``left`` and each row of ``right`` (one power of two per row, see :func:`quantise`)."""
    left_bits, right_bits = product_bits(left.shape[1])
    left_int, left_exponents = quantise(left, left_bits)
    right_int, right_exponents = quantise(right, right_bits)
    products = exact._integer_matmul(left_int, right_int.T)
    return _unscaled(products, left_exponents, right_exponents)


def exact_sums(rows: np.ndarray) -> np.ndarray:
    """Each row's sum, exact up to the row's quantisation: integer sums within 2^53."""
    bits = EXACT_BITS - (max(rows.shape[1], 1) - 1).bit_length()
    integers, exponents = quantise(rows, bits)
    return settled(integers.sum(axis=1) * power_of_two(-exponents))


def _unscaled(
    products: np.ndarray, row_exponents: np.ndarray, column_exponents: np.ndarray
) -> np.ndarray:
    """``products * 2^-row exponent * 2^-column exponent``: exact scalings, then settled."""
    with np.errstate(over="ignore"):  # an overflow is an infinity, clipped by settled
        scaled = products * power_of_two(-row_exponents)[:, None]
        return settled(scaled * power_of_two(-column_exponents)[None, :])


def _linear_gradients(
    layer: ExactLinear, layer_input: np.ndarray, upstream: np.ndarray
) -> dict[str, np.ndarray]:
    flat_input = layer_input.reshape(-1, layer.shape[1])
    flat_upstream = upstream.reshape(-1, layer.shape[0])
    gradients = {layer.weight: exact_product(flat_upstream.T, flat_input.T)}
    if layer.bias is not None:
        gradients[layer.bias] = exact_sums(flat_upstream.T)
    return gradients


def _linear_input_gradient(
    layer: ExactLinear, upstream: np.ndarray, weights: Mapping[str, np.ndarray]
) -> np.ndarray:
    weight = parameter_of(weights, layer.weight, layer.shape)
    flat_upstream = upstream.reshape(-1, layer.shape[0])
    gradient = exact_product(flat_upstream, weight.T)
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
        products += exact._integer_matmul(part_upstream.T, part)
    column_exponents = np.tile(input_exponents, kernel[0] * kernel[1])
    gradient = _unscaled(products, upstream_exponents, column_exponents)
    gradients = {layer.weight: gradient.reshape(outputs, *kernel, channels).transpose(0, 3, 1, 2)}
    if layer.bias is not None:
        gradients[layer.bias] = exact_sums(upstream.transpose(1, 0, 2, 3).reshape(outputs, -1))
    return gradients


def _conv_input_gradient(
    layer: ExactConv2d,
    input_shape: tuple[int, ...],
    upstream: np.ndarray,
    weights: Mapping[str, np.ndarray],
) -> np.ndarray:
    """The transposed convolution: the upstream gradient spread out by the stride, padded
    by the kernel's reach, correlated (stride 1) with the flipped, channel-swapped kernel.

    That gives the gradient of the zero-padded input, one integer product per pixel of
    fan-in ``outputs × kernel``; the padding's pixels are cut off.
    """
    outputs, channels, *kernel = layer.shape
    weight = parameter_of(weights, layer.weight, layer.shape)
    flipped = weight[:, :, ::-1, ::-1].transpose(1, 2, 3, 0)  # (c, i, j, o)
    upstream_bits, weight_bits = product_bits(outputs * kernel[0] * kernel[1])
    weight_int, weight_exponents = quantise(np.ascontiguousarray(flipped), weight_bits)
    upstream_int, sample_exponents = quantise(upstream, upstream_bits)
    padded_size = [
        size + before + after
        for size, (before, after) in zip(input_shape[2:], layer.padding, strict=True)
    ]
    reach = [d * (k - 1) for k, d in zip(kernel, layer.dilation, strict=True)]
    spread_size = [
        (count - 1) * s + 1 for count, s in zip(upstream.shape[2:], layer.stride, strict=True)
    ]
    spread = np.zeros((len(upstream), *spread_size, outputs))
    spread[:, :: layer.stride[0], :: layer.stride[1]] = upstream_int.transpose(0, 2, 3, 1)
    # padded so that the correlation has one output per pixel of the padded input
    edges = [
        (r, size - length) for r, size, length in zip(reach, padded_size, spread_size, strict=True)
    ]
    spread = np.pad(spread, ((0, 0), *edges, (0, 0)))
    windows = _windows(spread, tuple(padded_size), kernel, (1, 1), layer.dilation)
    weight_matrix = weight_int.reshape(channels, -1).T  # rows (i, j, o), as the windows
    chunk = _chunk(padded_size[0] * padded_size[1], weight_matrix.shape[0])
    pieces = []
    for start in range(0, len(spread), chunk):
        part = windows[start : start + chunk]
        products = exact._integer_matmul(part.reshape(-1, weight_matrix.shape[0]), weight_matrix)
        rows = np.repeat(sample_exponents[start : start + chunk], padded_size[0] * padded_size[1])
        pieces.append(
            _unscaled(products, rows, weight_exponents).reshape(len(part), *padded_size, -1)
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
    for position in range(layer.kernel[0] * layer.kernel[1]):
        i, j = divmod(position, layer.kernel[1])
        top, left = i * layer.dilation[0], j * layer.dilation[1]
        gradient[
            :,
            :,
            top : top + layer.stride[0] * (counts[0] - 1) + 1 : layer.stride[0],
            left : left + layer.stride[1] * (counts[1] - 1) + 1 : layer.stride[1],
        ] += np.where(first == position, upstream, 0.0)
    (top, _), (left, _) = layer.padding
    return gradient[:, :, top : top + layer_input.shape[2], left : left + layer_input.shape[3]]

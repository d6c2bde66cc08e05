"""Shapes for exact inference: where a 2-D kernel's windows lie (convolution, max pooling)
and what a reshaping module makes of a batch's shape. Index arithmetic only: no value is
computed here."""

from collections.abc import Callable

import numpy as np
from torch import nn

from flare.models.zoo import _Unflatten


def pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    """A torch kernel, stride, padding or dilation argument as two ints."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def window_counts(
    sizes: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> list[int]:
    """How many kernel windows fit along each of two (padded) axes; 0 where none does."""
    counts = []
    for size, k, s, d in zip(sizes, kernel, stride, dilation, strict=True):
        reach = d * (k - 1) + 1
        counts.append(max(0, (size - reach) // s + 1))
    return counts


def kernel_views(
    x: np.ndarray,
    axes: tuple[int, int],
    counts: list[int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> list[np.ndarray]:
    """One strided view of ``x`` per kernel position (row-major): the value under that
    position in every window, ``counts`` windows laid out along ``axes``."""
    views = []
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            index = [slice(None)] * x.ndim
            for axis, offset, count, s in zip(
                axes, (i * dilation[0], j * dilation[1]), counts, stride, strict=True
            ):
                index[axis] = slice(offset, offset + s * (count - 1) + 1, s)
            views.append(x[tuple(index)])
    return views


def shape_function(
    module: nn.Flatten | nn.Unflatten | _Unflatten,
) -> Callable[[tuple[int, ...]], tuple[int, ...]]:
    """The output shape a reshaping module gives an input shape."""
    if isinstance(module, _Unflatten):
        side = module.side
        return lambda shape: (shape[0], 1, side, side)
    if isinstance(module, nn.Flatten):
        start_dim, end_dim = module.start_dim, module.end_dim

        def flattened(shape: tuple[int, ...]) -> tuple[int, ...]:
            start, end = start_dim % len(shape), end_dim % len(shape)
            return (*shape[:start], -1, *shape[end + 1 :])

        return flattened
    dim, sizes = module.dim, tuple(module.unflattened_size)

    def unflattened(shape: tuple[int, ...]) -> tuple[int, ...]:
        at = dim % len(shape)
        return (*shape[:at], *sizes, *shape[at + 1 :])

    return unflattened

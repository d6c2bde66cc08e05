"""Built-in models, chosen on the command line by name (``--model mlp``)."""

import math
from collections.abc import Callable

import torch
from torch import nn

from flare.errors import ConfigError


class _Unflatten(nn.Module):
    """Reshape flat feature rows into single-channel square images."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 1, self.side, self.side)

    def extra_repr(self) -> str:
        return f"side={self.side}"


def logistic_regression(num_features: int, num_classes: int) -> nn.Module:
    """A single linear layer: the smallest useful baseline."""
    return nn.Sequential(nn.Linear(num_features, num_classes))


def mlp(num_features: int, num_classes: int, hidden: tuple[int, ...] = (256, 128)) -> nn.Module:
    """A ReLU multi-layer perceptron."""
    layers: list[nn.Module] = []
    width = num_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def small_cnn(num_features: int, num_classes: int) -> nn.Module:
    """Two 3x3 convolutions and a linear head, for square single-channel images."""
    side = math.isqrt(num_features)
    if side * side != num_features or side < 4:
        raise ConfigError(
            f"the cnn model needs square images; {num_features} features is not a square >= 16"
        )
    pooled = side // 2
    return nn.Sequential(
        _Unflatten(side),
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * pooled * pooled, 64),
        nn.ReLU(),
        nn.Linear(64, num_classes),
    )


MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "logreg": logistic_regression,
    "mlp": mlp,
    "cnn": small_cnn,
}

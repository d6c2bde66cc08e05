"""The exact reference step's loss and gradient computed by float64 torch autograd."""

import copy

import numpy as np
import torch
from torch import nn


def autograd_hinge(
    module: nn.Module, weights: dict, features: np.ndarray, labels: np.ndarray
) -> tuple[float, dict[str, np.ndarray]]:
    """The Weston–Watkins hinge loss of ``module`` at ``weights`` and its gradient."""
    reference = copy.deepcopy(module).double()
    reference.load_state_dict(
        {k: torch.as_tensor(v, dtype=torch.float64) for k, v in weights.items()}
    )
    logits = reference(torch.as_tensor(features, dtype=torch.float64))
    truth = torch.as_tensor(labels)[:, None]
    hinge = torch.clamp(logits - logits.gather(1, truth) + 1.0, min=0.0).scatter(1, truth, 0.0)
    loss = hinge.sum() / len(features)
    loss.backward()
    return loss.item(), {name: p.grad.numpy() for name, p in reference.named_parameters()}

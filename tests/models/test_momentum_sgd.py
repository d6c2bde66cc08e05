"""The local optimiser is torch.optim.SGD's arithmetic without torch.optim's compiler hooks."""

import pytest
import torch
from torch import nn

from flare.models.torch_adapter import MomentumSGD


def _trained(optimizer_of, momentum: float) -> list[torch.Tensor]:
    """Weights after a few steps on fixed data, one layer frozen so it never gets a gradient."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4), nn.Linear(4, 4))
    model[3].requires_grad_(False)
    optimizer = optimizer_of(list(model.parameters()), momentum)
    inputs, targets = torch.randn(40, 8), torch.randint(0, 4, (40,))
    for start in range(0, 40, 8):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(
            model(inputs[start : start + 8]), targets[start : start + 8]
        )
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_steps_match_torch_sgd_bit_for_bit(momentum):
    ours = _trained(lambda params, m: MomentumSGD(params, 0.05, m), momentum)
    theirs = _trained(lambda params, m: torch.optim.SGD(params, lr=0.05, momentum=m), momentum)
    initial = _trained(lambda params, m: MomentumSGD(params, 0.0, m), momentum)
    for mine, reference in zip(ours, theirs, strict=True):
        assert torch.equal(mine, reference)
    assert not torch.equal(ours[0], initial[0])  # the steps moved the trained layers
    assert torch.equal(ours[-1], initial[-1])  # and left the frozen one alone

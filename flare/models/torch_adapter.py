"""PyTorch implementation of :class:`~flare.models.base.ModelAdapter`."""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flare.models.base import EvalResult, ModelAdapter, TrainResult
from flare.tensors import Weights


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one client's local training."""

    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 0.05
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError("epochs and batch_size must be >= 1 and learning_rate > 0")
        if not 0 <= self.momentum < 1:
            raise ValueError("momentum must lie in [0, 1)")


class MomentumSGD:
    """Stochastic gradient descent with heavy-ball momentum, the arithmetic of
    ``torch.optim.SGD(params, lr, momentum)`` (no dampening, weight decay or Nesterov)
    operation for operation, so its weights are bit for bit the same.

    ``torch.optim`` is not used because every one of its optimizers imports
    ``torch._dynamo`` on the first ``step()`` or ``zero_grad()``: about 200 MB of
    compiler stack in a participant that only ever trains a small model eagerly.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, momentum: float) -> None:
        self.params, self.lr, self.momentum = params, lr, momentum
        self._buffers: dict[int, torch.Tensor] = {}

    def zero_grad(self) -> None:
        """Drop every gradient, as ``zero_grad(set_to_none=True)`` does."""
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that received a gradient; the others keep their
        value and their momentum, as in torch.

        A first gradient becomes the momentum buffer itself, where torch copies it: the
        parameter lets go of it, so no later backward pass can accumulate into it.
        """
        for index, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            if self.momentum != 0:
                buffer = self._buffers.get(index)
                if buffer is None:
                    buffer = self._buffers[index] = grad.detach()
                    param.grad = None
                else:
                    buffer.mul_(self.momentum).add_(grad, alpha=1)
                grad = buffer
            param.add_(grad, alpha=-self.lr)


class TorchModelAdapter(ModelAdapter):
    """Wraps any classification ``nn.Module`` whose forward returns logits.

    The weights are the module's floating-point ``state_dict`` entries in their
    registration order, converted to float32 numpy arrays.
    """

    def __init__(self, module: nn.Module, training: TrainingConfig | None = None) -> None:
        self.module = module.float()
        self.training = training or TrainingConfig()
        # Integer state (batch norm's num_batches_tracked) is not part of the weights, yet
        # cumulative batch norm (momentum=None) steps by it: every set_weights puts it back
        # to what it was here, so a client's training never depends on who trained before.
        self._initial_counters = {
            name: t.clone() for name, t in module.state_dict().items() if not t.is_floating_point()
        }
        self._bind_to_module()
        if not self._names:
            raise ValueError("the module has no floating-point parameters")

    def _bind_to_module(self) -> None:
        # state_dict() costs more than a small model's training step: its tensors share the
        # module's storage, which training and set_weights only ever update in place, so they
        # are read once and kept, as numpy views of that storage: weights go in and out by
        # numpy copies, where a torch copy costs a dispatch per tensor, more than the copy.
        state = self.module.state_dict()
        self._arrays = {name: t.numpy() for name, t in state.items() if t.is_floating_point()}
        self._names = list(self._arrays)
        self._counters = {name: t for name, t in state.items() if not t.is_floating_point()}
        self._parameters = list(self.module.parameters())

    def __getstate__(self) -> dict[str, object]:
        # A pickled view arrives as an array of its own, apart from the module's storage:
        # what is bound to the module is bound again to the module that arrives.
        bound = ("_arrays", "_counters", "_names", "_parameters")
        return {name: value for name, value in self.__dict__.items() if name not in bound}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._bind_to_module()

    def get_weights(self) -> Weights:
        return {name: array.copy() for name, array in self._arrays.items()}

    def set_weights(self, weights: Weights) -> None:
        if list(weights) != self._names:
            raise ValueError("weights do not name the model's parameters in order")
        for name, array in self._arrays.items():
            if np.shape(weights[name]) != array.shape:
                raise ValueError(f"{name}: shape {np.shape(weights[name])} != {array.shape}")
            np.copyto(array, weights[name], casting="same_kind")
        for name, counter in self._counters.items():
            counter.copy_(self._initial_counters[name])

    def train(self, features: np.ndarray, labels: np.ndarray, *, seed: int) -> TrainResult:
        cfg = self.training
        inputs = torch.as_tensor(features, dtype=torch.float32)
        targets = torch.as_tensor(labels, dtype=torch.int64)
        generator = torch.Generator().manual_seed(seed)
        optimizer = MomentumSGD(self._parameters, cfg.learning_rate, cfg.momentum)
        # Reading every module's mode costs a quarter of setting it (nn.Module's __setattr__),
        # which is as much as a small model's optimiser step; it is set after an evaluation.
        if not all(submodule.training for submodule in self.module.modules()):
            self.module.train()
        # Sizes are counted in Python: a tensor's len() is a Python-level call in torch.
        num_samples, total_loss = inputs.shape[0], 0.0
        for _ in range(cfg.epochs):
            order = torch.randperm(num_samples, generator=generator)
            for start in range(0, num_samples, cfg.batch_size):
                batch = order[start : start + cfg.batch_size]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(self.module(inputs[batch]), targets[batch])
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * min(cfg.batch_size, num_samples - start)
        seen = num_samples * cfg.epochs
        return TrainResult(loss=total_loss / max(seen, 1), num_samples=num_samples)

    @torch.no_grad()
    def evaluate(self, features: np.ndarray, labels: np.ndarray) -> EvalResult:
        self.module.eval()
        logits = self.module(torch.as_tensor(features, dtype=torch.float32))
        targets = torch.as_tensor(labels, dtype=torch.int64)
        loss = float(nn.functional.cross_entropy(logits, targets))
        accuracy = float((logits.argmax(dim=1) == targets).double().mean())
        return EvalResult(loss=loss, accuracy=accuracy, num_samples=len(labels))

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        self.module.eval()
        logits = self.module(torch.as_tensor(features, dtype=torch.float32))
        return logits.argmax(dim=1).numpy().astype(np.int64)

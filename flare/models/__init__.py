"""Learners behind named float32 weights."""

from flare.models.base import EvalResult, ModelAdapter, TrainResult
from flare.models.torch_adapter import TorchModelAdapter, TrainingConfig
from flare.models.zoo import MODELS, build_model

__all__ = [
    "MODELS",
    "EvalResult",
    "ModelAdapter",
    "TorchModelAdapter",
    "TrainResult",
    "TrainingConfig",
    "build_model",
]

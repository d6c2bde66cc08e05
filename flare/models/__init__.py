"""Learners behind named float32 weights."""

from flare.models.base import EvalResult, ModelAdapter, TrainResult
from flare.models.exact import ExactInferenceError, ExactPredictor, UnsupportedLayerError
from flare.models.torch_adapter import TorchModelAdapter, TrainingConfig
from flare.models.zoo import MODELS, build_model

__all__ = [
    "MODELS",
    "EvalResult",
    "ExactInferenceError",
    "ExactPredictor",
    "ModelAdapter",
    "TorchModelAdapter",
    "TrainResult",
    "TrainingConfig",
    "UnsupportedLayerError",
    "build_model",
]

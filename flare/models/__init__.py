"""Learners behind named float32 weights."""

from flare.models.base import EvalResult, ModelAdapter, TrainResult
from flare.models.exact import UnsupportedLayerError
from flare.models.exact_arithmetic import ExactInferenceError
from flare.models.exact_predictor import ExactPredictor
from flare.models.factory import ModelFactory, ModelMismatchError, build_model
from flare.models.torch_adapter import TorchModelAdapter, TrainingConfig
from flare.models.zoo import MODELS

__all__ = [
    "MODELS",
    "EvalResult",
    "ExactInferenceError",
    "ExactPredictor",
    "ModelAdapter",
    "ModelFactory",
    "ModelMismatchError",
    "TorchModelAdapter",
    "TrainResult",
    "TrainingConfig",
    "UnsupportedLayerError",
    "build_model",
]

"""Models named by reference: a built-in name, or a factory of the user's own.

A reference is one of

- a built-in name: ``mlp``, ``cnn``, ``logreg`` (:data:`flare.models.MODELS`);
- ``package.module:function``: a function of an importable module;
- ``path/to/file.py:function``: a function of a Python file, the path taken relative to
  the working directory of the process that builds the model.

A factory is called as ``function(num_features, num_classes)`` and returns a fresh
``nn.Module`` whose forward maps ``(batch, num_features)`` float32 rows to
``(batch, num_classes)`` logits. Flare seeds torch's generator before the call, so the
factory must draw its initial weights from torch's default generator and nothing else.

A task binds its model by :func:`definition_hash` and the parameters' names and shapes
(docs/models.md): whoever builds a model from the task's reference must get that model.
"""

import hashlib
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from flare.errors import ConfigError, FlareError
from flare.models.exact import UnsupportedLayerError
from flare.models.exact_predictor import ExactPredictor
from flare.models.zoo import MODELS
from flare.tensors import ModelSpec

ModelFactory = Callable[[int, int], nn.Module]
"""``factory(num_features, num_classes) -> nn.Module``."""

MAX_REFERENCE_CHARS = 256
"""Longest model reference a task's manifest carries."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ModelMismatchError(ConfigError):
    """The model built here is not the one the task binds."""


def is_builtin(reference: str) -> bool:
    """Whether ``reference`` names a built-in model, which a manifest names alone."""
    return reference in MODELS


def check_reference(reference: str) -> None:
    """Refuse a reference that is neither a built-in name nor of a factory's two forms."""
    if is_builtin(reference):
        return
    if not (
        0 < len(reference) <= MAX_REFERENCE_CHARS
        and reference.isascii()
        and reference.isprintable()
    ):
        raise ConfigError(
            f"a model reference is 1-{MAX_REFERENCE_CHARS} printable ASCII characters"
        )
    source, _, function = reference.rpartition(":")
    if not source or not _IDENTIFIER.fullmatch(function):
        raise ConfigError(
            f"unknown model {reference!r}: give {', '.join(MODELS)}, "
            "package.module:function or path/to/file.py:function"
        )
    if not source.endswith(".py") and not _MODULE.fullmatch(source):
        raise ConfigError(f"model {reference!r}: {source!r} is neither a module nor a .py file")


def resolve_factory(reference: str) -> ModelFactory:
    """The function ``reference`` names; a file is loaded once per process."""
    check_reference(reference)
    if is_builtin(reference):
        return MODELS[reference]
    source, _, function = reference.rpartition(":")
    module = _load_file(Path(source)) if source.endswith(".py") else _import(source, reference)
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ConfigError(f"model {reference!r}: {source} defines no function {function!r}")
    return factory


def _import(name: str, reference: str) -> object:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # the user's package: whatever its import raises, it is unusable
        raise ConfigError(f"model {reference!r}: cannot import {name}: {exc}") from None


def _load_file(path: Path) -> object:
    resolved = path.resolve()
    # A name of its own per file: two files both called model.py stay two modules.
    name = "flare_user_model_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    if not resolved.is_file():
        raise ConfigError(f"model file {path} does not exist (relative to {Path.cwd()})")
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigError(f"model file {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: any error it raises is a bad model file
        del sys.modules[name]
        raise ConfigError(f"model file {path} failed to load: {exc}") from None
    return module


def build_model(reference: str, num_features: int, num_classes: int, *, seed: int) -> nn.Module:
    """Instantiate the model ``reference`` names, its weights drawn from ``seed``."""
    factory = resolve_factory(reference)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            module = factory(num_features, num_classes)
        except FlareError:
            raise
        except Exception as exc:  # the user's code: one line, not its traceback
            raise ConfigError(f"model {reference!r} failed to build: {exc}") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"model {reference!r} returned {type(module).__name__}, not a torch nn.Module"
        )
    return module


def check_exact(reference: str, module: nn.Module) -> None:
    """Refuse a model whose labels the committee cannot compute exactly (docs/models.md)."""
    try:
        ExactPredictor(module)
    except UnsupportedLayerError as exc:
        raise ConfigError(f"model {reference!r} cannot be labelled exactly: {exc}") from None


def definition_hash(module: nn.Module) -> str:
    """SHA-256 (hex) of what the model computes: each submodule's path, class and the
    hyperparameters torch prints for it (``extra_repr``), in registration order.

    For the layer types exact inference runs, those are every hyperparameter that changes
    the forward pass, so two modules with one hash compute the same function of the same
    weights, wherever and however their factory was written.
    """
    description = [
        [path, f"{type(sub).__module__}.{type(sub).__qualname__}", sub.extra_repr()]
        for path, sub in module.named_modules()
    ]
    text = json.dumps(description, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def parameter_shapes(module: nn.Module) -> ModelSpec:
    """The weights Flare trades for ``module``, by name in order: its floating-point
    ``state_dict`` entries, as :class:`~flare.models.TorchModelAdapter` takes them."""
    return {
        name: tuple(int(size) for size in tensor.shape)
        for name, tensor in module.state_dict().items()
        if tensor.is_floating_point()
    }


def check_binding(
    reference: str, module: nn.Module, definition: str, parameters: ModelSpec
) -> None:
    """Refuse, in one line, a model that is not the one a task binds."""
    mine = parameter_shapes(module)
    if list(mine) != list(parameters):
        here, bound = list(mine), list(parameters)
        pairs = enumerate(zip(here, bound, strict=False))
        at = next((i for i, (a, b) in pairs if a != b), min(len(here), len(bound)))
        raise ModelMismatchError(
            f"model {reference!r} here has {len(here)} parameters, the task's {len(bound)}; "
            f"parameter {at} is {_named(here, at)} here, {_named(bound, at)} in the task"
        )
    for name, shape in parameters.items():
        if mine[name] != shape:
            raise ModelMismatchError(
                f"model {reference!r} here has {name} of shape {mine[name]}; the task's has {shape}"
            )
    if definition_hash(module) != definition:
        raise ModelMismatchError(
            f"model {reference!r} here is defined differently from the task's (same "
            "parameters, different layers or hyperparameters: see docs/models.md)"
        )


def _named(names: list[str], at: int) -> str:
    return repr(names[at]) if at < len(names) else "missing"

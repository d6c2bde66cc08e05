"""A global model written for use outside Flare: safetensors and the lines that load it.

``model.safetensors`` holds the weights under the names of the module's ``state_dict``
(Flare trades exactly those, see :class:`~flare.models.TorchModelAdapter`), so
``module.load_state_dict(safetensors.torch.load_file(...))`` puts them into a fresh
instance of the task's model. Nothing here unpickles anything.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from flare.models.factory import is_builtin
from flare.tensors import Weights

WEIGHTS_FILE = "model.safetensors"
LOADER_FILE = "load.py"


@dataclass(frozen=True)
class ExportedModel:
    """Which global model an export holds, for its metadata and its loader's docstring."""

    reference: str
    num_features: int
    num_classes: int
    task_id: int
    round: int
    """0: the task's initial model."""
    cid: str

    def described(self) -> str:
        which = "initial model" if self.round == 0 else f"global model after round {self.round}"
        return f"Task {self.task_id}'s {which}, CID {self.cid}"

    def construction(self) -> str:
        """Python lines that build a fresh instance of the model, as ``module``."""
        size = f"{self.num_features}, {self.num_classes}"
        if is_builtin(self.reference):
            return (
                "from flare.models import build_model\n"
                f'module = build_model("{self.reference}", {size}, seed=0)'
            )
        source, _, function = self.reference.rpartition(":")
        if source.endswith(".py"):
            module = f"{Path(source).stem} import {function}  # {source}"
            return f"from {module}\nmodule = {function}({size})"
        return f"from {source} import {function}\nmodule = {function}({size})"


def write_export(weights: Weights, model: ExportedModel, out: Path) -> list[Path]:
    """Write ``model.safetensors`` and ``load.py`` into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    weights_path, loader_path = out / WEIGHTS_FILE, out / LOADER_FILE
    metadata = {
        "format": "flare-export/1",
        "model": model.reference,
        "task": str(model.task_id),
        "round": str(model.round),
        "cid": model.cid,
    }
    tensors = {
        name: np.ascontiguousarray(array, dtype=np.float32) for name, array in weights.items()
    }
    save_file(tensors, str(weights_path), metadata=metadata)
    loader_path.write_text(_loader(model))
    return [weights_path, loader_path]


def _loader(model: ExportedModel) -> str:
    usage = "\n".join(f"    {line}" for line in model.construction().splitlines())
    return f'''"""{model.described()}, exported by `flare model export`.

Load it into a fresh instance of the task's model `{model.reference}`:

{usage}
    from load import load_into
    load_into(module)
"""

from pathlib import Path

from safetensors.torch import load_file
from torch import nn

WEIGHTS = Path(__file__).with_name("{WEIGHTS_FILE}")


def load_into(module: nn.Module) -> nn.Module:
    """``module`` holding the exported weights, in evaluation mode."""
    module.load_state_dict(load_file(WEIGHTS))
    return module.eval()
'''

"""Creating a task: its initial model and manifest on the store, its parameters on chain.

What ``flare task create`` does, as a function tests and scripts call directly. The task
is then fully described by chain and store: the manifest (the validation split, the model
architecture, the aggregation rule, any DP requirement) is the blob the chain names as the
validation set, so every participant and auditor builds the same context from the task id
alone. A model of the user's own is bound there by its architecture (docs/models.md).
"""

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from flare.aggregation import make_aggregator
from flare.chain import ChainConnector, ContentRef, TaskCreated
from flare.chain.api.admission import admission_root
from flare.data import load_dataset
from flare.errors import ConfigError
from flare.federation.protocol.artifacts import (
    ModelArchitecture,
    TaskManifest,
    encode_manifest,
    encode_model,
)
from flare.federation.task_parameters import DEFAULT_TASK_PARAMETERS, TaskParameters
from flare.models import TorchModelAdapter, build_model
from flare.models.factory import (
    check_exact,
    definition_hash,
    is_builtin,
    parameter_shapes,
)
from flare.privacy import DEFAULT_DELTA, PrivacyRequirement
from flare.storage import StorageProvider


@dataclass(frozen=True)
class TaskSpec:
    """Everything ``flare task create`` asks for: the manifest's contents, the seed of the
    data split and initial weights, and the task's on-chain ``parameters``."""

    model: str = "mlp"
    """A built-in name or a factory reference (``flare.models.factory``)."""
    dataset: str = "digits"
    aggregator: str = "mi"
    aggregator_params: dict[str, Any] = field(default_factory=dict)
    parameters: TaskParameters = DEFAULT_TASK_PARAMETERS
    seed: int = 0
    dp_max_epsilon: float | None = None
    """Require client-level DP of every participant: at most this ε over all rounds."""
    dp_delta: float = DEFAULT_DELTA
    dp_clip: float | None = None
    """The clip participants must apply (at most) when the task requires DP."""
    admitted: tuple[str, ...] = ()
    """The addresses a permissioned task admits (docs/protocol.md §2.5); empty: anyone may
    register."""
    min_stake: int = 0
    """A staked task's least deposit in wei (docs/protocol.md §2.6); zero: not staked."""

    def privacy_requirement(self) -> PrivacyRequirement | None:
        """The DP demand the manifest will carry, its noise calibrated to ε over the rounds."""
        if self.dp_max_epsilon is None and self.dp_clip is None:
            return None
        if self.dp_max_epsilon is None or self.dp_clip is None:
            raise ConfigError("--dp-max-epsilon and --dp-clip go together")
        return PrivacyRequirement.calibrated(
            self.dp_max_epsilon, self.dp_delta, self.dp_clip, self.parameters.max_rounds
        )


def publish_task(chain: ChainConnector, store: StorageProvider, spec: TaskSpec) -> int:
    """Upload and pin the initial model and the manifest, create the task, return its id.

    ``chain`` sends as the task's creator. The data set is loaded with ``spec.seed``, the
    seed ``flare task split-data`` must use too, so the validation split is held out from
    every client's shard and standardised the same way.
    """
    if spec.admitted and spec.min_stake:
        raise ConfigError("a task admits a list of devices or takes stakes, not both")
    privacy = spec.privacy_requirement()
    # an unknown rule or parameter would leave a task nobody can run
    make_aggregator(spec.aggregator, **spec.aggregator_params)
    dataset = load_dataset(spec.dataset, seed=spec.seed)
    module = build_model(spec.model, dataset.num_features, dataset.num_classes, seed=spec.seed)
    check_exact(spec.model, module)
    manifest = TaskManifest(
        model=spec.model,
        num_features=dataset.num_features,
        num_classes=dataset.num_classes,
        aggregator=spec.aggregator,
        aggregator_params=dict(spec.aggregator_params),
        privacy=privacy,
        architecture=None if is_builtin(spec.model) else architecture_of(module),
    )
    model_cid = store.put(encode_model(TorchModelAdapter(module).get_weights()))
    manifest_cid = store.put(
        encode_manifest(manifest, dataset.validation_features, dataset.validation_labels)
    )
    for cid in (model_cid, manifest_cid):
        store.pin(cid)
    model, manifest_ref = ContentRef.from_cid(model_cid), ContentRef.from_cid(manifest_cid)
    parameters = spec.parameters.on_chain()
    if spec.admitted:
        root = admission_root(spec.admitted)
        receipt = chain.create_permissioned_task(model, manifest_ref, parameters, root)
    elif spec.min_stake:
        receipt = chain.create_staked_task(model, manifest_ref, parameters, spec.min_stake)
    else:
        receipt = chain.create_task(model, manifest_ref, parameters)
    return receipt.one(TaskCreated).task_id


def architecture_of(module: nn.Module) -> ModelArchitecture:
    """The binding a manifest carries for ``module``."""
    return ModelArchitecture(definition_hash(module), parameter_shapes(module))

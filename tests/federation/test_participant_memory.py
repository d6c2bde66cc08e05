"""A participant's round costs little memory beyond torch itself.

Both figures are the peak RSS of a fresh interpreter, measured side by side in this test:
one that only imports torch, one that imports everything ``flare participant run`` loads
and then trains and encodes a round of the default task (MLP, PowerSGD).
"""

import json
import subprocess
import sys

import numpy as np

PEAK_LIMIT = 1.10
"""Peak RSS of a participant's round, as a multiple of the RSS after ``import torch``.

The round measures about 1.09, and no participant import can be deferred to lower it:
about a quarter of the rest is torch's first backward pass; most of the imports' share is
eth-utils (which eth-abi and eth-account load, pydantic with it), eth-account with its
keyfile decoder, and httpx. Only about 0.01x is dispensable, and not by moving an import:
httpx's optional command line (rich, pygments, click), which it loads whenever click is
installed, and the in-memory chain that ``flare.chain`` re-exports."""

PEAK_KIB = """
from pathlib import Path
def peak_kib():  # VmHWM: ru_maxrss would report the parent's peak if it were higher
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])
"""

TORCH_ONLY = (
    PEAK_KIB
    + """
import json
import torch
print(json.dumps({"peak_kib": peak_kib()}))
"""
)

PARTICIPANT_ROUND = (
    PEAK_KIB
    + """
import json, sys

import flare.cli.participant
import flare.federation.agents
from flare.compression import make_codec
from flare.compression.base import UpdateBinding
from flare.federation.agents.local_data import read_client_data
from flare.federation.clients import produce_update
from flare.models import TorchModelAdapter, build_model
from flare.tensors import spec_of

client = read_client_data(Path(sys.argv[1]), "client-0", 64, 10)
trainer = TorchModelAdapter(build_model("mlp", 64, 10, seed=0))
base = trainer.get_weights()
update = produce_update(client, trainer, base, 10, seed=1)
encoder = make_codec("powersgd", rank=4).new_encoder(spec_of(base), 2)
binding = UpdateBinding("client-0", "1", 1, 0, "base", update.num_samples)
blob = encoder.encode(update.delta, binding)
print(json.dumps({
    "peak_kib": peak_kib(),
    "dynamo": "torch._dynamo" in sys.modules,
    "blob_bytes": len(blob),
}))
"""
)


def _child(script: str, *arguments: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_a_round_pulls_in_no_compiler_and_little_memory_beyond_torch(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "client-0.npz"
    np.savez(data, X=rng.normal(size=(420, 64)).astype(np.float32), y=rng.integers(0, 10, 420))
    torch_only = _child(TORCH_ONLY)
    participant = _child(PARTICIPANT_ROUND, str(data))
    assert participant["blob_bytes"] > 0
    assert not participant["dynamo"], "training imported torch._dynamo"
    ratio = participant["peak_kib"] / torch_only["peak_kib"]
    assert ratio <= PEAK_LIMIT, f"peak RSS {ratio:.3f}× the RSS after import torch"

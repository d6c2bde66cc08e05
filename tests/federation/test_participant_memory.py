"""A participant's round costs little memory beyond torch itself.

Both figures come from a fresh interpreter, measured side by side in this test: one that only
imports torch, one that imports everything ``flare participant run`` loads and then trains and
encodes a round of the default task (MLP, PowerSGD). Each reports its peak RSS and, at its end,
its anonymous and file-backed resident memory (the round's peak is its end: the two sum to it).

The file-backed part is the shared libraries' pages, and how much of a library a process maps
depends on the page cache, not on the process: right after pip has written a fresh
environment, both figures carry about 40 MiB more of it, and the participant's more than
torch's (measured: peak ratio 1.096 in an older environment, 1.105 in a fresh clone's, with
the anonymous ratio 1.090 in both). So the limit is on anonymous memory, what the process
allocated itself, and the peak is held to a looser bound of its own.
"""

import json
import subprocess
import sys

import numpy as np

ANONYMOUS_LIMIT = 1.10
"""Anonymous memory after a participant's round, as a multiple of that after ``import torch``.

The round measures about 1.09, and no participant import can be deferred to lower it:
about a quarter of the rest is torch's first backward pass; most of the imports' share is
eth-utils (which eth-abi and eth-account load, pydantic with it), eth-account with its
keyfile decoder, and httpx. Only about 0.01x is dispensable, and not by moving an import:
httpx's optional command line (rich, pygments, click), which it loads whenever click is
installed, and the in-memory chain that ``flare.chain`` re-exports."""

PEAK_LIMIT = 1.12
"""Peak RSS of the round as a multiple of torch's alone, whatever the page cache holds."""

PEAK_KIB = """
import re
from pathlib import Path
def memory_kib():  # VmHWM: ru_maxrss would report the parent's peak if it were higher
    status = Path("/proc/self/status").read_text()
    fields = dict(re.findall(r"(VmHWM|RssAnon|RssFile):\\s+(\\d+) kB", status))
    return {"peak_kib": int(fields["VmHWM"]), "anonymous_kib": int(fields["RssAnon"]),
            "file_kib": int(fields["RssFile"])}
"""

TORCH_ONLY = (
    PEAK_KIB
    + """
import json
import torch
print(json.dumps(memory_kib()))
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
    **memory_kib(),
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
    anonymous = participant["anonymous_kib"] / torch_only["anonymous_kib"]
    assert anonymous <= ANONYMOUS_LIMIT, f"anonymous memory {anonymous:.3f}× torch's alone"
    peak = participant["peak_kib"] / torch_only["peak_kib"]
    assert peak <= PEAK_LIMIT, f"peak RSS {peak:.3f}× the RSS after import torch"

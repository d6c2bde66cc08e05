"""Participant benchmark: peak memory against ``import torch``, and bytes per round.

Run from the repository root:

    .venv/bin/python benchmarks/bench_participant.py [--clients 4] [--rounds 3]

The default task (digits, MLP, `mi`) runs to its end with PowerSGD updates: a fleet of
participant agents, each with its own view of the store that counts what it uploads and
downloads, on the embedded chain journaled to SQLite. The task is published and the data
split in this process (they load scikit-learn); the fleet runs in a fresh single-threaded
child that imports only what a participant does, beside a second fresh child that only
imports torch. The fleet's peak RSS bounds one participant's from above: its agents share
one interpreter and one torch, and each adds its own model, data and round.

Writes docs/bench/participant.md and docs/bench/participant.json.
"""

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    OUTPUT_DIR,
    environment,
    environment_line,
    measure_in_child,
    write_results,
)

from flare.federation.report import process_peak_rss_mb

NAME = "participant"
CODEC = "powersgd"
RANK = 4
TORCH_ONLY = (
    "import json, torch; "
    "from pathlib import Path; "
    "status = Path('/proc/self/status').read_text(); "
    "print(json.dumps({'peak_kib': int(status.split('VmHWM:')[1].split()[0])}))"
)
"""A child's own peak is ``VmHWM``: ``ru_maxrss`` keeps the parent's across ``exec``."""


def publish(workdir: Path, clients: int, rounds: int) -> None:
    """The default task on a journaled chain in ``workdir``, and each client's data file."""
    from flare.config import NetworkConfig, open_chain, open_store
    from flare.federation.agents import TaskSpec, publish_task, split_data
    from flare.federation.protocol.simulated_device import participant_keys
    from flare.federation.task_parameters import TaskParameters

    spec = TaskSpec(parameters=TaskParameters(max_rounds=rounds, min_clients=clients))
    split_data(spec.dataset, clients, workdir / "data", seed=spec.seed)
    config = NetworkConfig(state=workdir / "chain.db", store=workdir / "blobs")
    creator, _ = participant_keys(0, -1)
    with open_chain(config, creator) as chain:
        publish_task(chain, open_store(config), spec)


def one_round(workdir: Path) -> dict[str, Any]:
    """One participant's training round, in this process: everything ``flare participant
    run`` imports, then client-0's update trained and encoded as its device does it."""
    import flare.cli.participant  # noqa: F401  (the command's own imports count too)
    from flare.compression import make_codec
    from flare.compression.base import UpdateBinding
    from flare.federation.agents import TaskSpec
    from flare.federation.agents.local_data import read_client_data
    from flare.federation.clients import produce_update
    from flare.models import TorchModelAdapter, build_model
    from flare.tensors import spec_of

    spec = TaskSpec()
    client = read_client_data(workdir / "data" / "client-0.npz", "client-0", 64, 10)
    trainer = TorchModelAdapter(build_model(spec.model, 64, 10, seed=spec.seed))
    base = trainer.get_weights()
    update = produce_update(client, trainer, base, 10, seed=1)
    encoder = make_codec(CODEC, rank=RANK).new_encoder(spec_of(base), 2)
    binding = UpdateBinding("client-0", "1", 1, 0, "base", update.num_samples)
    encoder.encode(update.delta, binding)
    return {
        "peak_kib": round(1024 * process_peak_rss_mb()),
        "dynamo": "torch._dynamo" in sys.modules,
    }


def run_fleet(workdir: Path, clients: int) -> dict[str, Any]:
    """Every participant to the task's end, in this process; what each sent and fetched."""
    from flare.config import NetworkConfig, open_chain, open_store
    from flare.crypto.identity import ParticipantKeys
    from flare.federation.agents import AgentOptions, ParticipantAgent, StepOutcome
    from flare.federation.protocol.simulated_device import participant_keys
    from flare.storage import ForwardingStore, StorageProvider

    class CountingStore(ForwardingStore):
        """One participant's view of the shared store, counting the bytes either way."""

        def __init__(self, inner: StorageProvider) -> None:
            super().__init__(inner)
            self.up = self.down = 0

        def _store(self, cid: str, data: bytes) -> None:
            self.up += len(data)
            super()._store(cid, data)

        def _load(self, cid: str, limit: int) -> bytes:
            blob = super()._load(cid, limit)
            self.down += len(blob)
            return blob

    config = NetworkConfig(state=workdir / "chain.db", store=workdir / "blobs")
    shared = open_store(config)
    stores = [CountingStore(shared) for _ in range(clients)]
    options = AgentOptions(codec=CODEC, rank=RANK)
    creator, _ = participant_keys(0, -1)
    with open_chain(config, creator) as chain:
        agents = [
            ParticipantAgent(
                chain,
                stores[index],
                ParticipantKeys(*participant_keys(0, index)),
                1,
                workdir / "data" / f"client-{index}.npz",
                workdir / f"state-{index}",
                options,
                name=f"client-{index}",
            )
            for index in range(clients)
        ]
        for agent in agents:
            agent.step()  # registers
        chain.start_task(1)
        while True:  # the clock: a block whenever nobody has anything to do
            outcomes = [agent.step() for agent in agents]
            if all(outcome is StepOutcome.DONE for outcome in outcomes):
                break
            if StepOutcome.ACTED not in outcomes:
                chain.mine(1)
        finalized = chain.task(1).round
    return {
        "peak_kib": round(1024 * process_peak_rss_mb()),
        "dynamo": "torch._dynamo" in sys.modules,
        "rounds": finalized,
        "bytes_up": [store.up for store in stores],
        "bytes_down": [store.down for store in stores],
    }


def markdown(results: dict[str, Any]) -> str:
    fleet, clients, rounds = results["fleet"], results["clients"], results["fleet"]["rounds"]
    torch_mib, peak_mib = results["torch_kib"] / 1024, fleet["peak_kib"] / 1024
    single_mib = results["single"]["peak_kib"] / 1024
    dynamo = fleet["dynamo"] or results["single"]["dynamo"]
    per_round_up = [up / rounds / 1024 for up in fleet["bytes_up"]]
    per_round_down = [down / rounds / 1024 for down in fleet["bytes_down"]]
    lines = [
        "# Participant benchmark: memory and bytes per round",
        "",
        f"Produced by `{results['command']}`. {environment_line(results['environment'])} "
        f"The whole benchmark took {results['wall_seconds']:.0f} s.",
        "",
        f"Setup: the default task (digits, MLP, `mi`), {clients} participants, {rounds} rounds "
        f"finalized, `--codec {CODEC} --rank {RANK}`, one thread. Three fresh interpreters "
        "side by side: one that only imports torch; one participant's training round "
        "(everything `flare participant run` imports, then client-0's update trained and "
        "encoded); and the whole fleet to the task's end on the embedded chain, committee "
        "work included. The fleet's agents share one interpreter and one torch, each adding "
        "its own model, data and rounds, and the chain runs beside them: its peak bounds "
        "one participant process's from above. Peak RSS is each process's `VmHWM`.",
        "",
        "| process | peak RSS MiB | × `import torch` |",
        "|---|---:|---:|",
        f"| `import torch` alone | {torch_mib:.0f} | 1.000 |",
        f"| one participant's training round | {single_mib:.0f} | {single_mib / torch_mib:.3f} |",
        f"| the fleet of {clients} and the chain, to the task's end | {peak_mib:.0f} "
        f"| {peak_mib / torch_mib:.3f} |",
        "",
        f"`torch._dynamo` imported: {'yes' if dynamo else 'no'} (local training steps "
        "with `flare.models.torch_adapter.MomentumSGD`, not `torch.optim`, whose first step "
        "imports it).",
        "",
        "## Bytes per round, per participant",
        "",
        "Every byte a participant's store view put or fetched, averaged over the rounds: "
        "uploads are its update blobs and, when it proposes, its proposal's model; downloads "
        "are whatever its role fetched (the base model, the round's updates a committee "
        "member recomputes from, the proposals it checks).",
        "",
        "| participant | up KiB/round | down KiB/round |",
        "|---|---:|---:|",
    ]
    for index, (up, down) in enumerate(zip(per_round_up, per_round_down, strict=True)):
        lines.append(f"| client-{index} | {up:.1f} | {down:.1f} |")
    lines.append("")
    return "\n".join(lines)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--output-dir", type=Path, default=OUTPUT_DIR, help="where the .md and .json go"
    )
    parser.add_argument(
        "--fleet", type=Path, metavar="WORKDIR", help="internal: run the published fleet"
    )
    parser.add_argument(
        "--round", type=Path, metavar="WORKDIR", help="internal: one participant's round"
    )
    return parser.parse_args()


def main() -> None:
    argv = sys.argv[1:]
    arguments = parse_arguments()
    if arguments.fleet is not None:
        print(json.dumps(run_fleet(arguments.fleet, arguments.clients)))
        return
    if arguments.round is not None:
        print(json.dumps(one_round(arguments.round)))
        return
    env = environment()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        publish(workdir, arguments.clients, arguments.rounds)
        torch_only = measure_in_child("-c", TORCH_ONLY)
        single = measure_in_child(__file__, "--round", str(workdir))
        fleet = measure_in_child(
            __file__, "--clients", str(arguments.clients), "--fleet", str(workdir)
        )
    results = {
        "command": shlex.join([".venv/bin/python", "benchmarks/bench_participant.py", *argv]),
        "environment": env,
        "clients": arguments.clients,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "torch_kib": torch_only["peak_kib"],
        "single": single,
        "fleet": fleet,
    }
    text = markdown(results)
    write_results(NAME, text, results, arguments.output_dir)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

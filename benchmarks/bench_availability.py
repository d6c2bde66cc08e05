"""What the availability rule costs: a round with every blob on time, and one with a withheld blob.

Run from the repository root:

    .venv/bin/python benchmarks/bench_availability.py

Six participant agents (the process code, stepped in one process against the in-memory chain
and one shared store), every one seated, the logistic model, uncompressed updates, a few
rounds, in two scenarios side by side:

- **on time**: every blob is published with its submission;
- **withheld**: one submitter holds its blob back every round and publishes it just after the
  first member has computed its aggregate, so members hold different update sets and must
  judge each other's proposals (docs/protocol.md §12).

Per round: wall time, blocks from the submission deadline to finalization, and per member the
number of aggregates computed and the seconds spent computing them.

Writes ``docs/bench/availability.md`` and ``docs/bench/availability.json``.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import OUTPUT_DIR, environment, environment_line, use_one_thread, write_results

NAME = "availability"
COMMAND = ".venv/bin/python benchmarks/bench_availability.py"
CLIENTS = 6
WITHHOLDER = 2


def _scenario(root: Path, rounds: int, withhold: bool) -> dict[str, Any]:
    from flare.chain import InMemoryChain, RoundFinalized
    from flare.crypto.identity import ParticipantKeys
    from flare.federation.agents import (
        AgentOptions,
        ParticipantAgent,
        StepOutcome,
        TaskSpec,
        publish_task,
        split_data,
    )
    from flare.federation.protocol.simulated_device import participant_keys
    from flare.federation.task_parameters import TaskParameters
    from flare.storage import ForwardingStore, MemoryStore

    class Relay(ForwardingStore):
        """A submitter's view of the shared store that can hold its uploads back."""

        def __init__(self, inner: MemoryStore, hold: bool) -> None:
            super().__init__(inner)
            self.hold, self.held = hold, {}

        def _store(self, cid: str, data: bytes) -> None:
            if self.hold:
                self.held[cid] = data
            else:
                super()._store(cid, data)

        def _pin(self, cid: str) -> None:
            if cid not in self.held:
                super()._pin(cid)

        def release(self) -> None:
            for cid, data in self.held.items():
                super()._store(cid, data)
            self.held.clear()

    split_data("digits", CLIENTS, root / "data")
    chain, store = InMemoryChain(), MemoryStore()
    spec = TaskSpec(
        model="logreg",
        parameters=TaskParameters(
            max_rounds=rounds,
            min_clients=3,
            expected_committee=CLIENTS,
            min_committee=4,
            submission_window=24,
            vote_window=24,
        ),
    )
    task_id = publish_task(chain.as_sender(participant_keys(0, -1)[0]), store, spec)
    relay = Relay(store, withhold)
    agents = [
        ParticipantAgent(
            chain,
            relay if index == WITHHOLDER else store,
            ParticipantKeys(*participant_keys(0, index)),
            task_id,
            root / "data" / f"client-{index}.npz",
            root / f"state-{index}",
            AgentOptions(codec="none"),
            name=f"client-{index}",
        )
        for index in range(CLIENTS)
    ]
    for agent in agents:
        agent.step()
    chain.as_sender(participant_keys(0, -1)[0]).start_task(task_id)
    round_seconds: list[float] = []
    started = time.perf_counter()
    finished_rounds = 0
    while True:
        outcomes = []
        for agent in agents:
            outcomes.append(agent.step())
            if relay.held and any(a.actor.attempt_aggregates() for a in agents):
                relay.release()
        done = len(chain.events([RoundFinalized], task_id=task_id))
        if done > finished_rounds:
            round_seconds.append(time.perf_counter() - started)
            started, finished_rounds = time.perf_counter(), done
        if all(o is StepOutcome.DONE for o in outcomes):
            break
        if StepOutcome.ACTED not in outcomes:
            chain.mine(1)
    finals = [e for e in chain.events([RoundFinalized], task_id=task_id)]
    blocks = [
        e.block_number - chain.round_opened(task_id, e.round, e.attempt).submission_deadline
        for e in finals
    ]
    aggregate_seconds = [agent.actor.clock.seconds.get("aggregate", 0.0) for agent in agents]
    return {
        "round_seconds": statistics.median(round_seconds),
        "blocks_after_deadline": statistics.median(blocks),
        "attempts": len(finals),
        "aggregate_seconds_per_member_round": statistics.mean(aggregate_seconds) / rounds,
        "aggregate_seconds_max_member_round": max(aggregate_seconds) / rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args()
    use_one_thread()
    results = {}
    for name, withhold in (("on time", False), ("withheld", True)):
        with tempfile.TemporaryDirectory() as scratch:
            print(f"[{NAME}] {name}: {args.rounds} rounds …", flush=True)
            results[name] = _scenario(Path(scratch), args.rounds, withhold)
    env = environment()
    rows = "\n".join(
        f"| {name} | {r['round_seconds']:.2f} | {r['blocks_after_deadline']:.0f} | "
        f"{r['aggregate_seconds_per_member_round'] * 1000:.0f} | "
        f"{r['aggregate_seconds_max_member_round'] * 1000:.0f} | {r['attempts']} |"
        for name, r in results.items()
    )
    markdown = f"""# Availability: what agreeing on the update set costs

`{COMMAND}` ({environment_line(env)})

{CLIENTS} agents, all seated, logistic model, uncompressed updates, {args.rounds} rounds,
medians over rounds. *Withheld*: one submitter publishes its blob only after the first
member has computed, every round (docs/protocol.md §12).

| scenario | round s | blocks past deadline | aggregate ms per member-round | max | attempts |
|---|---|---|---|---|---|
{rows}

Every attempt finalized in both scenarios (attempts = rounds). With a withheld blob the
member that computed first re-derives the proposal that counts the late update (one more
aggregate), and members missing something vote at half the vote window: that is the cost.
"""
    write_results(NAME, markdown, {"environment": env, "results": results}, args.output_dir)


if __name__ == "__main__":
    main()

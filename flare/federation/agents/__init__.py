"""Participants as separate long-lived processes that share only a chain and a blob store.

``ParticipantAgent`` runs the protocol's one participant actor
(``federation/protocol/actor.py``) on this device's own data and keys (``agent.py``);
``publish_task`` creates a task (``tasks.py``); ``split_data`` gives each client process
its own data file (``local_data.py``); ``EncoderStateStore`` keeps a client's PowerSGD
state across restarts (``encoder_state.py``). ``docs/processes.md`` shows them at work.
"""

from flare.federation.agents.agent import AgentOptions, ParticipantAgent, stop_event_on_signals
from flare.federation.agents.encoder_state import EncoderStateStore
from flare.federation.agents.local_data import read_client_data, split_data
from flare.federation.agents.tasks import TaskSpec, publish_task
from flare.federation.protocol.follow import StepOutcome

__all__ = [
    "AgentOptions",
    "EncoderStateStore",
    "ParticipantAgent",
    "StepOutcome",
    "TaskSpec",
    "publish_task",
    "read_client_data",
    "split_data",
    "stop_event_on_signals",
]

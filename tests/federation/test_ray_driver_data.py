"""On the Ray backend the driver drops the clients' data once the workers hold it, and keeps
what it still needs: who holds how many samples, and the validation and test splits.

No Ray here: importing it would fix its authentication mode before the two-node cluster
test sets its own (test_backend_ray.py)."""

import numpy as np

from flare.federation.backends.driver_data import leave_data_to_workers
from flare.federation.config import SimulationConfig
from flare.federation.rounds import active_clients
from flare.federation.setup import build_federation


def test_the_driver_keeps_counts_and_held_out_splits_only() -> None:
    config = SimulationConfig(clients=30, partition="dirichlet", alpha=0.05, dropout=0.3)
    federation = build_federation(config)
    before = federation.dataset
    counts = [client.num_samples for client in federation.clients]
    taking_part = [active_clients(config, federation.clients, r) for r in (1, 2, 3)]

    leave_data_to_workers(federation)

    after = federation.dataset
    assert after.train_features.shape == (0, before.num_features)
    assert after.train_labels.shape == (0,)
    assert after.num_features == before.num_features
    assert after.num_classes == before.num_classes
    for split in ("validation_features", "validation_labels", "test_features", "test_labels"):
        assert np.array_equal(getattr(after, split), getattr(before, split))
    assert all(client.features.base is None for client in federation.clients)  # no views
    assert all(len(client.features) == len(client.labels) == 0 for client in federation.clients)
    assert [client.num_samples for client in federation.clients] == counts
    assert 0 in counts  # alpha 0.05 leaves clients without data: they must still drop out
    held = [active_clients(config, federation.clients, r) for r in (1, 2, 3)]
    assert [([(i, c.client_id) for i, c in active], dropped) for active, dropped in held] == [
        ([(i, c.client_id) for i, c in active], dropped) for active, dropped in taking_part
    ]

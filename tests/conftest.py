"""Suite-wide settings."""

import torch

# The suite's models are tiny: one intra-op thread is fastest and immune to oversubscription
# on a shared two-core machine. Tests that are about thread counts set their own.
torch.set_num_threads(1)

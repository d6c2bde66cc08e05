"""Suite-wide settings."""

import os

# Torch's and OpenBLAS's float kernels differ by CPU: their vector widths change the rounding
# of sums, so the same seed trains (torch) and factors a PowerSGD update (OpenBLAS's sgemm)
# to other floats on another machine, and a model CID a test pins would hold on one kind of
# CPU only. MKL's conditional numerical reproducibility (COMPATIBLE), ATen's AVX2 kernels
# and OpenBLAS's Haswell kernels take one code path on any CPU with AVX2: with them the
# pinned CIDs hold with MKL limited to SSE4.2, AVX2 or AVX-512 and numpy's dispatch narrowed
# to AVX2, where without them each of those trains or encodes to other floats. Set before
# torch and numpy load; subprocesses inherit them. The committee's own arithmetic is exact
# and needs none of them (tests/aggregation and tests/compression hold it to that).
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import torch

# The suite's models are tiny: one intra-op thread is fastest and immune to oversubscription
# on a shared two-core machine. Tests that are about thread counts set their own.
torch.set_num_threads(1)

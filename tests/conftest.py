"""Test configuration: deterministic hypothesis runs, one torch thread per worker."""

import torch
from hypothesis import HealthCheck, settings

# Reproducible CI: the same examples on every run, no wall-clock deadlines on a shared 2-core box.
settings.register_profile(
    "sdekit",
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("sdekit")
torch.set_num_threads(1)

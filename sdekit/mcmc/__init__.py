"""MCMC kernels and annealing schedules: Langevin, MALA, underdamped Langevin, ALS and CAS.

Kernels share one interface (:mod:`sdekit.mcmc.kernel`); schedules run them along a sequence of
levels (:mod:`sdekit.mcmc.schedules`). Nothing here knows about networks, images or processes.

A kernel call is one step and draws its noise once, so kernels take ``None``, a
``torch.Generator`` or one generator per chain, and refuse an ``int`` seed (in a loop it would
repeat the same noise at every step): create ``torch.Generator().manual_seed(seed)`` once, outside
the loop. Schedules loop themselves and also take a seed, which they turn into one generator.
"""

from sdekit.mcmc.corrector import LangevinCorrector
from sdekit.mcmc.kernel import Kernel, KernelInfo, KernelStep
from sdekit.mcmc.mala import MALA, MALAState
from sdekit.mcmc.schedules import (
    ScheduleResult,
    annealed_langevin,
    consistent_annealed_sampling,
    geometric_sigmas,
    run_schedule,
)
from sdekit.mcmc.target import Target
from sdekit.mcmc.ula import ULA
from sdekit.mcmc.underdamped import UnderdampedLangevin, UnderdampedState

__all__ = [
    "MALA",
    "ULA",
    "Kernel",
    "KernelInfo",
    "KernelStep",
    "LangevinCorrector",
    "MALAState",
    "ScheduleResult",
    "Target",
    "UnderdampedLangevin",
    "UnderdampedState",
    "annealed_langevin",
    "consistent_annealed_sampling",
    "geometric_sigmas",
    "run_schedule",
]

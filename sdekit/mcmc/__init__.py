"""MCMC kernels and annealing schedules: Langevin, MALA, underdamped Langevin, ALS and CAS.

Kernels share one interface (:mod:`sdekit.mcmc.kernel`); schedules run them along a sequence of
levels (:mod:`sdekit.mcmc.schedules`). Nothing here knows about networks, images or processes.
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

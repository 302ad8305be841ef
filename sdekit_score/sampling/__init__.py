"""Sampling: forward processes, score conventions and the named samplers.

Layer 1 of sdekit_score (it imports only sdekit): a score model becomes a reverse-time SDE or a
probability-flow ODE problem (:mod:`.processes`), in any of four output conventions
(:mod:`.scores`), and each sampler (:mod:`.samplers`) is a short composition of sdekit parts.
"""

from sdekit_score.sampling.precision import AMP_DTYPES, AutocastScore
from sdekit_score.sampling.processes import (
    PROCESSES,
    VESDE,
    VPSDE,
    EDMProcess,
    ForwardProcess,
    SubVPSDE,
    make_process,
    probability_flow,
    reverse_sde,
)
from sdekit_score.sampling.samplers import SAMPLERS, reverse_diffusion_problem, sample
from sdekit_score.sampling.schedules import time_grid
from sdekit_score.sampling.scores import ScoreModel, check_score_output

__all__ = [
    "AMP_DTYPES",
    "AutocastScore",
    "EDMProcess",
    "ForwardProcess",
    "PROCESSES",
    "SAMPLERS",
    "ScoreModel",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "check_score_output",
    "make_process",
    "probability_flow",
    "reverse_diffusion_problem",
    "reverse_sde",
    "sample",
    "time_grid",
]

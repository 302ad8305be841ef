"""sdekit_score: score-based generative sampling built from sdekit parts."""

from sdekit_score.processes import (
    VESDE,
    VPSDE,
    EDMProcess,
    ForwardProcess,
    SubVPSDE,
    probability_flow,
    reverse_sde,
)
from sdekit_score.scores import ScoreModel, check_score_output
from sdekit_score.targets import GaussianMixture

__all__ = [
    "EDMProcess",
    "ForwardProcess",
    "GaussianMixture",
    "ScoreModel",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "check_score_output",
    "probability_flow",
    "reverse_sde",
]

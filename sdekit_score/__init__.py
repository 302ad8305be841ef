"""sdekit_score: score-based generative sampling built from sdekit parts.

Layers (imports only run downward): :mod:`~sdekit_score.sampling` (processes, score
conventions, samplers) → :mod:`~sdekit_score.training` and :mod:`~sdekit_score.evaluation` →
:mod:`~sdekit_score.app` and the ``sdekit-score`` CLI. This namespace re-exports the library's
public names; the application's are not among them.
"""

from sdekit_score.evaluation import (
    GaussianMixture,
    classifier_confidence,
    digits,
    digits_classifier,
    digits_fd,
    frechet_distance,
    gaussian_frechet,
    sliced_wasserstein,
    toy2d,
)
from sdekit_score.sampling import (
    PROCESSES,
    SAMPLERS,
    VESDE,
    VPSDE,
    EDMProcess,
    ForwardProcess,
    ScoreModel,
    SubVPSDE,
    check_score_output,
    make_process,
    probability_flow,
    reverse_sde,
    sample,
    time_grid,
)
from sdekit_score.training import (
    MLP,
    Discriminator,
    HybridLoss,
    MLPDiscriminator,
    TrainConfig,
    TrainResult,
    UNet,
    dsm_loss,
    hybrid_loss,
    latest_checkpoint,
    load_checkpoint,
    train,
)

__all__ = [
    "Discriminator",
    "EDMProcess",
    "HybridLoss",
    "MLP",
    "MLPDiscriminator",
    "PROCESSES",
    "SAMPLERS",
    "make_process",
    "TrainConfig",
    "TrainResult",
    "UNet",
    "classifier_confidence",
    "digits",
    "digits_classifier",
    "digits_fd",
    "dsm_loss",
    "frechet_distance",
    "gaussian_frechet",
    "hybrid_loss",
    "latest_checkpoint",
    "load_checkpoint",
    "sample",
    "sliced_wasserstein",
    "toy2d",
    "train",
    "ForwardProcess",
    "GaussianMixture",
    "ScoreModel",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "check_score_output",
    "probability_flow",
    "reverse_sde",
    "time_grid",
]

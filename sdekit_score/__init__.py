"""sdekit_score: score-based generative sampling built from sdekit parts."""

from sdekit_score.data import digits, toy2d
from sdekit_score.losses import HybridLoss, dsm_loss, hybrid_loss
from sdekit_score.metrics import (
    classifier_confidence,
    digits_classifier,
    digits_fd,
    frechet_distance,
    gaussian_frechet,
    sliced_wasserstein,
)
from sdekit_score.nets import MLP, Discriminator, MLPDiscriminator, UNet
from sdekit_score.processes import (
    VESDE,
    VPSDE,
    EDMProcess,
    ForwardProcess,
    SubVPSDE,
    probability_flow,
    reverse_sde,
)
from sdekit_score.sampling import SAMPLERS, sample
from sdekit_score.scores import ScoreModel, check_score_output
from sdekit_score.targets import GaussianMixture
from sdekit_score.training import (
    TrainConfig,
    TrainResult,
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
    "SAMPLERS",
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
]

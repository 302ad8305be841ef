"""Training: denoising score matching and the hybrid adversarial objective, reference networks,
and the trainer (EMA, atomic checkpoints, exact resume). Builds on :mod:`sdekit_score.sampling`."""

from sdekit_score.training.losses import HybridLoss, dsm_loss, hybrid_loss
from sdekit_score.training.nets import MLP, Discriminator, MLPDiscriminator, UNet
from sdekit_score.training.trainer import (
    TrainConfig,
    TrainResult,
    latest_checkpoint,
    load_checkpoint,
    register_net,
    train,
)

__all__ = [
    "Discriminator",
    "HybridLoss",
    "MLP",
    "MLPDiscriminator",
    "TrainConfig",
    "TrainResult",
    "UNet",
    "dsm_loss",
    "hybrid_loss",
    "latest_checkpoint",
    "load_checkpoint",
    "register_net",
    "train",
]

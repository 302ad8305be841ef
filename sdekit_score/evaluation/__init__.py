"""Evaluation: embedded data (digits, 2-D toys), analytic targets with exact scores, and metrics
(Fréchet distance, sliced Wasserstein, a digits classifier). Builds on :mod:`sdekit_score.sampling`."""

from sdekit_score.evaluation.data import digits, toy2d
from sdekit_score.evaluation.metrics import (
    classifier_confidence,
    digits_classifier,
    digits_fd,
    frechet_distance,
    gaussian_frechet,
    sliced_wasserstein,
)
from sdekit_score.evaluation.targets import GaussianMixture

__all__ = [
    "GaussianMixture",
    "classifier_confidence",
    "digits",
    "digits_classifier",
    "digits_fd",
    "frechet_distance",
    "gaussian_frechet",
    "sliced_wasserstein",
    "toy2d",
]

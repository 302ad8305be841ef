"""Brownian motion sources for the solve loop."""

from .base import BrownianSource, Increment
from .gaussian import GaussianIncrements
from .torchsde_adapter import CallableBrownian

__all__ = ["BrownianSource", "CallableBrownian", "GaussianIncrements", "Increment"]

"""Brownian motion sources for the solve loop."""

from .base import BrownianSource, Increment
from .bridge import BrownianBridge
from .gaussian import GaussianIncrements
from .shared import SharedTimeBridge
from .torchsde_adapter import CallableBrownian

__all__ = [
    "BrownianBridge",
    "BrownianSource",
    "CallableBrownian",
    "GaussianIncrements",
    "Increment",
    "SharedTimeBridge",
]

"""Independent Gaussian increments: the fast path for fixed steps."""

from __future__ import annotations

import math

import torch

from ..batching import bcast
from ..random import randn
from .base import BrownianSource, Increment


def _sqrt_abs(h: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    if isinstance(h, torch.Tensor):
        return bcast(h.abs().sqrt(), like)
    return math.sqrt(abs(h))


class GaussianIncrements(BrownianSource):
    """Fresh ``dW ~ N(0, |h| I)`` for every call (and ``H ~ N(0, |h|/12 I)`` when ``levy_area``).

    Every call draws anew, so a rejected adaptive step followed by a retry sees *new* noise: this
    is the "re-draw on rejection" behaviour of the Gotta Go Fast authors' code, which biases
    solutions when rejection depends on the noise (see :class:`~sdekit.brownian.BrownianBridge`).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        dtype: torch.dtype,
        device: torch.device,
        generator=None,
        levy_area: bool = False,
    ):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.device = device
        self.generator = generator
        self.levy_area = levy_area

    def _draw(self, scale):
        return randn(self.shape, self.generator, self.dtype, self.device).mul_(scale)

    def increment(self, t: torch.Tensor, h: float | torch.Tensor) -> Increment:
        z = randn(self.shape, self.generator, self.dtype, self.device)
        sqrt_h = _sqrt_abs(h, z)
        if not self.levy_area:
            return Increment(z.mul_(sqrt_h))
        return Increment(z.mul_(sqrt_h), self._draw(sqrt_h * math.sqrt(1 / 12)))

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

    selectable = True

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
        self.device = torch.device(device)
        self.generator = generator
        self.levy_area = levy_area

    def select(self, rows: torch.Tensor) -> None:
        self.shape = (len(rows), *self.shape[1:])
        if isinstance(self.generator, list):
            self.generator = [self.generator[i] for i in rows.tolist()]

    def _draw(self, scale):
        return randn(self.shape, self.generator, self.dtype, self.device).mul_(scale)

    def increment(self, t: torch.Tensor, h: float | torch.Tensor) -> Increment:
        z = randn(self.shape, self.generator, self.dtype, self.device)
        sqrt_h = _sqrt_abs(h, z)
        if not self.levy_area:
            return Increment(z.mul_(sqrt_h))
        return Increment(z.mul_(sqrt_h), self._draw(sqrt_h * math.sqrt(1 / 12)))

    def normals(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Standard normals for ``n`` steps, ``(n, *shape)`` (and as many for the Lévy area):
        the same numbers as ``n`` calls of :meth:`increment` would draw, so that compiled
        steps see the noise eager steps would. One call where that gives the same stream (one
        CPU generator, no Lévy area, a multiple of 16 elements: torch fills normals in blocks
        of 16), else ``n`` calls."""
        one_cpu_stream = not isinstance(self.generator, list) and self.device.type == "cpu"
        if one_cpu_stream and not self.levy_area and math.prod(self.shape) % 16 == 0:
            z = torch.randn((n, *self.shape), generator=self.generator, dtype=self.dtype)
            return z, None
        draws = []
        for _ in range(n):
            z = randn(self.shape, self.generator, self.dtype, self.device)
            area = (
                randn(self.shape, self.generator, self.dtype, self.device)
                if self.levy_area
                else None
            )
            draws.append((z, area))
        z = torch.stack([d[0] for d in draws])
        return z, torch.stack([d[1] for d in draws]) if self.levy_area else None


def increment_from_normals(
    z: torch.Tensor, z_area: torch.Tensor | None, h: float | torch.Tensor
) -> Increment:
    """The increment over a step of size ``h`` (a float or a 0-d tensor) from standard normals
    drawn by :meth:`GaussianIncrements.normals`: ``dW = √|h| z``, ``H = √(|h|/12) z_area``."""
    sqrt_h = h.abs().sqrt() if isinstance(h, torch.Tensor) else math.sqrt(abs(h))
    if z_area is None:
        return Increment(z * sqrt_h)
    return Increment(z * sqrt_h, z_area * (sqrt_h * math.sqrt(1 / 12)))

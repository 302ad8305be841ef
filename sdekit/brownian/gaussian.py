"""Independent Gaussian increments: the fast path for fixed steps."""

from __future__ import annotations

import math

import torch

from ..batching import bcast
from ..random import as_generator, randn
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

    ``block``: the standard normals of that many calls are drawn from the generator at once and
    handed out in turn (fixed-step solves set it), so that a small state does not pay one
    generator call per step and compiled chunks of steps (:meth:`normals`) see exactly the
    numbers eager steps would, however the steps are grouped. A block holds ``z`` (and the Lévy
    area's normals) of every row for ``block`` calls; with one generator per sample, row ``i``'s
    come from ``generator[i]`` alone.
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
        block: int = 1,
    ):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.device = torch.device(device)
        self.generator = as_generator(generator, self.device)
        self.levy_area = levy_area
        self.block = block
        self._block: torch.Tensor | None = None  # (block, 1 or 2, *shape): per call dW's, area's
        self._calls: list | None = None  # per part, the block's normals call by call (views)
        self._used = 0  # calls of the block handed out

    def select(self, rows: torch.Tensor) -> None:
        self.shape = (len(rows), *self.shape[1:])
        if isinstance(self.generator, list):
            self.generator = [self.generator[i] for i in rows.tolist()]
        if self._block is not None:
            self._block, self._calls = self._block.index_select(2, rows), None

    def _refill(self) -> None:
        like = dict(dtype=self.dtype, device=self.device)
        parts = 2 if self.levy_area else 1
        if self.block == 1:  # one call's draws: dW of every row, then the area's normals
            block = torch.stack([randn(self.shape, self.generator, **like) for _ in range(parts)])
            block = block[None]
        elif not isinstance(self.generator, list):  # call by call: dW, then the area's
            block = torch.randn((self.block, parts, *self.shape), generator=self.generator, **like)
        else:  # row i from generator[i] alone
            rows = randn(
                (self.shape[0], self.block, parts, *self.shape[1:]), self.generator, **like
            )
            block = rows.permute(1, 2, 0, *range(3, rows.dim()))
        self._block, self._calls, self._used = block, None, 0

    def _left(self) -> int:
        """Calls left in the current block, after drawing a new one if it is used up."""
        if self._block is None or self._used == self.block:
            self._refill()
        return self.block - self._used

    def increment(self, t: torch.Tensor, h: float | torch.Tensor) -> Increment:
        self._left()
        if self._calls is None:  # views made once per block, and only for calls step by step
            self._calls = [self._block[:, part].unbind(0) for part in range(self._block.shape[1])]
        i, self._used = self._used, self._used + 1
        z = self._calls[0][i]
        sqrt_h = _sqrt_abs(h, z)
        # Out of place: the normals are views of one block, which shares its version counter
        # with every increment handed out of it (autograd may have saved one).
        if not self.levy_area:
            return Increment(z * sqrt_h)
        return Increment(z * sqrt_h, self._calls[1][i] * (sqrt_h * math.sqrt(1 / 12)))

    def normals(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Standard normals for ``n`` calls, ``(n, *shape)`` (and as many for the Lévy area):
        the numbers ``n`` calls of :meth:`increment` would use, so that compiled steps see the
        noise eager steps would."""
        pieces = []
        while n:
            k = min(n, self._left())
            whole = k == self.block  # a fresh block, all of it
            pieces.append(self._block if whole else self._block[self._used : self._used + k])
            self._used, n = self._used + k, n - k
        normals = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        return normals[:, 0], normals[:, 1] if self.levy_area else None


def increment_from_normals(
    z: torch.Tensor, z_area: torch.Tensor | None, h: float | torch.Tensor
) -> Increment:
    """The increment over a step of size ``h`` (a float or a 0-d tensor) from standard normals
    drawn by :meth:`GaussianIncrements.normals`: ``dW = √|h| z``, ``H = √(|h|/12) z_area``."""
    sqrt_h = h.abs().sqrt() if isinstance(h, torch.Tensor) else math.sqrt(abs(h))
    if z_area is None:
        return Increment(z * sqrt_h)
    return Increment(z * sqrt_h, z_area * (sqrt_h * math.sqrt(1 / 12)))

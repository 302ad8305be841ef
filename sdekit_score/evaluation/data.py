"""Small data sets that need no download: scikit-learn's 8x8 digits and 2-D toy distributions.

Both come as :class:`torch.utils.data.TensorDataset` of ``(x, label)`` pairs; ``dataset.tensors[0]``
is the whole data tensor. The toys are drawn from a ``torch.Generator`` only.

The digits need scikit-learn (the ``data`` extra), imported only when they are asked for;
:func:`import_extra` is the one place where ``sdekit_score`` imports an optional dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils.data import TensorDataset

from sdekit.errors import InputTypeError, InputValueError
from sdekit.extras import MissingExtraError, import_extra
from sdekit.random import GeneratorLike, as_generator

__all__ = ["TOY2D", "MissingExtraError", "digits", "import_extra", "sample_toy2d", "toy2d"]


def digits(data_range: tuple[float, float] = (-1.0, 1.0)) -> TensorDataset:
    """scikit-learn's digits: 1797 grayscale images ``(N, 1, 8, 8)`` in ``data_range``, labels 0-9.

    The raw pixel values 0..16 map linearly onto ``data_range``: ``(-1, 1)`` for VP, ``(0, 1)``
    for VE.
    """
    lo, hi = data_range
    if not lo < hi:
        raise InputValueError(f"data_range must be (low, high) with low < high, got {data_range}")
    datasets = import_extra("sklearn.datasets", "scikit-learn", "data", "loading the digits data")
    bunch = datasets.load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    return TensorDataset(lo + (hi - lo) * images / 16.0, labels)


def _ring(n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """8 Gaussians of std 0.05 evenly spaced on the circle of radius 0.8."""
    modes = torch.randint(8, (n,), generator=generator)
    angle = 2 * math.pi * modes / 8
    centres = 0.8 * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + 0.05 * torch.randn(n, 2, generator=generator), modes


def _moons(n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles (as ``make_moons``), noise 0.05, centred and scaled by 2/3."""
    moon = torch.randint(2, (n,), generator=generator)
    angle = math.pi * torch.rand(n, generator=generator)
    upper = torch.stack([angle.cos(), angle.sin()], dim=1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], dim=1)
    points = torch.where(moon[:, None] == 0, upper, lower)
    points = points + 0.05 * torch.randn(n, 2, generator=generator)
    return (points - torch.tensor([0.5, 0.25])) / 1.5, moon


def _checkerboard(n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform on the 8 dark squares of a 4x4 checkerboard covering ``[-1, 1]^2``."""
    cell = torch.randint(8, (n,), generator=generator)
    row = cell // 2
    col = 2 * (cell % 2) + row % 2
    corner = torch.stack([col, row], dim=1).float() * 0.5 - 1.0
    return corner + 0.5 * torch.rand(n, 2, generator=generator), cell


_TOYS: dict[str, Callable[[int, torch.Generator | None], tuple[torch.Tensor, torch.Tensor]]] = {
    "ring": _ring,
    "moons": _moons,
    "checkerboard": _checkerboard,
}
TOY2D = tuple(_TOYS)


def sample_toy2d(
    name: str, n: int, generator: GeneratorLike = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points ``(n, 2)`` of the toy ``name`` (one of :data:`TOY2D`), in about ``[-1, 1]^2``.

    Also returns labels: the component each point came from (ring mode, moon, or square).
    """
    if name not in _TOYS:
        raise InputValueError(f"unknown toy distribution {name!r}: choose one of {TOY2D}")
    if n < 1:
        raise InputValueError(f"n must be positive, got {n}")
    generator = as_generator(generator)
    if isinstance(generator, list):
        raise InputTypeError("toy data take one generator or seed, not a list of them")
    return _TOYS[name](n, generator)


def toy2d(name: str, n: int, generator: GeneratorLike = None) -> TensorDataset:
    """A data set of ``n`` points and labels from :func:`sample_toy2d` (points ``(n, 2)``)."""
    return TensorDataset(*sample_toy2d(name, n, generator))

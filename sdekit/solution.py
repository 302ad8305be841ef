"""The result of a solve."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

STATUS_OK = 0
STATUS_DT_MIN = 1
STATUS_MAX_STEPS = 2


class SolveError(RuntimeError):
    """A solve could not finish: step size below its minimum, step budget spent, or non-finite values."""


@dataclass
class Solution:
    """``ys[i]`` is the state at ``ts[i]``.

    Without ``saveat``, ``ts`` is the 0-d final time and ``ys`` the final state (``y0``'s shape);
    with ``saveat``, ``ts`` has shape ``(len(saveat),)`` and ``ys`` ``(len(saveat), *y0.shape)``.

    ``stats`` holds ``nfe`` (drift plus diffusion evaluations), ``nfe_drift``, ``nfe_diffusion``,
    ``steps`` (attempted), ``accepted`` and ``rejected``: ints for shared-time solves, ``(batch,)``
    tensors for per-sample solves. ``status`` is ``None`` unless a solve with ``throw=False``
    stopped early: then a ``(batch,)`` tensor, 0 = finished, 1 = step size fell below ``dt_min``,
    2 = step budget spent; ``ys`` holds the last accepted states of unfinished samples.
    """

    ts: torch.Tensor
    ys: torch.Tensor
    stats: dict = field(default_factory=dict)
    status: torch.Tensor | None = None

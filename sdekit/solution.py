"""The result of a solve."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch


class Status(enum.IntEnum):
    """Per-sample outcome of a solve, as stored in :attr:`Solution.status`."""

    OK = 0
    DT_MIN = 1  #: the step size fell below the controller's ``dt_min``
    MAX_STEPS = 2  #: the step budget ``max_steps`` was spent


class SolveError(RuntimeError):
    """A solve could not finish: step size below its minimum, step budget spent, or non-finite
    values. ``status``: the :class:`Status` behind it, where one applies (else ``None``);
    ``sample``: the row of the batch that stopped a per-sample or shared solve, where one did
    (else ``None``)."""

    def __init__(self, message: str, status: Status | None = None, *, sample: int | None = None):
        super().__init__(message)
        self.status = status
        self.sample = sample


@dataclass
class Solution:
    """``ys[i]`` is the state at ``ts[i]``.

    ``ys`` has a leading time axis, as in torchsde and diffrax: shape ``(len(ts), *y0.shape)``.
    Without ``saveat``, ``ts`` is ``(t1,)`` and ``ys`` is ``(1, *y0.shape)``, the state at
    ``t1``; with ``saveat``, ``ts`` is the save times (the solve still runs to ``t1``, and
    ``ys[-1]`` is the state at the last save time).

    ``stats`` holds ``nfe`` (drift plus diffusion evaluations), ``nfe_drift``, ``nfe_diffusion``,
    ``steps`` (attempted), ``accepted`` and ``rejected``: ints for shared-time solves, ``(batch,)``
    tensors for per-sample solves. Per-sample solves add two ints for the batch: ``nfe_batch``,
    the calls of the drift and diffusion (each on every row still being stepped), and
    ``nfe_rows``, the rows those calls evaluated (``batch · nfe_batch`` unless
    ``solve(compact=True)`` dropped finished samples; at least ``nfe.sum()``).

    ``status`` and ``t_stopped`` are ``None`` unless a solve with ``throw=False`` stopped early:
    then ``status`` is a ``(batch,)`` tensor of :class:`Status` codes and ``t_stopped`` the time
    each sample reached (``t1`` where it finished); ``ys[-1]`` holds the unfinished samples'
    states at ``t_stopped``, and the save times they did not reach hold NaN.
    """

    ts: torch.Tensor
    ys: torch.Tensor
    stats: dict = field(default_factory=dict)
    status: torch.Tensor | None = None
    t_stopped: torch.Tensor | None = None

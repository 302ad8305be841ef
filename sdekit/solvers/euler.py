"""Euler–Maruyama."""

from __future__ import annotations

import torch

from ..batching import bcast
from .base import AbstractSolver


class Euler(AbstractSolver):
    r"""Euler–Maruyama: :math:`y_{n+1} = y_n + f(t_n, y_n) h + g(t_n, y_n) \Delta W_n`.

    Itô, any noise. Strong order 0.5 (1.0 under additive noise), weak order 1. On an ODE problem
    it is the explicit Euler method (pass an ``ODE`` and ``solver="euler"``).
    """

    strong_order = 0.5
    weak_order = 1.0
    calculus = frozenset({"ito"})
    noise = frozenset({"diagonal", "scalar", "additive", "general"})

    def check(self, problem) -> None:
        if problem.noise is None:
            return
        super().check(problem)

    def step(self, problem, t, y, h, inc, state):
        drift = problem.f(t, y)
        # Fused forms for the common float-step, diagonal-layout case: two kernels instead of four.
        y_drift = y.add(drift, alpha=h) if isinstance(h, float) else y + bcast(h, y) * drift
        if inc is None:
            return y_drift, None, state
        g = problem.g(t, y)
        if problem.layout == "general":
            return y_drift + problem.g_prod(g, inc.dW), None, state
        return torch.addcmul(y_drift, g, inc.dW), None, state

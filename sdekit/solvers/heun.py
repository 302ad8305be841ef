"""Stratonovich Heun-type schemes: stochastic Heun and Euler–Heun."""

from __future__ import annotations

from ..batching import bcast
from .base import AbstractSolver


class Heun(AbstractSolver):
    r"""Stochastic Heun (trapezoidal predictor–corrector) for Stratonovich SDEs.

    .. math::
        \tilde y = y + f(t, y) h + g(t, y) \Delta W, \qquad
        y_{n+1} = y + \tfrac12 \big(f(t, y) + f(t + h, \tilde y)\big) h
                    + \tfrac12 \big(g(t, y) + g(t + h, \tilde y)\big) \Delta W

    Strong order 1.0 for commutative noise (diagonal, scalar, additive), 0.5 for general noise.
    """

    strong_order = 1.0
    weak_order = 1.0
    calculus = frozenset({"stratonovich"})
    noise = frozenset({"diagonal", "scalar", "additive", "general"})
    nfe_drift = 2
    nfe_diffusion = 2

    def check(self, problem) -> None:
        super().check(problem)
        self.strong_order = _strong_order(problem)

    def step(self, problem, t, y, h, inc, state):
        hb = bcast(h, y)
        f0 = problem.f(t, y)
        gdW0 = problem.g_prod(problem.g(t, y), inc.dW)
        y_pred = y + hb * f0 + gdW0
        t1 = t + h
        f1 = problem.f(t1, y_pred)
        gdW1 = problem.g_prod(problem.g(t1, y_pred), inc.dW)
        return y + 0.5 * (hb * (f0 + f1) + gdW0 + gdW1), None, state


class EulerHeun(AbstractSolver):
    r"""Euler–Heun for Stratonovich SDEs: Euler in the drift, Heun in the diffusion.

    .. math::
        \tilde y = y + g(t, y) \Delta W, \qquad
        y_{n+1} = y + f(t, y) h + \tfrac12 \big(g(t, y) + g(t + h, \tilde y)\big) \Delta W

    Strong order 1.0 for commutative noise, 0.5 for general noise; one drift evaluation per step.
    """

    strong_order = 1.0
    weak_order = 1.0
    calculus = frozenset({"stratonovich"})
    noise = frozenset({"diagonal", "scalar", "additive", "general"})
    nfe_drift = 1
    nfe_diffusion = 2

    def check(self, problem) -> None:
        super().check(problem)
        self.strong_order = _strong_order(problem)

    def step(self, problem, t, y, h, inc, state):
        gdW0 = problem.g_prod(problem.g(t, y), inc.dW)
        gdW1 = problem.g_prod(problem.g(t + h, y + gdW0), inc.dW)
        return y + bcast(h, y) * problem.f(t, y) + 0.5 * (gdW0 + gdW1), None, state


def _strong_order(problem) -> float:
    """1 where the noise commutes, 1/2 for general noise (the Lévy areas are left out)."""
    return 0.5 if problem.noise == "general" else 1.0

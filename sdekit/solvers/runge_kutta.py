"""One explicit Runge–Kutta engine, driven by a Butcher tableau."""

from __future__ import annotations

from sdekit.errors import InputTypeError

from ..batching import bcast
from ..tableaux.butcher import (
    BOGACKI_SHAMPINE,
    DORMAND_PRINCE,
    EULER,
    HEUN,
    MIDPOINT,
    RK4,
    ButcherTableau,
)
from .base import AbstractSolver


class ExplicitRungeKutta(AbstractSolver):
    r"""Explicit Runge–Kutta method for ODEs, from any :class:`ButcherTableau`.

    .. math::
        k_i = f\big(t + c_i h,\; y + h \textstyle\sum_{j<i} a_{ij} k_j\big), \qquad
        y_{n+1} = y + h \textstyle\sum_i b_i k_i, \qquad
        e_{n+1} = h \textstyle\sum_i (b_i - \hat b_i) k_i

    First-same-as-last tableaux carry the last stage to the next step (one evaluation saved per
    accepted step). The error estimate scales as :math:`h^{\hat p + 1}` with :math:`\hat p` the
    embedded order.
    """

    def __init__(self, tableau: ButcherTableau):
        if not isinstance(tableau, ButcherTableau):
            raise InputTypeError(f"expected a ButcherTableau, got {type(tableau).__name__}")
        self.tableau = tableau
        self.order = tableau.order
        self.error_order = None if tableau.embedded_order is None else tableau.embedded_order + 1
        self.nfe_drift = tableau.stages - 1 if tableau.fsal else tableau.stages
        self.nfe_diffusion = 0
        self.nfe_init = 1 if tableau.fsal else 0
        # Zero coefficients are skipped: Dormand–Prince has several.
        self._a = [[(j, a) for j, a in enumerate(row) if a != 0] for row in tableau.a]
        self._b = [(j, b) for j, b in enumerate(tableau.b) if b != 0]
        b_error = tableau.b_error
        self._e = None if b_error is None else [(j, e) for j, e in enumerate(b_error) if e != 0]

    @property
    def name(self) -> str:
        return f"ExplicitRungeKutta(order {self.tableau.order})"

    def init(self, problem, t0, y0):
        return problem.f(t0, y0) if self.tableau.fsal else None

    def step(self, problem, t, y, h, inc, state):
        hb = bcast(h, y)
        c = self.tableau.c
        k = [state if self.tableau.fsal else problem.f(t, y)]
        for i in range(1, self.tableau.stages):
            y_i = y + hb * sum(a * k[j] for j, a in self._a[i])
            k.append(problem.f(t + c[i] * h, y_i))
        if self.tableau.fsal:
            y_next = y_i
        else:
            y_next = y + hb * sum(b * k[j] for j, b in self._b)
        error = None if self._e is None else hb * sum(e * k[j] for j, e in self._e)
        return y_next, error, (k[-1] if self.tableau.fsal else None)


def rk_euler() -> ExplicitRungeKutta:
    return ExplicitRungeKutta(EULER)


def rk_heun() -> ExplicitRungeKutta:
    return ExplicitRungeKutta(HEUN)


def midpoint() -> ExplicitRungeKutta:
    return ExplicitRungeKutta(MIDPOINT)


def rk4() -> ExplicitRungeKutta:
    return ExplicitRungeKutta(RK4)


def bosh3() -> ExplicitRungeKutta:
    return ExplicitRungeKutta(BOGACKI_SHAMPINE)


def dopri5() -> ExplicitRungeKutta:
    return ExplicitRungeKutta(DORMAND_PRINCE)

"""The torchsde schemes sdekit's solver library lacks, and torchsde's step-doubling error estimate.

:class:`Midpoint` and :class:`ReversibleHeun` are torchsde's ``"midpoint"`` and
``"reversible_heun"`` in sdekit's solver protocol (``step(problem, t, y, h, inc, state)``); they
are general Stratonovich schemes and can be passed to :func:`sdekit.solve` as instances.
:class:`StepDoubling` gives any fixed-step scheme an error estimate the way torchsde's adaptive
mode does, by comparing one step with two half steps on the same Brownian path.
"""

from __future__ import annotations

import torch

from sdekit.batching import bcast
from sdekit.brownian import CallableBrownian
from sdekit.errors import InputTypeError
from sdekit.solvers import AbstractSolver

_ALL_NOISE = frozenset({"diagonal", "scalar", "additive", "general"})


class Midpoint(AbstractSolver):
    r"""Explicit stochastic midpoint for Stratonovich SDEs (torchsde's ``method="midpoint"``).

    .. math::
        \bar y = y + \tfrac{h}{2} f(t, y) + \tfrac12 g(t, y) \Delta W, \qquad
        y_{n+1} = y + h f(t + \tfrac h2, \bar y) + g(t + \tfrac h2, \bar y) \Delta W

    Strong order 1.0 for commutative noise (diagonal, scalar, additive), 0.5 for general noise;
    torchsde's default for Stratonovich SDEs.
    """

    strong_order = 1.0
    weak_order = 1.0
    calculus = frozenset({"stratonovich"})
    noise = _ALL_NOISE
    nfe_drift = 2
    nfe_diffusion = 2

    def step(self, problem, t, y, h, inc, state):
        half = 0.5 * h
        f0 = problem.f(t, y)
        gdW0 = problem.g_prod(problem.g(t, y), inc.dW)
        t_mid = t + half
        y_mid = y + bcast(half, y) * f0 + 0.5 * gdW0
        f1 = problem.f(t_mid, y_mid)
        gdW1 = problem.g_prod(problem.g(t_mid, y_mid), inc.dW)
        return y + bcast(h, y) * f1 + gdW1, None, state


class ReversibleHeun(AbstractSolver):
    r"""Reversible Heun (Kidger, Foster, Li & Lyons 2021) for Stratonovich SDEs.

    Carries an auxiliary state :math:`z` and the drift and diffusion at :math:`z`:

    .. math::
        z_{n+1} = 2 y_n - z_n + f(t_n, z_n) h + g(t_n, z_n) \Delta W, \\
        y_{n+1} = y_n + \tfrac12 \big(f(t_n, z_n) + f(t_{n+1}, z_{n+1})\big) h
                  + \tfrac12 \big(g(t_n, z_n) + g(t_{n+1}, z_{n+1})\big) \Delta W

    with :math:`z_0 = y_0`. One drift and one diffusion evaluation per step; the step can be
    inverted exactly (algebraic reversibility). Strong order 0.5 (1.0 for additive noise); the
    weak order is not established, so none is declared. Because of :math:`z`, a solve restarted
    at an intermediate time from :math:`y` alone is not the one solve: resume from the state.

    ``initial_state``: ``(f_0, g_0, z_0)`` to start from instead of evaluating at ``y_0``
    (torchsde's ``extra_solver_state``). The state after the last step taken is kept in
    :attr:`last_state` (torchsde returns it with ``extra=True``).
    """

    strong_order = 0.5
    calculus = frozenset({"stratonovich"})
    noise = _ALL_NOISE
    nfe_init = 1

    def __init__(self, initial_state: tuple[torch.Tensor, ...] | None = None):
        self.initial_state = initial_state
        self.last_state: tuple[torch.Tensor, ...] | None = None

    def check(self, problem) -> None:
        super().check(problem)
        self.strong_order = 1.0 if problem.additive else 0.5

    def init(self, problem, t0, y0):
        if self.initial_state is not None:
            return tuple(self.initial_state)
        return problem.f(t0, y0), problem.g(t0, y0), y0

    def step(self, problem, t, y, h, inc, state):
        f0, g0, z0 = state
        hb = bcast(h, y)
        z1 = 2 * y - z0 + f0 * hb + problem.g_prod(g0, inc.dW)
        t1 = t + h
        f1, g1 = problem.f(t1, z1), problem.g(t1, z1)
        y1 = y + (f0 + f1) * (0.5 * hb) + problem.g_prod(g0 + g1, 0.5 * inc.dW)
        self.last_state = (f1, g1, z1)
        return y1, None, self.last_state


class StepDoubling(AbstractSolver):
    """``solver`` with the error estimate of torchsde's adaptive mode: two half steps minus one step.

    The step returns the two-half-step solution and ``y_error = y_two_halves - y_one_step``. The
    Brownian increments of the halves come from ``brownian`` (a torchsde-style path, queried at the
    midpoint ``(t + t_next)/2`` as torchsde does), so the three steps see one path; the loop's
    increment serves the full step. Three steps per attempt. Shared time only.
    """

    def __init__(self, solver: AbstractSolver, brownian: CallableBrownian):
        if not isinstance(solver, AbstractSolver) or not isinstance(brownian, CallableBrownian):
            raise InputTypeError(
                "StepDoubling(solver, brownian): expected an sdekit solver and a CallableBrownian"
            )
        self.solver, self.brownian = solver, brownian
        self.calculus, self.noise, self.levy_area = solver.calculus, solver.noise, solver.levy_area
        self.weak_order, self.nfe_init = solver.weak_order, solver.nfe_init

    @property
    def name(self) -> str:
        return f"{self.solver.name}+step_doubling"

    def check(self, problem) -> None:
        self.solver.check(problem)
        self.strong_order = self.solver.strong_order
        # One step's local error is O(h^(p + 1/2)) for strong order p; so is the difference.
        self.error_order = self.solver.strong_order + 0.5
        self.nfe_drift = 3 * self.solver.nfe_drift
        self.nfe_diffusion = 3 * self.solver.nfe_diffusion

    def init(self, problem, t0, y0):
        return self.solver.init(problem, t0, y0)

    def step(self, problem, t, y, h, inc, state):
        y_full, _, _ = self.solver.step(problem, t, y, h, inc, state)
        # The halves' times in float64, as the full step's increment is queried: in a float32 t
        # their end missed t + h by up to 3e-8, and the path's noise over that gap (about 2e-4)
        # failed every error estimate at torchsde's default atol, down to dt_min.
        start, length = float(t), float(h)
        first = 0.5 * length
        second = length - first
        mid = start + first
        t_mid = torch.as_tensor(mid, dtype=t.dtype, device=t.device) if torch.is_tensor(t) else mid
        y_mid, _, state_mid = self.solver.step(
            problem, t, y, first, self.brownian.increment(start, first), state
        )
        y_two, _, state_two = self.solver.step(
            problem, t_mid, y_mid, second, self.brownian.increment(mid, second), state_mid
        )
        return y_two, y_two - y_full, state_two

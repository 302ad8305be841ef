"""The solver protocol: what a scheme declares, and its one step.

A solver is a small object that advances ``y`` over ``[t, t + h]`` given a Brownian increment. It
declares what it can solve; :meth:`AbstractSolver.check` refuses anything else before the first
step, with a message naming an alternative. Control (accept/reject, the next ``h``) lives in the
controllers, never here.

``step(problem, t, y, h, inc, state) -> (y_next, y_error, state)``:

- ``t``: tensor, 0-d (shared time) or ``(batch,)`` (per-sample time).
- ``h``: a float (fixed steps) or a tensor shaped like ``t``; negative to integrate backward.
  Solvers broadcast it with :func:`sdekit._util.bcast`.
- ``inc``: a :class:`~sdekit.brownian.Increment` (``None`` for ODEs).
- ``y_error``: the embedded error estimate ``y_next - y_lower`` (``None`` without an embedding).
- ``state``: whatever the solver carries between steps (e.g. first-same-as-last drift), from
  ``init``; the loop keeps the old state for samples whose step was rejected.
"""

from __future__ import annotations

import torch

from sdekit.errors import InputValueError

from ..brownian import Increment


class AbstractSolver:
    """Base class. Subclasses set the class attributes and implement :meth:`step`.

    Attributes:
        strong_order: strong order of convergence (``None`` for ODE solvers).
        weak_order: weak order of convergence (``None`` for ODE solvers).
        order: classical order for ODE solvers (``None`` for SDE solvers).
        error_order: the embedded error estimate scales as ``|h|**error_order`` as ``h -> 0``;
            controllers derive their exponents from it. ``None`` when there is no embedded
            estimate (fixed steps only).
        calculus: the calculi it is consistent with.
        noise: the noise kinds it supports (``()`` for ODE solvers).
        levy_area: whether it needs the space-time Lévy area.
        nfe_drift, nfe_diffusion: evaluations of ``f`` and ``g`` per attempted step.
        fixed_steps_only: why the solver, on the problem it last checked, converges only with
            fixed steps despite an error estimate (``None``: adaptive control is fine).
        stage_span: the range of the times at which a step from ``t`` to ``t + h`` evaluates
            the problem, as fractions of ``h`` (``(0, 1)``: within the step).
    """

    strong_order: float | None = None
    weak_order: float | None = None
    order: int | None = None
    error_order: float | None = None
    calculus: frozenset[str] = frozenset()
    noise: frozenset[str] = frozenset()
    levy_area: bool = False
    nfe_drift: int = 1
    nfe_diffusion: int = 1
    nfe_init: int = 0
    fixed_steps_only: str | None = None
    stage_span: tuple[float, float] = (0.0, 1.0)

    @property
    def name(self) -> str:
        return type(self).__name__

    def check(self, problem) -> None:
        """Raise ``ValueError`` if this solver cannot solve ``problem``."""
        if problem.noise is None:
            if self.noise:
                raise InputValueError(
                    f"{self.name} is an SDE solver but the problem is an ODE; use an ODE solver "
                    f"such as 'dopri5' or 'rk4'"
                )
            return
        if not self.noise:
            raise InputValueError(
                f"{self.name} is an ODE solver but the problem is an SDE ({problem.noise} noise); "
                f"use an SDE solver such as 'euler'"
            )
        if problem.calculus not in self.calculus:
            alternative = "'euler' or 'milstein'" if problem.calculus == "ito" else "'heun'"
            raise InputValueError(
                f"{self.name} solves {'/'.join(sorted(self.calculus))} SDEs but the problem is "
                f"{problem.calculus}; use {alternative}, or convert the problem "
                f"(sdekit.to_{'stratonovich' if problem.calculus == 'ito' else 'ito'}(problem))"
            )
        if problem.noise not in self.noise:
            raise InputValueError(
                f"{self.name} supports {', '.join(sorted(self.noise))} noise but the problem has "
                f"{problem.noise} noise; use 'euler' (any noise), or 'euler_heun' for Stratonovich"
            )

    def init(self, problem, t0: torch.Tensor, y0: torch.Tensor):
        """Solver state carried between steps (``None`` unless the solver needs one)."""
        return None

    def for_fixed_steps(self) -> AbstractSolver:
        """The solver a fixed-step solve runs, whose error estimate nothing reads: ``self``, or
        a copy that leaves out work done for the estimate only (the same ``y_next``)."""
        return self

    def step(self, problem, t, y, h, inc: Increment | None, state):
        raise NotImplementedError

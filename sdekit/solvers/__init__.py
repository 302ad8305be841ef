"""Solvers: small stepping objects, resolved from names per problem kind."""

from __future__ import annotations

from sdekit.errors import InputTypeError, InputValueError

from .base import AbstractSolver
from .corrected import Corrected
from .euler import Euler
from .heun import EulerHeun, Heun
from .improved_euler import ImprovedEuler
from .milstein import Milstein
from .runge_kutta import ExplicitRungeKutta, bosh3, dopri5, midpoint, rk4, rk_euler, rk_heun
from .srk import SRA, SRI, SRK_SOLVERS

SDE_SOLVERS = {
    "euler": Euler,
    "milstein": Milstein,
    "heun": Heun,
    "euler_heun": EulerHeun,
    "improved_euler": ImprovedEuler,
    **SRK_SOLVERS,
}

ODE_SOLVERS = {
    "euler": rk_euler,
    "heun": rk_heun,
    "midpoint": midpoint,
    "rk4": rk4,
    "bosh3": bosh3,
    "dopri5": dopri5,
}


def resolve_solver(solver, problem) -> AbstractSolver:
    """An :class:`AbstractSolver` for ``solver`` (a name or an instance), checked against ``problem``."""
    if isinstance(solver, str):
        table = ODE_SOLVERS if problem.noise is None else SDE_SOLVERS
        if solver not in table:
            other = SDE_SOLVERS if problem.noise is None else ODE_SOLVERS
            kind = "ODE" if problem.noise is None else "SDE"
            hint = (
                f" ('{solver}' is for {'SDEs' if kind == 'ODE' else 'ODEs'})"
                if solver in other
                else ""
            )
            raise InputValueError(
                f"unknown {kind} solver {solver!r}{hint}; known {kind} solvers: {', '.join(table)}"
            )
        solver = table[solver]()
    elif isinstance(solver, type) and issubclass(solver, AbstractSolver):
        solver = solver()
    if not isinstance(solver, AbstractSolver):
        raise InputTypeError(
            f"solver must be a name or an sdekit solver instance, got {type(solver).__name__}"
        )
    solver.check(problem)
    return solver


__all__ = [
    "AbstractSolver",
    "Corrected",
    "Euler",
    "EulerHeun",
    "ExplicitRungeKutta",
    "Heun",
    "ImprovedEuler",
    "Milstein",
    "ODE_SOLVERS",
    "SDE_SOLVERS",
    "SRA",
    "SRI",
    "SRK_SOLVERS",
    "resolve_solver",
]

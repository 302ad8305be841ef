"""A solver whose every step is followed by corrector moves: predictor–corrector as a solver."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sdekit.errors import InputTypeError, InputValueError

from .base import AbstractSolver


class Corrected(AbstractSolver):
    """``solver``'s step over ``[t, t + h]``, then ``moves`` applications of
    ``y ← corrector(t + h, y)``.

    The corrector is typically an MCMC kernel that leaves the distribution at time ``t + h``
    invariant, such as the Langevin corrector of Song et al. (2021)'s predictor–corrector
    samplers; it draws its own randomness. Each move counts as ``nfe_per_move`` drift evaluations
    in the solve's statistics. Fixed steps only: the moves are not part of any error estimate,
    so an adaptive controller could not judge them.
    """

    error_order = None

    def __init__(
        self,
        solver: AbstractSolver,
        corrector: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        moves: int = 1,
        *,
        nfe_per_move: int = 1,
    ):
        if not isinstance(solver, AbstractSolver):
            raise InputTypeError(f"solver must be an sdekit solver instance, got {solver!r}")
        if not callable(corrector):
            raise InputTypeError(f"corrector must be callable(t, y) -> y, got {corrector!r}")
        for name, value in (("moves", moves), ("nfe_per_move", nfe_per_move)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputValueError(f"{name}={value!r}: must be a non-negative int")
        self.solver, self.corrector, self.moves = solver, corrector, moves
        self.calculus, self.noise, self.levy_area = solver.calculus, solver.noise, solver.levy_area
        self.nfe_drift = solver.nfe_drift + moves * nfe_per_move
        self.nfe_diffusion, self.nfe_init = solver.nfe_diffusion, solver.nfe_init

    @property
    def name(self) -> str:
        return f"{self.solver.name}+corrector"

    def check(self, problem) -> None:
        self.solver.check(problem)

    def init(self, problem, t0, y0):
        return self.solver.init(problem, t0, y0)

    def step(self, problem, t, y, h, inc, state):
        y, _, state = self.solver.step(problem, t, y, h, inc, state)
        t_end = t + h
        for _ in range(self.moves):
            y = self.corrector(t_end, y)
        return y, None, state

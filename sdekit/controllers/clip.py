"""A wrapper that bounds another controller's steps and makes them land on given times."""

from __future__ import annotations

import math

import torch

from sdekit.errors import InputTypeError, InputValueError

from .base import AbstractStepSizeController, check_times


class ClipStepSize(AbstractStepSizeController):
    """``controller`` with steps of at most ``dt_max``, a floor ``dt_min`` and steps that land
    on ``jump_ts`` and ``step_ts``.

    ``dt_max`` clips every proposed step. ``dt_min`` is not a clip: a sample whose step is
    rejected and would shrink below it ends the solve with a
    :class:`~sdekit.errors.SolveError` (with ``throw=False``, that sample stops with status
    ``DT_MIN``), so a step is never accepted with an error above the tolerance.

    ``jump_ts`` are times where the problem changes abruptly (a drift switched on, a dose
    given): no step straddles one, and a solver that carries state across steps (first same as
    last) starts afresh after landing there. ``step_ts`` are times every step lands on too,
    without that restart: a grid no step straddles, which bounds the steps where a bound in
    ``t`` alone does not fit (e.g. a grid uniform in another variable of time, as the
    ``adaptive`` score sampler's log-SNR grid). Bounds combine with the wrapped controller's own:
    the tighter wins.
    """

    def __init__(
        self,
        controller: AbstractStepSizeController,
        *,
        dt_min: float = 0.0,
        dt_max: float = math.inf,
        jump_ts=(),
        step_ts=(),
    ):
        if not isinstance(controller, AbstractStepSizeController) or not controller.adaptive:
            raise InputTypeError(
                f"ClipStepSize wraps an adaptive controller (IController, PIController, "
                f"PIDController), got {controller!r}; for fixed steps put the times in "
                f"StepTo(ts) instead"
            )
        if not 0 <= dt_min < dt_max:
            raise InputValueError(f"dt_min={dt_min}, dt_max={dt_max}: need 0 <= dt_min < dt_max")
        self.controller = controller
        self.per_sample = controller.per_sample
        self.host_decisions = controller.host_decisions
        self.dt_min = max(dt_min, controller.dt_min)
        self.dt_max = dt_max
        self.stops = tuple(sorted(set(controller.stops) | set(check_times(jump_ts, "jump_ts"))))
        self.jump_ts = self.stops
        landings = set(controller.step_ts) | set(check_times(step_ts, "step_ts"))
        self.step_ts = tuple(sorted(landings - set(self.stops)))

    def __repr__(self) -> str:
        return (
            f"ClipStepSize({self.controller!r}, dt_min={self.dt_min}, dt_max={self.dt_max}, "
            f"jump_ts={list(self.jump_ts)}, step_ts={list(self.step_ts)})"
        )

    def init(self, solver, y0: torch.Tensor, t0: float, t1: float, dt0: float | None):
        h, state = self.controller.init(solver, y0, t0, t1, dt0)
        return h.clamp(max=self.dt_max), state

    def adapt(self, y, y_next, y_error, h_abs: torch.Tensor, state):
        accept, h_next, state = self.controller.adapt(y, y_next, y_error, h_abs, state)
        return accept, h_next.clamp(max=self.dt_max), state

    def init_host(self, solver, y0: torch.Tensor, t0: float, t1: float, dt0: float | None):
        h, state = self.controller.init_host(solver, y0, t0, t1, dt0)
        return min(h, self.dt_max), state

    def adapt_host(self, y, y_next, y_error, h_abs: float, state, err: float | None = None):
        accept, h_next, state = self.controller.adapt_host(y, y_next, y_error, h_abs, state, err)
        return accept, min(h_next, self.dt_max), state

    @property
    def error(self):
        """The wrapped controller's error norm; absent (``AttributeError``) where that controller
        has none, so that a solve falls back as it does for the wrapped one."""
        return self.controller.error

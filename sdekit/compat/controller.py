"""torchsde's adaptive step-size rule as an sdekit controller, so that its tolerances keep their meaning."""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch

from sdekit.controllers import AbstractStepSizeController
from sdekit.solution import SolveError

SAFETY, FACTOR_MIN, FACTOR_MAX, EPS = 0.9, 0.2, 1.4, 1e-7


class _State(NamedTuple):
    ratio_prev: float  # safety / E of the last accepted step; NaN: none yet


class TorchsdeController(AbstractStepSizeController):
    r"""The step-size control of ``torchsde.sdeint(adaptive=True)``, one decision for the batch.

    Error: the root mean square over every element of the batch of
    :math:`(y_{\rm next} - y_{\rm low}) / \max(\varepsilon, r \max(|y_{\rm next}|, |y_{\rm low}|) + a)`
    with :math:`y_{\rm low} = y_{\rm next} - y_{\rm error}` (for step doubling, the one-step
    solution) and :math:`\varepsilon = 10^{-7}`, floored at :math:`\varepsilon`. With
    :math:`\rho = 0.9/E` the step is multiplied by
    :math:`\rho^{1/4.5} (\rho/\rho_{\rm prev})^{0.13}` clipped to :math:`[1, 1.4]` when
    :math:`E \le 1` (accepted), and by :math:`\rho^{1/1.5}` clipped to :math:`[0.2, 1.4]` when
    rejected; :math:`\rho_{\rm prev}` is that of the last accepted step. A step that would fall
    below ``dt_min`` is set to ``dt_min`` with a warning, and a step of ``dt_min`` is accepted
    whatever its error (torchsde's behaviour; the solve never stops there). A non-finite error is a
    :class:`~sdekit.SolveError` (torchsde: an assertion). One host read per step, as in torchsde.
    """

    host_decisions = True

    def __init__(self, rtol: float, atol: float, dt_min: float):
        self.rtol, self.atol, self.h_min = float(rtol), float(atol), float(dt_min)

    def __repr__(self) -> str:
        return f"TorchsdeController(rtol={self.rtol}, atol={self.atol}, dt_min={self.h_min})"

    def init(self, solver, y0: torch.Tensor, t0: float, t1: float, dt0: float | None):
        h0, state = self.init_host(solver, y0, t0, t1, dt0)
        return torch.tensor(h0, dtype=y0.dtype, device=y0.device), state

    def adapt(self, y, y_next, y_error, h_abs: torch.Tensor, state: _State):
        accept, h_next, state = self.adapt_host(y, y_next, y_error, float(h_abs), state)
        return torch.tensor(accept, device=y.device), h_abs.new_tensor(h_next), state

    def init_host(self, solver, y0: torch.Tensor, t0: float, t1: float, dt0: float | None):
        return (dt0 if dt0 is not None else abs(t1 - t0) / 100), _State(math.nan)

    def adapt_host(self, y, y_next, y_error, h_abs: float, state: _State, err=None):
        # err: never given, as this controller has no per-sample `error` for a compiled attempt
        low = y_next - y_error
        scale = (self.rtol * torch.maximum(low.abs(), y_next.abs()) + self.atol).clamp_min(EPS)
        err = max(float((y_error / scale).square().mean().sqrt().detach()), EPS)
        if not math.isfinite(err):
            raise SolveError(
                f"the error estimate is not finite at |h|={h_abs:.3g}: the solution blew up; "
                f"reduce dt, tighten rtol/atol, or regularise the dynamics"
            )
        small = err <= 1
        ratio = SAFETY / err
        ratio_prev = ratio if math.isnan(state.ratio_prev) else state.ratio_prev
        if small:
            factor = max(ratio ** (1 / 4.5) * (ratio / ratio_prev) ** 0.13, 1.0)
            ratio_prev = ratio
        else:
            factor = max(ratio ** (1 / 1.5), FACTOR_MIN)
        h_next = h_abs * min(factor, FACTOR_MAX)
        if h_next < self.h_min:
            warnings.warn(
                "Hitting minimum allowed step size in adaptive time-stepping.", stacklevel=2
            )
            h_next, ratio_prev = self.h_min, math.nan
        return small or h_next <= self.h_min, h_next, _State(ratio_prev)

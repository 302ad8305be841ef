"""Step-size controllers: from an error estimate to (accept, next step size).

A controller never steps. Given the current state, the proposed state and the solver's embedded
error estimate it returns whether to accept and the next ``|h|``. All work happens on tensors: the
error is a per-sample tensor, and with ``per_sample=False`` the batch takes one decision from its
worst sample. No host synchronisation happens here.

Error norm. With the scale :math:`\\delta = a + r\\max(|y_{\\rm ref}|, |y_{\\rm cand}|)`
(``combine="sum"``, the usual mixed tolerance) or :math:`\\max(a, r\\max(\\ldots))`
(``combine="max"``, the Gotta Go Fast paper's form), the scaled error of one sample is

.. math::
    E = \\sqrt{\\tfrac1n \\textstyle\\sum_i (e_i/\\delta_i)^2} \\quad (\\text{norm}=\\text{"rms"})
    \\qquad\\text{or}\\qquad E = \\max_i |e_i|/\\delta_i \\quad (\\text{norm}=\\text{"max"}),

accepted iff :math:`E \\le 1` and everything is finite. ``y_ref`` is the current state
(``reference="current"``) or the previous attempt's candidate (``"previous_proposal"``, the
paper's variant: the candidate of the last accepted step); ``y_cand`` is the returned solution (``candidate="solution"``) or the embedded
lower-order one, ``y_next - error`` (``candidate="embedded"``; this needs a signed
estimate ``error = y_next - y_embedded``, as the improved-Euler and Runge–Kutta pairs give).

Step-size update (Söderlind 2003; parametrised as diffrax's ``PIDController``). With
:math:`k` = the solver's ``error_order`` (or ``1/exponent``) and :math:`\\varepsilon_n = 1/E_n`:

.. math::
    h_{n+1} = h_n \\cdot \\mathrm{clip}\\big(s\\,\\varepsilon_n^{\\beta_1}\\varepsilon_{n-1}^{\\beta_2}
              \\varepsilon_{n-2}^{\\beta_3}, f_{\\min}, f_{\\max}\\big),\\quad
    \\beta_1 = \\tfrac{p+i+d}{k},\\ \\beta_2 = -\\tfrac{p+2d}{k},\\ \\beta_3 = \\tfrac{d}{k}

After a rejection the step never grows and the memory of past errors does not move (it moves only
on acceptance). ``rejection="integral"`` (default) uses the integral term alone,
:math:`h \\leftarrow h\\,\\min(1, s\\,\\varepsilon_n^{i/k})`; ``rejection="elementary"`` the
elementary controller, :math:`h \\leftarrow h\\,\\min(1, s\\,\\varepsilon_n^{1/k})`, Gustafsson's
(1991) restart after a rejection: the error just measured is the best predictor there, and with a
PI controller's small integral gain (:math:`i/k = 0.2` for Hairer's coefficients and
:math:`k = 1.5`) an error of 3 shrinks the step by only 0.72, so an abrupt feature costs several
rejections in a row. Both are clipped to ``factor_min``; for an I controller
(:math:`i = 1`) they coincide. A non-finite error is a rejection with ``h`` quartered.

Start-up from a probe step (only when ``solve`` is given no ``dt``). The first step,
:math:`h_0 = \\min(|t_1 - t_0|/100, dt_{\\max})`, is a probe: the step after its acceptance is the
one the error model :math:`E \\propto h^k` predicts to give the error the controller settles at
when the error constant does not change (:math:`s\\,\\varepsilon^{i/k} = 1`, i.e.
:math:`E_\\infty = s^{k/i}`),

.. math::
    h_1 = h_0 \\cdot \\mathrm{clip}\\big(s^{1/i}\\,\\varepsilon_0^{1/k}, f_{\\min}, f_{\\max}\\big),

and the memory :math:`\\varepsilon_{n-1}, \\varepsilon_{n-2}` starts at the value the model predicts
for :math:`h_1` (:math:`\\varepsilon_0 (h_0/h_1)^k`), so the proportional and derivative terms see
no trend at the next step. Without this, the memory starts at 1, a PI controller grows from a
small first step by :math:`s\\,\\varepsilon_0^{0.7/k}` only, and its proportional term then
halves the next step for the error drop it sees (on ``bench/adaptive.py``'s geometric Brownian
motion at tolerance 3e-2: steps 0.010, 0.067, 0.034, 0.070, ... towards 0.08–0.10). A rejected
probe shrinks as any rejected step and the next accepted one plays its part. For an I controller
this is its ordinary step (no memory, :math:`s^{1/i} = s`): nothing changes. Given ``dt``, the
controller runs as before (the score samplers give their PI controllers a first step). A
Hairer–Wanner initial step from the magnitudes of ``f`` and ``g`` would save the probe's
evaluations but needs the problem, which :meth:`init` does not receive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sdekit.batching import bcast
from sdekit.checks import one_of
from sdekit.errors import InputTypeError, InputValueError

from .base import AbstractStepSizeController

NORMS = ("rms", "max")
COMBINES = ("sum", "max")
REFERENCES = ("current", "previous_proposal")
CANDIDATES = ("solution", "embedded")
REJECTIONS = ("integral", "elementary")
NONFINITE_FACTOR = 0.25
# A rejected step shrinks by at least this factor, whatever `safety`: with one Brownian path a
# retry sees the same noise, and safety = 1 shrank steps by a fraction of a percent per attempt
# (an OU solve took 2000 attempts for 7 accepted steps).
REJECT_FACTOR_MAX = 0.9


@dataclass
class ControllerState:
    inv_err_prev: torch.Tensor
    inv_err_prev2: torch.Tensor
    reference: torch.Tensor | None
    # Whether the step being attempted is (still) the start-up probe; None when dt was given.
    probing: torch.Tensor | None = None


class PIDController(AbstractStepSizeController):
    """Adaptive step-size control with proportional, integral and derivative terms.

    Args:
        rtol, atol: relative and absolute tolerances (floats, or tensors broadcastable to ``y``).
        pcoeff, icoeff, dcoeff: Söderlind's coefficients (see the module docstring).
        exponent: override ``1/k``, e.g. ``0.9`` for the Gotta Go Fast sampler's ``r``.
        norm: ``"rms"`` (root mean square over a sample's elements) or ``"max"``.
        combine: ``"sum"`` (``atol + rtol|y|``) or ``"max"`` (``max(atol, rtol|y|)``).
        reference, candidate: which states set the tolerance scale (module docstring).
        safety: factor ``s`` applied to every proposed step (a rejected one shrinks by at
            least 0.9 whatever ``s``).
        factor_min, factor_max: bounds on ``h_{n+1}/h_n`` (the start-up step's included).
        rejection: ``"integral"`` or ``"elementary"``, the step after a rejection (module
            docstring).
        dt_min: a rejected step whose next ``|h|`` would fall below ``dt_min`` ends the solve for
            that sample with an error. ``dt_max`` caps ``|h|``.
        per_sample: one step size, decision and memory per sample (``t`` reaches the problem as a
            ``(batch,)`` tensor), instead of one for the batch set by its worst sample.
    """

    host_decisions = True

    def __init__(
        self,
        rtol: float = 1e-3,
        atol: float = 1e-6,
        *,
        pcoeff: float = 0.0,
        icoeff: float = 1.0,
        dcoeff: float = 0.0,
        exponent: float | None = None,
        norm: str = "rms",
        combine: str = "sum",
        reference: str = "current",
        candidate: str = "solution",
        safety: float = 0.9,
        factor_min: float = 0.2,
        factor_max: float = 10.0,
        rejection: str = "integral",
        dt_min: float = 0.0,
        dt_max: float = math.inf,
        per_sample: bool = False,
    ):
        for name, value in (("rtol", rtol), ("atol", atol)):
            if isinstance(value, torch.Tensor):
                if not value.is_floating_point():
                    raise InputTypeError(
                        f"{name}: a tensor tolerance must be floating, got {value.dtype}"
                    )
                bad = not bool(torch.isfinite(value).all() and (value >= 0).all())
            else:
                bad = not (value >= 0 and math.isfinite(value))
            if bad:
                raise InputValueError(f"{name}={value!r}: must be finite and non-negative")
        if not bool((torch.as_tensor(rtol) + torch.as_tensor(atol) > 0).all()):
            raise InputValueError(
                "rtol and atol are both 0 (for some element, where tensors): give at least one "
                "positive tolerance for every element"
            )
        if exponent is not None and not exponent > 0:
            raise InputValueError(f"exponent={exponent!r}: must be positive")
        if not 0 < safety <= 1:
            raise InputValueError(f"safety={safety!r}: must be in (0, 1]")
        if not 0 <= factor_min < 1 < factor_max:
            raise InputValueError(
                f"factor_min={factor_min}, factor_max={factor_max}: need 0 <= factor_min < 1 < factor_max"
            )
        if not 0 <= dt_min < dt_max:
            raise InputValueError(f"dt_min={dt_min}, dt_max={dt_max}: need 0 <= dt_min < dt_max")
        self.rtol, self.atol = rtol, atol
        self._tolerances = (rtol, atol)  # in the state's dtype and device once a solve starts
        self.pcoeff, self.icoeff, self.dcoeff = pcoeff, icoeff, dcoeff
        self.exponent = exponent
        self.norm = one_of("norm", norm, NORMS)
        self.combine = one_of("combine", combine, COMBINES)
        self.reference = one_of("reference", reference, REFERENCES)
        self.candidate = one_of("candidate", candidate, CANDIDATES)
        self.rejection = one_of("rejection", rejection, REJECTIONS)
        self.safety = safety
        self.factor_min, self.factor_max = factor_min, factor_max
        self.dt_min, self.dt_max = dt_min, dt_max
        self.per_sample = per_sample

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(rtol={self.rtol}, atol={self.atol}, "
            f"pid=({self.pcoeff}, {self.icoeff}, {self.dcoeff}), per_sample={self.per_sample})"
        )

    def init(self, solver, y0: torch.Tensor, t0: float, t1: float, dt0: float | None):
        """Initial ``|h|`` (a tensor of the decision's shape; ``dt0``, or without it the start-up
        probe ``|t1 − t0|/100``, at most ``dt_max``) and controller state."""
        self._prepare_tolerances(y0)
        h0 = self._start(solver, t0, t1, dt0)
        shape = (y0.shape[0],) if self.per_sample else ()
        ones = torch.ones(shape, dtype=y0.dtype, device=y0.device)
        reference = y0.abs() if self.reference == "previous_proposal" else None
        probing = torch.ones(shape, dtype=torch.bool, device=y0.device) if dt0 is None else None
        return ones * h0, ControllerState(ones, ones, reference, probing)

    def init_host(self, solver, y0: torch.Tensor, t0: float, t1: float, dt0: float | None):
        """:meth:`init` for one decision per batch taken on the host: ``|h|`` and the memory
        are Python floats."""
        self._prepare_tolerances(y0)
        h0 = self._start(solver, t0, t1, dt0)
        reference = y0.abs() if self.reference == "previous_proposal" else None
        return h0, ControllerState(1.0, 1.0, reference, True if dt0 is None else None)

    def _prepare_tolerances(self, y0: torch.Tensor) -> None:
        """The tolerances in the state's dtype and device, as the error norm reads them (a CPU
        tolerance for a CUDA state); a tensor one must broadcast to the state's shape without
        changing it."""
        self._tolerances = tuple(
            v.to(dtype=y0.dtype, device=y0.device) if isinstance(v, torch.Tensor) else v
            for v in (self.rtol, self.atol)
        )
        for name, value in (("rtol", self.rtol), ("atol", self.atol)):
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                continue
            try:
                fits = torch.broadcast_shapes(value.shape, y0.shape) == y0.shape
            except RuntimeError:
                fits = False
            if not fits:
                raise InputValueError(
                    f"{name} of shape {tuple(value.shape)} does not broadcast to the state's shape "
                    f"{tuple(y0.shape)}: tensors broadcast against its trailing dimensions (one "
                    f"per element of the event: shape {tuple(y0.shape[1:])}); for one tolerance "
                    f"per sample give shape ({y0.shape[0]}{', 1' * (y0.dim() - 1)})"
                )

    def _start(self, solver, t0: float, t1: float, dt0: float | None) -> float:
        """The exponents for ``solver``, and the first ``|h|``."""
        k = solver.error_order if self.exponent is None else 1 / self.exponent
        self._k = k
        self._beta = (
            (self.pcoeff + self.icoeff + self.dcoeff) / k,
            -(self.pcoeff + 2 * self.dcoeff) / k,
            self.dcoeff / k,
        )
        self._beta_reject = (self.icoeff if self.rejection == "integral" else 1.0) / k
        # s^(1/i): the start-up step aims at the error E = s^(k/i) the controller settles at.
        self._settle = self.safety ** (1 / self.icoeff) if self.icoeff > 0 else self.safety
        h0 = dt0 if dt0 is not None else abs(t1 - t0) / 100
        return min(h0, self.dt_max)

    def error(self, y, y_next, y_error, state: ControllerState) -> torch.Tensor:
        """Scaled error ``E`` per sample, ``(batch,)``; non-finite values give ``inf``."""
        ref = y.abs() if state.reference is None else state.reference
        cand = (y_next - y_error if self.candidate == "embedded" else y_next).abs()
        rtol, atol = self._tolerances
        # In place only where autograd keeps no operand: the errors may carry a graph.
        scale = torch.maximum(ref, cand).mul_(rtol)
        scale = scale.add_(atol) if self.combine == "sum" else scale.clamp(min=atol)
        # + 0·y_next, NaN exactly where y_next is not finite: a non-finite state is rejected.
        ratio = torch.div(y_error, scale).add_(y_next, alpha=0).flatten(1)
        if self.norm == "rms":
            err = torch.linalg.vector_norm(ratio, dim=1) * ratio.shape[1] ** -0.5
        else:
            err = ratio.abs().amax(1)
        return torch.nan_to_num(err, nan=math.inf, posinf=math.inf)

    def adapt(self, y, y_next, y_error, h_abs: torch.Tensor, state: ControllerState):
        """``(accept, next |h|, state)`` for a step of size ``h_abs`` with estimate ``y_error``."""
        err = self.error(y, y_next, y_error, state)
        if not self.per_sample:
            err = err.max()
        accept = err <= 1
        inv_err = 1 / err.clamp(min=1e-10)  # a zero error would give an infinite factor
        b1, b2, b3 = self._beta
        factor = self.safety * inv_err**b1
        if b2:
            factor = factor * state.inv_err_prev**b2
        if b3:
            factor = factor * state.inv_err_prev2**b3
        factor = factor.clamp(self.factor_min, self.factor_max)
        inv_prev = torch.where(accept, inv_err, state.inv_err_prev)
        inv_prev2 = torch.where(accept, state.inv_err_prev, state.inv_err_prev2)
        probing = state.probing
        if probing is not None:  # start-up from the probe (module docstring)
            start = probing & accept & (h_abs > 0)  # a zero-length step measured nothing
            start_factor = (self._settle * inv_err ** (1 / self._k)).clamp(
                self.factor_min, self.factor_max
            )
            factor = torch.where(start, start_factor, factor)
            predicted = inv_err * start_factor ** (-self._k)  # 1/E the model predicts for h_1
            inv_prev = torch.where(start, predicted, inv_prev)
            inv_prev2 = torch.where(start, predicted, inv_prev2)
            probing = probing & ~start
        reject_factor = (self.safety * inv_err**self._beta_reject).clamp(
            self.factor_min, REJECT_FACTOR_MAX
        )
        reject_factor = torch.where(torch.isfinite(err), reject_factor, NONFINITE_FACTOR)
        h_next = h_abs * torch.where(accept, factor, reject_factor)
        h_next = h_next.clamp(max=self.dt_max)
        reference = state.reference
        if reference is not None:  # the last accepted proposal, as in the authors' code
            proposal = y_next - y_error if self.candidate == "embedded" else y_next
            reference = torch.where(bcast(accept, y), proposal.abs(), reference)
        return accept, h_next, ControllerState(inv_prev, inv_prev2, reference, probing)

    def adapt_host(
        self, y, y_next, y_error, h_abs: float, state: ControllerState, err: float | None = None
    ):
        """:meth:`adapt` for one decision per batch, on the host: the batch's error (the largest
        of :meth:`error`'s, unless given as ``err``) is read once, the solve's one
        synchronisation per attempt, and the rest is arithmetic on Python floats, the same as
        :meth:`adapt`'s. ``(accept: bool, next |h|: float, state)``."""
        if err is None:
            err = float(self.error(y, y_next, y_error, state).max().detach())
        accept = err <= 1
        inv_err = 1 / max(err, 1e-10)
        inv_prev, inv_prev2, probing = state.inv_err_prev, state.inv_err_prev2, state.probing
        if accept and probing and h_abs > 0:  # start-up from the probe
            factor = _clip(
                self._settle * inv_err ** (1 / self._k), self.factor_min, self.factor_max
            )
            inv_prev = inv_prev2 = inv_err * factor ** (-self._k)
            probing = False
        elif accept:
            b1, b2, b3 = self._beta
            factor = self.safety * inv_err**b1 * inv_prev**b2 * inv_prev2**b3
            factor = _clip(factor, self.factor_min, self.factor_max)
            inv_prev, inv_prev2 = inv_err, inv_prev
        elif math.isfinite(err):
            factor = _clip(
                self.safety * inv_err**self._beta_reject, self.factor_min, REJECT_FACTOR_MAX
            )
        else:
            factor = NONFINITE_FACTOR
        reference = state.reference
        if accept and reference is not None:
            reference = (y_next - y_error if self.candidate == "embedded" else y_next).abs()
        h_next = min(h_abs * factor, self.dt_max)
        return accept, h_next, ControllerState(inv_prev, inv_prev2, reference, probing)


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


class IController(PIDController):
    """Integral (elementary) control: :math:`h_{n+1} = h_n\\, s\\, E_n^{-1/k}`."""

    def __init__(self, rtol: float = 1e-3, atol: float = 1e-6, **kwargs):
        super().__init__(rtol, atol, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, **kwargs)


class PIController(PIDController):
    """Proportional–integral control; the defaults ``(0.4, 0.3)`` give Hairer's ``β = (0.7, 0.4)/k``."""

    def __init__(
        self,
        rtol: float = 1e-3,
        atol: float = 1e-6,
        *,
        pcoeff: float = 0.4,
        icoeff: float = 0.3,
        **kwargs,
    ):
        super().__init__(rtol, atol, pcoeff=pcoeff, icoeff=icoeff, dcoeff=0.0, **kwargs)

r"""Stochastic Runge–Kutta: one engine for Rößler's SRI and SRA families.

A scheme is a tableau (:mod:`sdekit.tableaux.stochastic`) plus its family, :class:`SRI` or
:class:`SRA`; both step with the engine they share and declare only what differs (diffusion
stages, noise terms, accepted problems). The named schemes at the bottom are just that pairing
with a docstring.

**Iterated integrals.** From the increment :math:`\Delta W` and the space-time Lévy area :math:`H`
(:class:`~sdekit.brownian.Increment`, variance :math:`|h|/12`), component-wise:

.. math::
    I_{(1)} = \Delta W,\quad \frac{I_{(1,0)}}{h} = \frac{\Delta W}{2} + H,\quad
    I_{(1,1)} = \tfrac12(\Delta W^2 - |h|),\quad
    I_{(1,1,1)} = \tfrac16(\Delta W^3 - 3|h|\,\Delta W).

**Backward steps** (:math:`h < 0`) are the scheme applied to the time-reversed problem
:math:`s = -t`, with drift :math:`-f`, step :math:`|h|` and the increments as given
(:math:`\Delta W = W(t+h) - W(t)`, variance :math:`|h|`; :math:`H` unchanged by reversal, see
:class:`~sdekit.brownian.CallableBrownian`). That is the reverse-time Itô convention of
score-based samplers; in the formulas above it means :math:`|h|` wherever the step enters as a
variance (:math:`\sqrt{|h|}`, :math:`I_{(1,1)}`, :math:`I_{(1,1,1)}/|h|`) and signed :math:`h`
where it multiplies the drift or sets a stage time. :math:`I_{(1,0)}/h` is
:math:`\Delta W/2 + H` in both directions.

**Evaluations.** Each stage's drift and diffusion are evaluated at most once per step; a stage
whose value is never used is skipped, and a stage that repeats an earlier one (same stage row,
same time node) reuses it. So an ``s``-stage tableau costs at most ``s`` drift and ``s`` diffusion
evaluations (SRI1W1 costs 2 drift + 4 diffusion: its stages 3 and 4 have zero drift weight and
stage 3 repeats stage 1). ``nfe_drift``/``nfe_diffusion`` report the exact counts.

**Error estimate** (Rackauckas & Nie 2017, natural embedding). The stages also give a strong order
1.0 method: drift weights :math:`\hat\alpha` (the tableau's ``alpha_embedded``, by default the
Euler drift) and the noise terms without the order-1.5 integrals. The difference splits into a
deterministic and a stochastic part,

.. math::
    E_D = h \sum_i (\alpha_i - \hat\alpha_i) f_i, \qquad
    E_N = \sum_i \Big(\beta^{(3)}_i \frac{I_{(1,0)}}{h}
          + \beta^{(4)}_i \frac{I_{(1,1,1)}}{|h|}\Big) g_i \ \ \text{(SRI)},\qquad
    E_N = \sum_i \beta^{(2)}_i \frac{I_{(1,0)}}{h}\, g_i \ \ \text{(SRA)},

and ``y_error`` is the **magnitude** :math:`\delta|E_D| + |E_N|` (component-wise, non-negative;
the controller scales it by ``atol + rtol|y|``), Rackauckas & Nie's :math:`\delta E_D + E_N`
with magnitudes: the two parts can cancel (for geometric Brownian motion the leading terms of
:math:`E_D + E_N` cancel exactly), which would make a signed estimate over-optimistic. ``delta``
weighs the deterministic part: 1 by default, 1/6 for :func:`sriw1` (StochasticDiffEq.jl's
defaults) and 1/3 for :func:`sosri`. For multiplicative noise :math:`E_D` is mostly noise: the
drift stages see the increment through :math:`(I_{(1,0)}/h) \sum_j B^{(0)}_{ij} g_j`, so
:math:`E_D` has a random part of order :math:`|h|^{3/2}`, the order of the whole estimate, around
a mean of order :math:`h^2`. One SOSRI step of geometric Brownian motion from a fixed start has
an estimate that varies by 34% (coefficient of variation over the increments) with
:math:`\delta = 1`, against 8% for SRIW1 with 1/6 and none with 0; a noisy estimate rejects
steps for their noise, at the cost of evaluations and of the bias described below for the noise
part. On ``bench/adaptive.py`` (per-sample PI, module :mod:`sdekit.controllers.pid`'s start-up
and ``rejection="elementary"``, seed 7) SOSRI cost 1.08, 1.03, 1.03, 1.04 and 1.04 times the
evaluations of fixed steps at equal error on geometric Brownian motion with
:math:`\delta = 1, 1/2, 1/3, 1/4, 1/6`, and 0.42, 0.41, 0.34, 0.47, 0.50 on its growth pulse (a
drift feature, which a small :math:`\delta` sees late): hence 1/3.

``noise_error`` says which :math:`|E_N|` enters. ``"path"``: the realised value. ``"expected"``
(default): its root mean square given the step's start,

.. math::
    \sqrt{\mathbb E\,E_N^2} = \sqrt{\tfrac{|h|}{3} \Big(\sum_i \beta^{(3)}_i g_i\Big)^2
        + \tfrac{|h|}{6} \Big(\sum_i \beta^{(4)}_i g_i\Big)^2}\ \ \text{(SRI)},\qquad
    \sqrt{\tfrac{|h|}{3}}\,\Big|\sum_i \beta^{(2)}_i g_i\Big|\ \ \text{(SRA)}

(:math:`\operatorname{Var} I_{(1,0)}/h = |h|/3`, :math:`\operatorname{Var} I_{(1,1,1)}/|h| = |h|/6`,
uncorrelated; for matrix-valued noise the squares are summed over the Brownian motions). The
diffusion stages :math:`g_i` see the increment at most through drift stages weighted by
:math:`h`, so a step is then not rejected for the noise it happened to draw. With the realised
value, rejection keeps the steps whose increments the estimate liked, and the accepted steps'
local errors are no longer centred, an :math:`O(h)` bias a strong order 1.5 scheme cannot
afford. On geometric Brownian motion (``bench/adaptive.py``,
per-sample PI control with the one-path bridge) ``"path"`` needed 1.6–2.4x the evaluations of
fixed steps at equal strong error and ``"expected"`` about 1.1x (``delta = 1``, before the
controller's start-up). Both scale as
:math:`|h|^{3/2}`: ``error_order = 1.5``. Because the estimate is a magnitude,
``y_next - y_error`` is not the embedded solution (a controller's ``candidate="embedded"`` option
does not apply here).

**Control.** Any adaptive controller drives these schemes. Per sample, the best measured on
``bench/adaptive.py`` is ``PIController(rtol, atol, per_sample=True, rejection="elementary")``
with no ``dt`` given to ``solve`` (the first step is then a probe from which the next one is
set): on geometric Brownian motion SOSRI and SRIW1 cost 0.97–0.99x the evaluations of fixed
steps at tolerances 3e-3 and 1e-3 and 1.02–1.13x at 1e-2 and 3e-2, where the probe and the last,
shortened step are a larger share of 10–15 steps (``docs/benchmarks.md``, adaptive stepping).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch

from sdekit.checks import one_of
from sdekit.errors import InputTypeError, InputValueError

from ..batching import bcast
from ..tableaux.stochastic import (
    SOSRA,
    SOSRA2,
    SOSRI,
    SOSRI2,
    SRA1,
    SRA2,
    SRA3,
    SRA_TABLEAUX,
    SRI1W1,
    SRI2W1,
    SRI_TABLEAUX,
    SRATableau,
    SRITableau,
)
from .base import AbstractSolver

_Pairs = tuple[tuple[int, float], ...]


def _pairs(row: Sequence[float]) -> _Pairs:
    """The nonzero entries of a tableau row as ``(index, coefficient)``."""
    return tuple((j, float(a)) for j, a in enumerate(row) if a != 0)


def _lincomb(pairs: _Pairs, values: list) -> torch.Tensor | None:
    """``Σ a_j values[j]`` over ``pairs``; ``None`` when there are none."""
    out = None
    for j, a in pairs:
        term = a * values[j]
        out = term if out is None else out + term
    return out


def _plan(needed: list[bool], keys: list[tuple]) -> tuple[tuple[int, ...], int]:
    """For each stage, the stage whose value it takes (``-1``: not needed); and the evaluations.

    Stage ``i`` reuses the first earlier needed stage ``j`` with the same key (its stage row and
    time node), since then both are the same function evaluated at the same point.
    """
    source: list[int] = []
    for i, (need, key) in enumerate(zip(needed, keys, strict=True)):
        if not need:
            source.append(-1)
            continue
        same = [j for j in range(i) if source[j] == j and keys[j] == key]
        source.append(same[0] if same else i)
    return tuple(source), sum(1 for i, j in enumerate(source) if i == j)


def _step_integrals(h, y: torch.Tensor, inc):
    """``(h, |h|, sqrt|h|)`` shaped to broadcast over ``y``, and ``I_(1,0)/h`` from ``inc``."""
    hb = bcast(h, y)
    if isinstance(hb, torch.Tensor):
        # A per-sample solve passes h = 0 for finished samples; keep their terms 0 instead of 0/0.
        abs_h = hb.abs().clamp_min(torch.finfo(y.dtype).tiny)
        sqrt_h = abs_h.sqrt()
    else:
        abs_h = abs(hb)
        sqrt_h = math.sqrt(abs_h)
    return hb, abs_h, sqrt_h, inc.dW / 2 + inc.H


def _need_levy_area(name: str, inc) -> None:
    if inc is None or inc.H is None:
        raise InputValueError(
            f"{name} needs the space-time Lévy area H of each Brownian increment; solve with a "
            f"source that provides it (sdekit.solve does so for this solver, and a torchsde "
            f"BrownianInterval needs levy_area_approximation='space-time')"
        )


def _stage(y: torch.Tensor, hb, drift: torch.Tensor | None, noise: torch.Tensor | None):
    """The stage value ``y + h·drift + noise``, leaving out the parts that are ``None``."""
    if drift is not None:
        y = y + hb * drift
    if noise is not None:
        y = y + noise
    return y


NOISE_ERRORS = ("expected", "path")


def _magnitude(e_d: torch.Tensor | None, e_n: torch.Tensor | None) -> torch.Tensor | None:
    """``|e_d| + e_n`` (``e_n`` already non-negative), leaving out the parts that are ``None``."""
    parts = [e for e in (None if e_d is None else e_d.abs(), e_n) if e is not None]
    return None if not parts else parts[0] if len(parts) == 1 else parts[0] + parts[1]


class _StochasticRungeKutta(AbstractSolver):
    r"""The engine SRI and SRA share: stage plan, stage loop, update and error estimate.

    .. math::
        H^{(0)}_i &= y + h\textstyle\sum_{j<i} A^{(0)}_{ij} f_j
                     + \frac{I_{(1,0)}}{h}\sum_{j<i} B^{(0)}_{ij} g_j, \qquad
        H^{(1)}_i = y + h\textstyle\sum_{j<i} A^{(1)}_{ij} f_j + \sqrt{|h|}\sum_{j<i} B^{(1)}_{ij} g_j,\\
        y_{n+1} &= y + h\textstyle\sum_i \alpha_i f_i + \sum_k \sum_i \beta^{(k)}_i J_k\, g_i

    with :math:`f_j = f(t + c^{(0)}_j h, H^{(0)}_j)` and :math:`g_j = g(t + c^{(1)}_j h, H^{(1)}_j)`.
    A family says what differs: its tableau type; the diffusion-stage rows
    :math:`(A^{(1)}_i, B^{(1)}_i)` (:meth:`_diffusion_rows`); the noise weights
    :math:`\beta^{(k)}` (``_noise_weights``, tableau fields) and the integrals :math:`J_k` they
    weight (:meth:`_integrals`, same order), of which the first ``_embedded_terms`` belong to the
    strong order 1.0 embedding and the rest make up :math:`E_N`, with their variances
    (:meth:`_error_variances`); and the problems it accepts (:meth:`check`).

    Args:
        tableau: the scheme's coefficients.
        delta: weight of the deterministic part of the error estimate (module docstring).
        noise_error: ``"expected"`` or ``"path"``, which size of the noise part enters the
            estimate (module docstring).
    """

    levy_area = True
    _estimate = True  # False in a copy for fixed steps: no error estimate (for_fixed_steps)
    _tableau_type: type
    _noise_weights: tuple[str, ...]
    _embedded_terms: int

    def __init__(
        self,
        tableau: SRITableau | SRATableau,
        *,
        delta: float = 1.0,
        noise_error: str = "expected",
    ):
        if not isinstance(tableau, self._tableau_type):
            raise InputTypeError(
                f"{type(self).__name__}(tableau): expected an {self._tableau_type.__name__}, got "
                f"{type(tableau).__name__}"
            )
        if isinstance(delta, bool) or not isinstance(delta, int | float):
            raise InputTypeError(f"delta must be a number, got {type(delta).__name__}")
        if not (delta >= 0 and math.isfinite(delta)):
            raise InputValueError(
                f"delta={delta!r}: the weight of the deterministic error must be finite and "
                f"non-negative (1 by default, 1/6 for sriw1)"
            )
        self.delta = float(delta)
        self.noise_error = one_of("noise_error", noise_error, NOISE_ERRORS)
        self.tableau = t = tableau
        self.strong_order, self.weak_order = t.strong_order, t.weak_order
        times = [float(c) for c in (*t.c0, *t.c1)]
        self.stage_span = (min(times), max(times))  # SOSRI's drift stages reach 3.75 h
        s = t.stages
        self._drift_rows = [(_pairs(a), _pairs(b)) for a, b in zip(t.A0, t.B0, strict=True)]
        self._diffusion = self._diffusion_rows(t)
        self._alpha = _pairs(t.alpha)
        betas = [getattr(t, name) for name in self._noise_weights]
        self._beta = [_pairs(b) for b in betas]
        error_weights = [a - b for a, b in zip(t.alpha, t.alpha_embedded, strict=True)]
        self._alpha_error = _pairs(error_weights)
        error_noise = any(self._beta[self._embedded_terms :])
        self.error_order = 1.5 if self._alpha_error or error_noise else None

        rows = self._drift_rows + self._diffusion

        def used_later(j: int, part: int) -> bool:
            # Whether a stage row weights f_j (part 0) or g_j (part 1); rows are lower triangular.
            return any(k == j for row in rows for k, _ in row[part])

        f_needed = [t.alpha[i] != 0 or error_weights[i] != 0 or used_later(i, 0) for i in range(s)]
        g_needed = [any(b[i] != 0 for b in betas) or used_later(i, 1) for i in range(s)]
        self._f_source, self.nfe_drift = _plan(
            f_needed, [(*self._drift_rows[i], t.c0[i]) for i in range(s)]
        )
        self._g_source, self.nfe_diffusion = _plan(
            g_needed, [(*self._diffusion[i], t.c1[i]) for i in range(s)]
        )

    def _diffusion_rows(self, tableau) -> list[tuple[_Pairs, _Pairs]]:
        """Per stage, the nonzero entries of :math:`(A^{(1)}_i, B^{(1)}_i)`."""
        raise NotImplementedError

    def _integrals(self, dW, abs_h, sqrt_h, i10) -> tuple:
        """The integrals :math:`J_k` weighted by ``_noise_weights``, in that order."""
        raise NotImplementedError

    def _error_variances(self, abs_h) -> tuple:
        """The variances of the integrals :math:`J_k` of :math:`E_N` (those after the embedded ones)."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return f"{type(self).__name__}({_tableau_name(self.tableau)})"

    def for_fixed_steps(self) -> _StochasticRungeKutta:
        """A copy that skips the error estimate's variances, square root and drift part (the
        noise terms of ``E_N`` still enter ``y_next``, summed as before: the same numbers)."""
        solver = copy.copy(self)
        solver._estimate = False
        return solver

    def step(self, problem, t, y, h, inc, state):
        _need_levy_area(self.name, inc)
        tab = self.tableau
        hb, abs_h, sqrt_h, i10 = _step_integrals(h, y, inc)
        f: list = [None] * tab.stages
        g: list = [None] * tab.stages
        for i in range(tab.stages):
            fs, gs = self._f_source[i], self._g_source[i]
            if fs == i:
                a, b = self._drift_rows[i]
                noise = _lincomb(b, g)
                noise = None if noise is None else problem.g_prod(noise, i10)
                f[i] = problem.f(t + tab.c0[i] * h, _stage(y, hb, _lincomb(a, f), noise))
            elif fs >= 0:
                f[i] = f[fs]
            if gs == i:
                a, b = self._diffusion[i]
                noise = _lincomb(b, g)
                noise = None if noise is None else sqrt_h * noise
                g[i] = problem.g(t + tab.c1[i] * h, _stage(y, hb, _lincomb(a, f), noise))
            elif gs >= 0:
                g[i] = g[gs]

        y_next = y + hb * _lincomb(self._alpha, f)
        e_n = e_n_square = None
        integrals = self._integrals(inc.dW, abs_h, sqrt_h, i10)
        variances = (None,) * self._embedded_terms + self._error_variances(abs_h)
        for weights, integral, variance in zip(self._beta, integrals, variances, strict=True):
            combined = _lincomb(weights, g)
            if combined is None:
                continue
            term = problem.g_prod(combined, integral)
            if variance is None:
                y_next = y_next + term
                continue
            e_n = term if e_n is None else e_n + term
            if self.noise_error == "expected" and self._estimate:
                square = combined.square()
                if problem.layout == "general":  # independent Brownian motions, last axis
                    square = square.sum(-1)
                square = variance * square
                e_n_square = square if e_n_square is None else e_n_square + square
        if e_n is not None:
            y_next = y_next + e_n
        if not self._estimate:
            return y_next, None, state
        if e_n is not None:
            if self.noise_error == "path":
                e_n = e_n.abs()
            else:  # a zero noise error (g constant in time, h = 0) stays 0 with a finite gradient
                safe = e_n_square.clamp_min(torch.finfo(e_n_square.dtype).tiny)
                e_n = torch.where(e_n_square > 0, safe.sqrt(), 0.0)
        e_d = _lincomb(self._alpha_error, f)
        e_d = None if e_d is None or self.delta == 0 else (self.delta * hb) * e_d
        return y_next, _magnitude(e_d, e_n), state


class SRI(_StochasticRungeKutta):
    r"""Rößler's SRI method for Itô SDEs with scalar or diagonal noise, from any :class:`SRITableau`.

    The stages are those of the shared engine with the tableau's :math:`A^{(1)}, B^{(1)}`, and

    .. math::
        y_{n+1} = y + h\textstyle\sum_i \alpha_i f_i + \sum_i \big(\beta^{(1)}_i I_{(1)}
            + \beta^{(2)}_i \tfrac{I_{(1,1)}}{\sqrt{|h|}} + \beta^{(3)}_i \tfrac{I_{(1,0)}}{h}
            + \beta^{(4)}_i \tfrac{I_{(1,1,1)}}{|h|}\big)\, g_i

    applied component-wise. Diagonal noise must be *diagonal* in the strong sense: component
    :math:`g_i` depends on :math:`y_i` only (otherwise the noise is not commutative and no
    derivative-free scheme driven by :math:`\Delta W` and :math:`H` alone reaches strong order 1
    or more; use ``'euler'``). Additive noise in the diagonal layout is accepted (it is diagonal
    noise); matrix-valued additive noise needs :class:`SRA`. Strong order: the tableau's (1.5 for
    the library); error estimate and backward steps as in the module docstring.
    """

    calculus = frozenset({"ito"})
    noise = frozenset({"diagonal", "scalar", "additive"})
    _tableau_type = SRITableau
    _noise_weights = ("beta1", "beta2", "beta3", "beta4")
    _embedded_terms = 2

    def _diffusion_rows(self, tableau: SRITableau) -> list[tuple[_Pairs, _Pairs]]:
        return [(_pairs(a), _pairs(b)) for a, b in zip(tableau.A1, tableau.B1, strict=True)]

    def _integrals(self, dW, abs_h, sqrt_h, i10) -> tuple:
        i11 = (dW * dW - abs_h) / (2 * sqrt_h)
        i111 = dW * (dW * dW - 3 * abs_h) / (6 * abs_h)
        return dW, i11, i10, i111

    def _error_variances(self, abs_h) -> tuple:
        return abs_h / 3, abs_h / 6

    def check(self, problem) -> None:
        if problem.noise == "general":
            raise InputValueError(
                f"{self.name} handles scalar and diagonal noise only: general (non-commutative) "
                f"noise needs iterated integrals I_(j,k) between Brownian motions, which strong "
                f"order 1.5 Runge–Kutta schemes of this family do not use; use 'euler' (strong "
                f"order 0.5), or an SRA scheme ('sosra', 'sra1') if the noise is additive"
            )
        if problem.noise is not None and problem.additive:
            if problem.layout == "general":
                raise InputValueError(
                    f"{self.name} handles scalar and diagonal noise; this problem's additive "
                    f"noise is matrix-valued (g of shape (*y.shape, m): noise_dim given, or a torchsde "
                    f"module's additive noise): use an SRA scheme such as 'sosra' or 'sra1'"
                )
            return  # Itô and Stratonovich coincide for additive noise.
        if problem.calculus == "stratonovich":
            raise InputValueError(
                f"{self.name} solves Itô SDEs but the problem is Stratonovich; convert it "
                f"(sdekit.to_ito(problem): the drift f + ½ Σ_j J_(g_j) g_j) to use {self.name}, or "
                f"use 'milstein' (either calculus) or 'heun'"
            )
        super().check(problem)


class SRA(_StochasticRungeKutta):
    r"""Rößler's SRA method for additive noise, from any :class:`SRATableau`.

    The drift stages are those of the shared engine; the diffusion does not depend on the state,
    so it is evaluated at the step's start, :math:`g_j = g(t + c^{(1)}_j h, y)` (no
    :math:`A^{(1)}, B^{(1)}`), and

    .. math::
        y_{n+1} = y + h\textstyle\sum_i \alpha_i f_i
                  + \sum_i \big(\beta^{(1)}_i I_{(1)} + \beta^{(2)}_i \tfrac{I_{(1,0)}}{h}\big) g_i .

    Any layout of additive noise (diagonal, or matrix-valued with ``noise_dim`` Brownian motions:
    the products are ``problem.g_prod``). Itô and Stratonovich coincide for additive noise, so
    both are accepted. Strong order: the tableau's (1.5 for the library); error estimate and
    backward steps as in the module docstring.
    """

    calculus = frozenset({"ito", "stratonovich"})
    noise = frozenset({"additive"})
    _tableau_type = SRATableau
    _noise_weights = ("beta1", "beta2")
    _embedded_terms = 1

    def _diffusion_rows(self, tableau: SRATableau) -> list[tuple[_Pairs, _Pairs]]:
        return [((), ())] * tableau.stages

    def _integrals(self, dW, abs_h, sqrt_h, i10) -> tuple:
        return dW, i10

    def _error_variances(self, abs_h) -> tuple:
        return (abs_h / 3,)

    def check(self, problem) -> None:
        if problem.noise is not None and not problem.additive:
            raise InputValueError(
                f"{self.name} needs additive noise (a diffusion that does not depend on y) but the "
                f"problem has {problem.noise} noise; if g does not depend on y declare "
                f"noise='additive', otherwise use 'sosri' or 'sriw1' (diagonal/scalar Itô noise), "
                f"'milstein', or 'euler' (any noise)"
            )
        super().check(problem)


def _tableau_name(tableau: SRITableau | SRATableau) -> str:
    for name, known in {**SRI_TABLEAUX, **SRA_TABLEAUX}.items():
        if known is tableau:
            return name
    return f"custom {tableau.stages}-stage"


# --------------------------------------------------------------------------- named schemes


def sriw1(**options) -> SRI:
    """SRIW1: Rößler's SRI1W1 (2010). Strong order 1.5, deterministic order 2, weak order 2;
    2 drift + 4 diffusion evaluations per step. Itô, scalar/diagonal noise. ``delta`` defaults
    to 1/6, StochasticDiffEq.jl's choice for this scheme (on ``bench/adaptive.py``'s geometric
    Brownian motion 1.04x fixed-step evaluations at equal error against 1.06x with 1)."""
    return SRI(SRI1W1, **{"delta": 1 / 6, **options})


def sriw2(**options) -> SRI:
    """SRIW2: Rößler's SRI2W1 (2010). Strong order 1.5, deterministic order 3, weak order 2;
    3 drift + 4 diffusion evaluations per step. Itô, scalar/diagonal noise."""
    return SRI(SRI2W1, **options)


def sosri(**options) -> SRI:
    """SOSRI: stability-optimised SRI of Rackauckas & Nie (2018). Strong order 1.5, deterministic
    order 2; 4 drift + 4 diffusion evaluations per step; larger stability region than SRIW1 for
    (pathwise) stiff problems. Itô, scalar/diagonal noise. ``delta`` defaults to 1/3 (module
    docstring: its deterministic error part is mostly noise; with 1, per-sample adaptive SOSRI
    on ``bench/adaptive.py`` cost 1.08x fixed steps at equal error on geometric Brownian motion
    and 0.42x on its growth pulse, against 1.03x and 0.34x with 1/3)."""
    return SRI(SOSRI, **{"delta": 1 / 3, **options})


def sosri2(**options) -> SRI:
    """SOSRI2: the second stability-optimised SRI of Rackauckas & Nie (2018) (stage times in
    [0, 1]). Strong order 1.5, deterministic order 2; 4 + 4 evaluations per step."""
    return SRI(SOSRI2, **options)


def sra1(**options) -> SRA:
    """SRA1: Rößler (2010). Strong order 1.5 (additive noise), deterministic order 2;
    2 drift + 2 diffusion evaluations per step. Itô or Stratonovich."""
    return SRA(SRA1, **options)


def sra2(**options) -> SRA:
    """SRA2: Rößler (2010). Strong order 1.5 (additive noise), deterministic order 2;
    2 drift + 2 diffusion evaluations per step."""
    return SRA(SRA2, **options)


def sra3(**options) -> SRA:
    """SRA3: Rößler (2010). Strong order 1.5 (additive noise), deterministic order 3;
    3 drift + 2 diffusion evaluations per step."""
    return SRA(SRA3, **options)


def sosra(**options) -> SRA:
    """SOSRA: stability-optimised SRA of Rackauckas & Nie (2018). Strong order 1.5 (additive
    noise), deterministic order 2; 3 drift + 3 diffusion evaluations per step."""
    return SRA(SOSRA, **options)


def sosra2(**options) -> SRA:
    """SOSRA2: the second stability-optimised SRA of Rackauckas & Nie (2018). Strong order 1.5
    (additive noise), deterministic order 2; 3 drift + 2 diffusion evaluations per step."""
    return SRA(SOSRA2, **options)


SRK_SOLVERS: dict[str, Callable[..., SRI | SRA]] = {
    "sri1": sriw1,
    "sriw1": sriw1,
    "sriw2": sriw2,
    "sosri": sosri,
    "sosri2": sosri2,
    "sra1": sra1,
    "sra2": sra2,
    "sra3": sra3,
    "sosra": sosra,
    "sosra2": sosra2,
}
"""Names → factories; their keyword options (``delta``, ``noise_error``) are the engine's. ``"sri1"`` is Rößler's SRI1W1 under its short name (the same
tableau as ``"sriw1"``): Rößler's strong order 1.0 "SRI1" for multi-dimensional noise drives its
stages with the iterated integrals :math:`I_{(j,k)}` and is not a member of this family."""

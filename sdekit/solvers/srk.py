r"""Stochastic Runge–Kutta engines: one for Rößler's SRI family, one for the SRA family.

A scheme is a tableau (:mod:`sdekit.tableaux.stochastic`) plus one of the two engines below; the
named schemes at the bottom are just that pairing with a docstring.

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

and ``y_error`` is the **magnitude** :math:`|E_D| + |E_N|` (component-wise, non-negative), as in
Rackauckas & Nie: the two parts can cancel (for geometric Brownian motion the leading terms of
:math:`E_D + E_N` cancel exactly), which would make a signed estimate over-optimistic. It scales as
:math:`|h|^{3/2}`: ``error_order = 1.5``. Because it is a magnitude, ``y_next - y_error`` is not
the embedded solution (a controller's ``candidate="embedded"`` option does not apply here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from sdekit.errors import InputTypeError, InputValueError

from .._util import bcast
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


def _magnitude(e_d: torch.Tensor | None, e_n: torch.Tensor | None) -> torch.Tensor | None:
    parts = [e.abs() for e in (e_d, e_n) if e is not None]
    return None if not parts else parts[0] if len(parts) == 1 else parts[0] + parts[1]


class SRI(AbstractSolver):
    r"""Rößler's SRI method for Itô SDEs with scalar or diagonal noise, from any :class:`SRITableau`.

    .. math::
        H^{(0)}_i &= y + h\textstyle\sum_{j<i} A^{(0)}_{ij} f_j
                     + \frac{I_{(1,0)}}{h}\sum_{j<i} B^{(0)}_{ij} g_j, \qquad
        H^{(1)}_i = y + h\textstyle\sum_{j<i} A^{(1)}_{ij} f_j + \sqrt{|h|}\sum_{j<i} B^{(1)}_{ij} g_j,\\
        y_{n+1} &= y + h\textstyle\sum_i \alpha_i f_i + \sum_i \big(\beta^{(1)}_i I_{(1)}
            + \beta^{(2)}_i \tfrac{I_{(1,1)}}{\sqrt{|h|}} + \beta^{(3)}_i \tfrac{I_{(1,0)}}{h}
            + \beta^{(4)}_i \tfrac{I_{(1,1,1)}}{|h|}\big)\, g_i

    with :math:`f_j = f(t + c^{(0)}_j h, H^{(0)}_j)`, :math:`g_j = g(t + c^{(1)}_j h, H^{(1)}_j)`,
    applied component-wise. Diagonal noise must be *diagonal* in the strong sense: component
    :math:`g_i` depends on :math:`y_i` only (otherwise the noise is not commutative and no
    derivative-free scheme driven by :math:`\Delta W` and :math:`H` alone reaches strong order 1
    or more; use ``'euler'``). Additive noise in the diagonal layout is accepted (it is diagonal
    noise); matrix-valued additive noise needs :class:`SRA`. Strong order: the tableau's (1.5 for
    the library); error estimate and backward steps as in the module docstring.
    """

    calculus = frozenset({"ito"})
    noise = frozenset({"diagonal", "scalar", "additive"})
    levy_area = True

    def __init__(self, tableau: SRITableau):
        if not isinstance(tableau, SRITableau):
            raise InputTypeError(
                f"SRI(tableau): expected an SRITableau, got {type(tableau).__name__}"
            )
        self.tableau = tableau
        self.strong_order = tableau.strong_order
        t = tableau
        s = t.stages
        self._A0 = [_pairs(r) for r in t.A0]
        self._A1 = [_pairs(r) for r in t.A1]
        self._B0 = [_pairs(r) for r in t.B0]
        self._B1 = [_pairs(r) for r in t.B1]
        self._alpha = _pairs(t.alpha)
        self._beta = [_pairs(b) for b in (t.beta1, t.beta2, t.beta3, t.beta4)]
        error_weights = [a - b for a, b in zip(t.alpha, t.alpha_embedded, strict=True)]
        self._alpha_error = _pairs(error_weights)
        self.error_order = 1.5 if self._alpha_error or self._beta[2] or self._beta[3] else None

        def used_later(matrices, j):
            return any(m[i][j] != 0 for m in matrices for i in range(j + 1, s))

        f_needed = [
            t.alpha[i] != 0 or error_weights[i] != 0 or used_later((t.A0, t.A1), i)
            for i in range(s)
        ]
        g_needed = [
            any(b[i] != 0 for b in (t.beta1, t.beta2, t.beta3, t.beta4))
            or used_later((t.B0, t.B1), i)
            for i in range(s)
        ]
        self._f_source, self.nfe_drift = _plan(
            f_needed, [(self._A0[i], self._B0[i], t.c0[i]) for i in range(s)]
        )
        self._g_source, self.nfe_diffusion = _plan(
            g_needed, [(self._A1[i], self._B1[i], t.c1[i]) for i in range(s)]
        )

    @property
    def name(self) -> str:
        return f"SRI({_tableau_name(self.tableau)})"

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
                    f"noise is matrix-valued (noise_dim given): use an SRA scheme such as 'sosra' "
                    f"or 'sra1'"
                )
            return  # Itô and Stratonovich coincide for additive noise.
        if problem.calculus == "stratonovich":
            raise InputValueError(
                f"{self.name} solves Itô SDEs but the problem is Stratonovich; convert it to Itô "
                f"(drift f + ½ g ∂g/∂y component-wise for diagonal noise) to use 'sosri', or use "
                f"'milstein' (either calculus) or 'heun'"
            )
        super().check(problem)

    def step(self, problem, t, y, h, inc, state):
        _need_levy_area(self.name, inc)
        tab = self.tableau
        hb, abs_h, sqrt_h, i10 = _step_integrals(h, y, inc)
        dW = inc.dW
        f: list = [None] * tab.stages
        g: list = [None] * tab.stages
        for i in range(tab.stages):
            fs, gs = self._f_source[i], self._g_source[i]
            if fs == i:
                stage = y
                drift = _lincomb(self._A0[i], f)
                noise = _lincomb(self._B0[i], g)
                if drift is not None:
                    stage = stage + hb * drift
                if noise is not None:
                    stage = stage + problem.g_prod(noise, i10)
                f[i] = problem.f(t + tab.c0[i] * h, stage)
            elif fs >= 0:
                f[i] = f[fs]
            if gs == i:
                stage = y
                drift = _lincomb(self._A1[i], f)
                noise = _lincomb(self._B1[i], g)
                if drift is not None:
                    stage = stage + hb * drift
                if noise is not None:
                    stage = stage + sqrt_h * noise
                g[i] = problem.g(t + tab.c1[i] * h, stage)
            elif gs >= 0:
                g[i] = g[gs]

        i11 = (dW * dW - abs_h) / (2 * sqrt_h)
        i111 = dW * (dW * dW - 3 * abs_h) / (6 * abs_h)
        g1, g2, g3, g4 = (_lincomb(b, g) for b in self._beta)
        y_next = y + hb * _lincomb(self._alpha, f) + problem.g_prod(g1, dW)
        if g2 is not None:
            y_next = y_next + problem.g_prod(g2, i11)
        e_n = None
        for weights, integral in ((g3, i10), (g4, i111)):
            if weights is not None:
                term = problem.g_prod(weights, integral)
                e_n = term if e_n is None else e_n + term
        if e_n is not None:
            y_next = y_next + e_n
        e_d = _lincomb(self._alpha_error, f)
        return y_next, _magnitude(None if e_d is None else hb * e_d, e_n), state


class SRA(AbstractSolver):
    r"""Rößler's SRA method for additive noise, from any :class:`SRATableau`.

    .. math::
        H^{(0)}_i = y + h\textstyle\sum_{j<i} A^{(0)}_{ij} f_j
                    + \frac{I_{(1,0)}}{h}\sum_{j<i} B^{(0)}_{ij} g_j, \qquad
        y_{n+1} = y + h\textstyle\sum_i \alpha_i f_i
                  + \sum_i \big(\beta^{(1)}_i I_{(1)} + \beta^{(2)}_i \tfrac{I_{(1,0)}}{h}\big) g_i

    with :math:`f_j = f(t + c^{(0)}_j h, H^{(0)}_j)` and :math:`g_j = g(t + c^{(1)}_j h)`. Any
    layout of additive noise (diagonal, or matrix-valued with ``noise_dim`` Brownian motions:
    the products are ``problem.g_prod``). Itô and Stratonovich coincide for additive noise, so
    both are accepted. Strong order: the tableau's (1.5 for the library); error estimate and
    backward steps as in the module docstring. The diffusion is called with the step's starting
    state (it must not depend on it).
    """

    calculus = frozenset({"ito", "stratonovich"})
    noise = frozenset({"additive"})
    levy_area = True

    def __init__(self, tableau: SRATableau):
        if not isinstance(tableau, SRATableau):
            raise InputTypeError(
                f"SRA(tableau): expected an SRATableau, got {type(tableau).__name__}"
            )
        self.tableau = tableau
        self.strong_order = tableau.strong_order
        t = tableau
        s = t.stages
        self._A0 = [_pairs(r) for r in t.A0]
        self._B0 = [_pairs(r) for r in t.B0]
        self._alpha = _pairs(t.alpha)
        self._beta1 = _pairs(t.beta1)
        self._beta2 = _pairs(t.beta2)
        error_weights = [a - b for a, b in zip(t.alpha, t.alpha_embedded, strict=True)]
        self._alpha_error = _pairs(error_weights)
        self.error_order = 1.5 if self._alpha_error or self._beta2 else None
        f_needed = [
            t.alpha[i] != 0
            or error_weights[i] != 0
            or any(t.A0[k][i] != 0 for k in range(i + 1, s))
            for i in range(s)
        ]
        g_needed = [
            t.beta1[i] != 0 or t.beta2[i] != 0 or any(t.B0[k][i] != 0 for k in range(i + 1, s))
            for i in range(s)
        ]
        self._f_source, self.nfe_drift = _plan(
            f_needed, [(self._A0[i], self._B0[i], t.c0[i]) for i in range(s)]
        )
        self._g_source, self.nfe_diffusion = _plan(g_needed, [(t.c1[i],) for i in range(s)])

    @property
    def name(self) -> str:
        return f"SRA({_tableau_name(self.tableau)})"

    def check(self, problem) -> None:
        if problem.noise is not None and not problem.additive:
            raise InputValueError(
                f"{self.name} needs additive noise (a diffusion that does not depend on y) but the "
                f"problem has {problem.noise} noise; if g does not depend on y declare "
                f"noise='additive', otherwise use 'sosri' or 'sriw1' (diagonal/scalar Itô noise), "
                f"'milstein', or 'euler' (any noise)"
            )
        super().check(problem)

    def step(self, problem, t, y, h, inc, state):
        _need_levy_area(self.name, inc)
        tab = self.tableau
        hb, _, _, i10 = _step_integrals(h, y, inc)
        f: list = [None] * tab.stages
        g: list = [None] * tab.stages
        for i in range(tab.stages):
            gs = self._g_source[i]
            if gs == i:
                g[i] = problem.g(t + tab.c1[i] * h, y)
            elif gs >= 0:
                g[i] = g[gs]
        for i in range(tab.stages):
            fs = self._f_source[i]
            if fs == i:
                stage = y
                drift = _lincomb(self._A0[i], f)
                noise = _lincomb(self._B0[i], g)
                if drift is not None:
                    stage = stage + hb * drift
                if noise is not None:
                    stage = stage + problem.g_prod(noise, i10)
                f[i] = problem.f(t + tab.c0[i] * h, stage)
            elif fs >= 0:
                f[i] = f[fs]
        y_next = (
            y + hb * _lincomb(self._alpha, f) + problem.g_prod(_lincomb(self._beta1, g), inc.dW)
        )
        g2 = _lincomb(self._beta2, g)
        e_n = None if g2 is None else problem.g_prod(g2, i10)
        if e_n is not None:
            y_next = y_next + e_n
        e_d = _lincomb(self._alpha_error, f)
        return y_next, _magnitude(None if e_d is None else hb * e_d, e_n), state


def _tableau_name(tableau: SRITableau | SRATableau) -> str:
    for name, known in {**SRI_TABLEAUX, **SRA_TABLEAUX}.items():
        if known is tableau:
            return name
    return f"custom {tableau.stages}-stage"


# --------------------------------------------------------------------------- named schemes


def sriw1() -> SRI:
    """SRIW1: Rößler's SRI1W1 (2010). Strong order 1.5, deterministic order 2, weak order 2;
    2 drift + 4 diffusion evaluations per step. Itô, scalar/diagonal noise."""
    return SRI(SRI1W1)


def sriw2() -> SRI:
    """SRIW2: Rößler's SRI2W1 (2010). Strong order 1.5, deterministic order 3, weak order 2;
    3 drift + 4 diffusion evaluations per step. Itô, scalar/diagonal noise."""
    return SRI(SRI2W1)


def sosri() -> SRI:
    """SOSRI: stability-optimised SRI of Rackauckas & Nie (2018). Strong order 1.5, deterministic
    order 2; 4 drift + 4 diffusion evaluations per step; larger stability region than SRIW1 for
    (pathwise) stiff problems. Itô, scalar/diagonal noise."""
    return SRI(SOSRI)


def sosri2() -> SRI:
    """SOSRI2: the second stability-optimised SRI of Rackauckas & Nie (2018) (stage times in
    [0, 1]). Strong order 1.5, deterministic order 2; 4 + 4 evaluations per step."""
    return SRI(SOSRI2)


def sra1() -> SRA:
    """SRA1: Rößler (2010). Strong order 1.5 (additive noise), deterministic order 2;
    2 drift + 2 diffusion evaluations per step. Itô or Stratonovich."""
    return SRA(SRA1)


def sra2() -> SRA:
    """SRA2: Rößler (2010). Strong order 1.5 (additive noise), deterministic order 2;
    2 drift + 2 diffusion evaluations per step."""
    return SRA(SRA2)


def sra3() -> SRA:
    """SRA3: Rößler (2010). Strong order 1.5 (additive noise), deterministic order 3;
    3 drift + 2 diffusion evaluations per step."""
    return SRA(SRA3)


def sosra() -> SRA:
    """SOSRA: stability-optimised SRA of Rackauckas & Nie (2018). Strong order 1.5 (additive
    noise), deterministic order 2; 3 drift + 3 diffusion evaluations per step."""
    return SRA(SOSRA)


def sosra2() -> SRA:
    """SOSRA2: the second stability-optimised SRA of Rackauckas & Nie (2018). Strong order 1.5
    (additive noise), deterministic order 2; 3 drift + 2 diffusion evaluations per step."""
    return SRA(SOSRA2)


SRK_SOLVERS: dict[str, Callable[[], SRI | SRA]] = {
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
"""Names → zero-argument factories. ``"sri1"`` is Rößler's SRI1W1 under its short name (the same
tableau as ``"sriw1"``): Rößler's strong order 1.0 "SRI1" for multi-dimensional noise drives its
stages with the iterated integrals :math:`I_{(j,k)}` and is not a member of this family."""

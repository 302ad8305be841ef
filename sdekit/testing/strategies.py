r"""Hypothesis strategies: random valid tableaux, controllers, problems and rejection patterns.

Every tableau strategy builds its tableau from the free parameters the order conditions leave, and
solves the conditions for the rest, so each draw satisfies them (checked with
:func:`~sdekit.testing.check_tableau`; draws with coefficients beyond ``±10``, or too close to a
singular member of the family, are discarded):

- :func:`butcher_tableaux`: explicit Runge–Kutta methods of order 1–4 (order ``p`` in ``p``
  stages; for order 4 Kutta's family with ``c = (0, u, v, 1)``: ``b`` from the quadrature
  conditions, then ``a₃₂ = 1/(24 b₃ u (1 − v))``, ``a₄₃ = 1/(24 b₄ a₃₂ u)`` and ``a₄₂`` from
  ``bᵀAc = 1/6``), optionally with embedded weights of order 1 or 2.
- :func:`sra_tableaux`: Rößler's strong order 1.5 SRA conditions leave, in three stages, the drift
  nodes ``B0e = (0, d₂, d₃)``, ``c0₂`` and the splits of the rows free (``α`` then solves
  ``αᵀe = 1``, ``αᵀB0e = 1``, ``αᵀ(B0e)² = 3/2``, and ``c0₃`` solves ``αᵀc0 = 1/2``), and the
  diffusion nodes ``c1`` with one free weight in each of ``β1`` (``β1ᵀe = 1``, ``β1ᵀc1 = 1``) and
  ``β2`` (``β2ᵀe = 0``, ``β2ᵀc1 = −1``). Two stages fix the drift (SRA1's) and leave ``c1``.
- :func:`sri_tableaux`: strong order 1.0 (Milstein-type) tableaux in 2–3 stages, whose conditions
  are linear in the weights once the stage matrices are drawn; and strong order 1.5 tableaux whose
  diffusion part (``A1, B1, β``) is that of SRI1W1 or SRI2W1 and whose drift part (``A0, B0, α``)
  is drawn from the family the drift conditions leave (as for SRA; the coupling condition
  ``½β1ᵀA1(B0e) + ⅓β3ᵀA1(B0e) = 0`` holds for any ``B0`` there, since ``β1`` and ``β3`` vanish
  on the only stage whose ``A1`` row reaches the drawn stages).

The other strategies: :func:`controllers` (adaptive controllers with valid tolerances, optionally
wrapped in :class:`~sdekit.ClipStepSize`), :func:`rejection_schedules` (sequences of proposed step
fractions and accept/reject decisions, for Brownian sources) and :func:`exact_sdes` (problems of
:mod:`sdekit.testing.problems` with random coefficients, event shapes and dtypes).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

import sdekit as sk
from sdekit.errors import InputError, InputValueError
from sdekit.tableaux.butcher import ButcherTableau
from sdekit.tableaux.stochastic import SRI1W1, SRI2W1, SRATableau, SRITableau

from . import problems as P
from .tableaux import check_tableau

_BOUND = 10.0


def _unit(lo: float, hi: float):
    # A coefficient of 1e-35 (what shrinking reaches) is zero in effect but not in structure:
    # an embedded weight that small declares an error estimate that estimates nothing.
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(
        lambda x: 0.0 if abs(x) < 1e-6 else x
    )


def _valid(make):
    """``make()``, or discard the draw if it is invalid, too large or off its conditions."""
    try:
        tableau = make()
    except (InputError, ZeroDivisionError, np.linalg.LinAlgError):
        assume(False)
    numbers = [abs(x) for x in _coefficients(tableau)]
    assume(all(math.isfinite(x) and x <= _BOUND for x in numbers))
    assume(check_tableau(tableau, tol=1e-10).all_hold)
    return tableau


def _coefficients(tableau):
    if isinstance(tableau, ButcherTableau):
        rows = [tableau.c, tableau.b, *tableau.a, tableau.b_embedded or ()]
    else:
        names = ("A0", "B0", "A1", "B1") if isinstance(tableau, SRITableau) else ("A0", "B0")
        rows = [v for n in names for v in getattr(tableau, n)]
        rows += [tableau.alpha, tableau.beta1, tableau.beta2]
    return [x for row in rows for x in row]


# --------------------------------------------------------------------------- Butcher tableaux


def _butcher(order: int, u: float, v: float) -> tuple[tuple, tuple, tuple]:
    """``(c, a, b)`` of the order-``order`` method with free nodes ``u``, ``v``."""
    if order == 1:
        return (0.0,), ((),), (1.0,)
    if order == 2:
        return (0.0, u), ((), (u,)), (1 - 1 / (2 * u), 1 / (2 * u))
    if order == 3:
        b2 = (3 * v - 2) / (6 * u * (v - u))
        b3 = (2 - 3 * u) / (6 * v * (v - u))
        a32 = v * (v - u) / (u * (2 - 3 * u))
        return (0.0, u, v), ((), (u,), (v - a32, a32)), (1 - b2 - b3, b2, b3)
    c = np.array([0.0, u, v, 1.0])
    b = np.linalg.solve(np.vstack([c**k for k in range(4)]), [1, 1 / 2, 1 / 3, 1 / 4])
    a32 = 1 / (24 * b[2] * u * (1 - v))
    a43 = 1 / (24 * b[3] * a32 * u)
    a42 = (1 / 6 - b[2] * a32 * u - b[3] * a43 * v) / (b[3] * u)
    a = ((), (u,), (v - a32, a32), (1 - a42 - a43, a42, a43))
    return tuple(c.tolist()), a, tuple(b.tolist())


def _embedded(c: tuple, order: int, free: list[float]) -> tuple[float, ...]:
    """Weights of order ``order`` (1 or 2) on nodes ``c``: the last ones free, the first solved."""
    s = len(c)
    tail = free[: s - order]
    if order == 1:
        return (1 - sum(tail), *tail)
    rest = 0.5 - sum(w * ci for w, ci in zip(tail, c[2:], strict=False))
    w2 = rest / c[1]
    return (1 - w2 - sum(tail), w2, *tail)


@st.composite
def butcher_tableaux(draw, order: int | None = None, *, embedded: bool = False) -> ButcherTableau:
    """Explicit Runge–Kutta tableaux of classical ``order`` (1–4; drawn when ``None``) in
    ``order`` stages; with ``embedded``, lower-order weights (order 1, or 2 for order 3–4)."""
    lowest = 2 if embedded else 1
    if order is not None and order not in range(lowest, 5):
        raise InputValueError(
            f"butcher_tableaux(order={order!r}{', embedded=True' if embedded else ''}): orders "
            f"{lowest} to 4 are drawn (in as many stages)"
        )
    order = draw(st.integers(lowest, 4)) if order is None else order
    u = draw(_unit(0.15, 0.9))
    v = draw(_unit(0.2, 0.95))
    assume(order < 3 or abs(u - v) > 0.1)
    assume(order != 3 or abs(u - 2 / 3) > 0.1)
    assume(order != 4 or abs(u - 0.5) > 0.1)
    free = [draw(_unit(-0.5, 1.0)) for _ in range(4)]

    def make():
        c, a, b = _butcher(order, u, v)
        if not embedded:
            return ButcherTableau(c=c, a=a, b=b, order=order)
        q = 1 if order == 2 else 2
        b_hat = _embedded(c, q, free)
        assume(max(abs(x - y) for x, y in zip(b, b_hat, strict=True)) > 0.05)
        return ButcherTableau(c=c, a=a, b=b, order=order, b_embedded=b_hat, embedded_order=q)

    return _valid(make)


# --------------------------------------------------------------------------- stochastic tableaux


def _two_weights(nodes: tuple[float, float], first_sum: float, node_sum: float, rest: float):
    """``(w0, w1)`` with ``w0 + w1 = first_sum`` and ``w0 n0 + w1 n1 = node_sum`` (given a
    remainder already taken by later entries)."""
    n0, n1 = nodes
    w1 = (node_sum - n0 * first_sum) / (n1 - n0)
    return first_sum - w1, w1


@st.composite
def _drift_part(draw):
    """``(A0, B0, alpha)`` rows for three drift stages meeting the strong 1.5 drift conditions."""
    d2, d3 = draw(_unit(-1.0, 3.0)), draw(_unit(-1.0, 3.0))
    assume(abs(d2) > 0.2 and abs(d3) > 0.2 and abs(d2 - d3) > 0.2)
    # alpha2 d2 + alpha3 d3 = 1, alpha2 d2^2 + alpha3 d3^2 = 3/2
    alpha2, alpha3 = np.linalg.solve([[d2, d3], [d2 * d2, d3 * d3]], [1.0, 1.5]).tolist()
    assume(abs(alpha3) > 0.05)
    c2 = draw(_unit(0.1, 1.0))
    c3 = (0.5 - alpha2 * c2) / alpha3
    a32, b32 = draw(_unit(-1.0, 1.0)), draw(_unit(-1.0, 1.0))
    A0 = ((), (c2,), (c3 - a32, a32))
    B0 = ((), (d2,), (d3 - b32, b32))
    return A0, B0, (1 - alpha2 - alpha3, alpha2, alpha3)


@st.composite
def sra_tableaux(draw, stages: int | None = None) -> SRATableau:
    """SRA tableaux of strong order 1.5 in 2 or 3 stages (module docstring)."""
    if stages not in (None, 2, 3):
        raise InputValueError(f"sra_tableaux(stages={stages!r}): 2 or 3 stages are drawn")
    stages = draw(st.sampled_from([2, 3])) if stages is None else stages
    if stages == 2:
        A0, B0, alpha = ((), (0.75,)), ((), (1.5,)), (1 / 3, 2 / 3)
    else:
        A0, B0, alpha = draw(_drift_part())
    c1 = tuple(draw(_unit(0.0, 1.0)) for _ in range(stages))
    assume(abs(c1[0] - c1[1]) > 0.2)
    w1, w2 = (draw(_unit(-1.0, 1.0)) if stages == 3 else 0.0 for _ in range(2))
    last = c1[2:]

    def make():
        b1 = _two_weights(c1[:2], 1 - w1 * (stages == 3), 1 - sum(w1 * n for n in last), 0)
        b2 = _two_weights(c1[:2], -w2 * (stages == 3), -1 - sum(w2 * n for n in last), 0)
        extra = (w1,) if stages == 3 else ()
        extra2 = (w2,) if stages == 3 else ()
        return SRATableau(
            c0=None, c1=c1, A0=A0, B0=B0, alpha=alpha, beta1=(*b1, *extra), beta2=(*b2, *extra2)
        )

    return _valid(make)


@st.composite
def sri_tableaux(draw, strong_order: float | None = None) -> SRITableau:
    """SRI tableaux of strong order 1.0 or 1.5 (module docstring)."""
    if strong_order not in (None, 1.0, 1.5):
        raise InputValueError(
            f"sri_tableaux(strong_order={strong_order!r}): strong orders 1.0 and 1.5 are drawn"
        )
    strong_order = draw(st.sampled_from([1.0, 1.5])) if strong_order is None else strong_order
    if strong_order == 1.5:
        library = draw(st.sampled_from([SRI1W1, SRI2W1]))
        A0, B0, alpha = draw(_drift_part())
        return _valid(
            lambda: SRITableau(
                c0=None,
                c1=None,
                A0=(*A0, (0.0, 0.0, 0.0)),
                B0=(*B0, (0.0, 0.0, 0.0)),
                A1=library.A1,
                B1=library.B1,
                alpha=(*alpha, 0.0),
                beta1=library.beta1,
                beta2=library.beta2,
                beta3=library.beta3,
                beta4=library.beta4,
                deterministic_order=2,
            )
        )
    stages = draw(st.sampled_from([2, 3]))

    def rows():
        return tuple(tuple(draw(_unit(-1.0, 1.0)) for _ in range(i)) for i in range(stages))

    A0, B0, A1, B1 = rows(), rows(), rows(), rows()
    alpha_free = [draw(_unit(-0.5, 1.0)) for _ in range(stages - 1)]
    free = [draw(_unit(-1.0, 1.0)) for _ in range(4)]
    B1e = [sum(r) for r in B1]
    assume(abs(B1e[1]) > 0.2)
    # a second drift stage at the first one's point makes the embedded estimate identically 0
    assume(abs(A0[1][0]) + abs(B0[1][0]) > 0.1)

    def weights(total, along_b1e, w):
        # beta·e = total, beta·B1e = along_b1e; entry 2 (3 stages) free, B1e[0] = 0
        tail = (w,) if stages == 3 else ()
        second = (along_b1e - sum(t * n for t, n in zip(tail, B1e[2:], strict=False))) / B1e[1]
        return (total - second - sum(tail), second, *tail)

    return _valid(
        lambda: SRITableau(
            c0=None,
            c1=None,
            A0=A0,
            A1=A1,
            B0=B0,
            B1=B1,
            alpha=(1 - sum(alpha_free), *alpha_free),
            beta1=weights(1, 0, free[0]),
            beta2=weights(0, 1, free[1]),
            beta3=weights(0, 0, free[2]),
            beta4=weights(0, 0, free[3]),
            strong_order=1.0,
            deterministic_order=1,
        )
    )


# --------------------------------------------------------------------------- controllers


@st.composite
def controllers(draw, *, per_sample: bool | None = None, clip: bool | None = None):
    """Adaptive controllers (``IController``, ``PIController``, ``PIDController``) with valid
    tolerances and factors, per sample or shared, optionally inside a ``ClipStepSize``."""
    kind = draw(st.sampled_from(["I", "PI", "PID"]))
    options = dict(
        rtol=draw(st.sampled_from([0.0, 1e-6, 1e-4, 1e-2, 1e-1])),
        atol=draw(st.sampled_from([1e-6, 1e-4, 1e-2, 1e-1])),
        safety=draw(_unit(0.5, 1.0)),
        factor_min=draw(_unit(0.0, 0.5)),
        factor_max=draw(_unit(1.5, 10.0)),
        norm=draw(st.sampled_from(["rms", "max"])),
        combine=draw(st.sampled_from(["sum", "max"])),
        per_sample=draw(st.booleans()) if per_sample is None else per_sample,
    )
    if kind == "I":
        controller = sk.IController(**options)
    elif kind == "PI":
        controller = sk.PIController(
            pcoeff=draw(_unit(0.0, 0.5)), icoeff=draw(_unit(0.1, 1.0)), **options
        )
    else:
        controller = sk.PIDController(
            pcoeff=draw(_unit(0.0, 0.5)),
            icoeff=draw(_unit(0.1, 1.0)),
            dcoeff=draw(_unit(0.0, 0.3)),
            **options,
        )
    if clip if clip is not None else draw(st.booleans()):
        dt_max = draw(_unit(0.01, 1.0))
        controller = sk.ClipStepSize(controller, dt_min=0.0, dt_max=dt_max)
    return controller


# --------------------------------------------------------------------------- Brownian patterns


def rejection_schedules(*, min_size: int = 1, max_size: int = 10, max_fraction: float = 1.5):
    """Lists of ``(fraction, accept)``: propose a step of ``fraction`` times a base step, then
    accept it or not. A source that keeps one path must deliver the same law whatever the list
    (see :func:`sdekit.testing.brownian_properties`)."""
    return st.lists(
        st.tuples(_unit(0.05, max_fraction), st.booleans()), min_size=min_size, max_size=max_size
    )


# --------------------------------------------------------------------------- problems


_FAMILIES = {
    "gbm": (("diagonal", "scalar"), ("ito", "stratonovich")),
    "linear_system": (("scalar",), ("ito", "stratonovich")),
    "cubic": (("diagonal",), ("ito", "stratonovich")),
    "arctan": (("diagonal",), ("ito", "stratonovich")),
    "sinh": (("diagonal",), ("ito", "stratonovich")),
    "additive_linear": (("additive",), ("ito", "stratonovich")),
    "ornstein_uhlenbeck": (("additive",), ("ito", "stratonovich")),
}


@st.composite
def exact_sdes(
    draw,
    *,
    calculus: str | None = None,
    noise: str | None = None,
    families=None,
    dtypes=(torch.float64,),
    max_rank: int = 3,
) -> P.ExactSDE:
    """An :class:`~sdekit.testing.problems.ExactSDE` from a random family, with random
    coefficients (one per component), a random event shape (rank 1 to ``max_rank``, except
    ``linear_system``: ``(d,)``) and ``y0`` of a dtype from ``dtypes``."""
    names = [
        name
        for name, (noises, calculi) in _FAMILIES.items()
        if (families is None or name in families)
        and (noise is None or noise in noises)
        and (calculus is None or calculus in calculi)
    ]
    if not names:
        unknown = sorted(set(families or ()) - set(_FAMILIES))
        raise InputValueError(
            f"exact_sdes(calculus={calculus!r}, noise={noise!r}, families={families!r}): no "
            f"family fits{f' ({unknown} unknown)' if unknown else ''}; the families and their "
            f"noise kinds and calculi: "
            + "; ".join(f"{n}: {'/'.join(k)}, {'/'.join(c)}" for n, (k, c) in _FAMILIES.items())
        )
    name = draw(st.sampled_from(sorted(names)))
    noises, calculi = _FAMILIES[name]
    kind = noise or draw(st.sampled_from(noises))
    calc = calculus or draw(st.sampled_from(calculi))
    dtype = draw(st.sampled_from(list(dtypes)))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    if name == "linear_system":
        d = draw(st.integers(1, 3))
        A, B = P.commuting_matrices(d, gen)
        y0 = torch.rand(d, generator=gen, dtype=torch.float64) - 0.5
        return _retype(P.linear_system(A, B, calculus=calc, y0=y0), dtype)
    event = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=max_rank)))

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(event, generator=gen, dtype=torch.float64)

    if name == "gbm":
        sde = P.gbm(uniform(-1, 1), uniform(0.1, 1), calculus=calc, noise=kind, y0=uniform(0.5, 2))
    elif name == "cubic":
        sde = P.cubic(uniform(0.2, 1), calculus=calc, y0=uniform(-0.8, 0.8))
    elif name == "arctan":
        sde = P.arctan(uniform(0.2, 1.2), calculus=calc, y0=uniform(-1.2, 1.2))
    elif name == "sinh":
        sde = P.sinh(uniform(0.2, 1), calculus=calc, y0=uniform(-2, 2))
    elif name == "additive_linear":
        sde = P.additive_linear(
            uniform(0.2, 1.5), uniform(0.2, 1), calculus=calc, y0=uniform(-1, 1)
        )
    else:
        sde = P.ornstein_uhlenbeck(
            uniform(0.2, 2),
            uniform(-1, 1),
            uniform(0.1, 1),
            calculus=calc,
            y0=uniform(-1, 1),
            panels=128,  # exact to ~1e-5 (RMS): enough for property tests
        )
    return _retype(sde, dtype)


def _retype(sde: P.ExactSDE, dtype: torch.dtype) -> P.ExactSDE:
    sde.y0 = sde.y0.to(dtype)
    return sde

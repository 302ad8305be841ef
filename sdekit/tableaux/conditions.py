r"""Order conditions of the SRI and SRA families (Rößler 2010), checked in exact arithmetic.

Notation: :math:`e = (1, \ldots, 1)^\top`; powers of vectors are component-wise. The residual of
each condition is ``value - target``, computed in exact rational arithmetic on the (binary)
coefficients, so it measures only how far the stored floats are from satisfying it.

**SRI** (Rößler 2010, the strong order 1.5 conditions for scalar noise; the list below is the one
of StochasticDiffEq.jl's ``checkSRIOrder``, cross-checked against the expansion of the method in
the Itô–Taylor terms :math:`I_{(1)}, I_{(1,1)}, I_{(1,0)}, I_{(0,1)},
I_{(1,1,1)}, h^2`):

- strong 0.5: :math:`\alpha^\top e = 1,\ \beta^{(1)\top} e = 1,\ \beta^{(k)\top} e = 0\ (k=2,3,4)`
- strong 1.0: :math:`\beta^{(1)\top} B^{(1)} e = 0,\ \beta^{(2)\top} B^{(1)} e = 1,\
  \beta^{(3)\top} B^{(1)} e = 0,\ \beta^{(4)\top} B^{(1)} e = 0`
- strong 1.5: :math:`\alpha^\top A^{(0)} e = \tfrac12,\ \alpha^\top B^{(0)} e = 1,\
  \alpha^\top (B^{(0)} e)^2 = \tfrac32`;
  :math:`\beta^{(k)\top} A^{(1)} e = (1, 0, -1, 0)_k`;
  :math:`\beta^{(k)\top} (B^{(1)} e)^2 = (1, 0, -1, 2)_k`;
  :math:`\beta^{(k)\top} B^{(1)} (B^{(1)} e) = (0, 0, 0, 1)_k`;
  :math:`\tfrac12 \beta^{(1)\top} A^{(1)} (B^{(0)} e) + \tfrac13 \beta^{(3)\top} A^{(1)} (B^{(0)} e) = 0`

**SRA** (Rößler 2010, the strong order 1.5 conditions for additive noise; StochasticDiffEq.jl's
``checkSRAOrder``):

- strong 1.0: :math:`\alpha^\top e = 1,\ \beta^{(1)\top} e = 1,\ \beta^{(2)\top} e = 0`
- strong 1.5: :math:`\alpha^\top B^{(0)} e = 1,\ \alpha^\top A^{(0)} e = \tfrac12,\
  \alpha^\top (B^{(0)} e)^2 = \tfrac32,\ \beta^{(1)\top} c^{(1)} = 1,\ \beta^{(2)\top} c^{(1)} = -1`

**Deterministic order** (both families; the method with :math:`g = 0` is the explicit RK method
:math:`(c^{(0)}, A^{(0)}, \alpha)`): order 2 adds :math:`\alpha^\top c^{(0)} = \tfrac12` (already a
strong 1.5 condition), order 3 adds :math:`\alpha^\top (c^{(0)})^2 = \tfrac13` and
:math:`\alpha^\top A^{(0)} c^{(0)} = \tfrac16`.

The stage times are the row sums of the stage matrices (:math:`c^{(0)} = A^{(0)} e`, and for SRI
:math:`c^{(1)} = A^{(1)} e`), which :mod:`sdekit.tableaux.stochastic` enforces on construction; with
them the conditions for autonomous problems carry over to time-dependent ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from sdekit.errors import InputTypeError, InputValueError

from .stochastic import SRATableau, SRITableau

DEFAULT_TOL = 1e-12

_Vec = list[Fraction]
_Mat = list[list[Fraction]]


@dataclass(frozen=True)
class OrderCondition:
    """One order condition: ``name`` reads ``value = target``; it holds iff ``|residual| <= tol``."""

    name: str
    group: str
    value: float
    target: float
    residual: float
    holds: bool


@dataclass(frozen=True)
class OrderConditions:
    """The conditions a tableau was checked against, in order; ``all_hold`` iff every one holds."""

    conditions: tuple[OrderCondition, ...]
    tol: float

    @property
    def all_hold(self) -> bool:
        return all(c.holds for c in self.conditions)

    @property
    def failed(self) -> tuple[OrderCondition, ...]:
        return tuple(c for c in self.conditions if not c.holds)

    @property
    def max_residual(self) -> float:
        return max(abs(c.residual) for c in self.conditions)

    def __iter__(self) -> Iterator[OrderCondition]:
        return iter(self.conditions)

    def __len__(self) -> int:
        return len(self.conditions)

    def __str__(self) -> str:
        lines = [
            f"{'ok ' if c.holds else 'FAIL'} [{c.group}] {c.name}: residual {c.residual:.3e}"
            for c in self.conditions
        ]
        status = "all hold" if self.all_hold else f"{len(self.failed)} fail"
        return "\n".join(lines + [f"{len(self)} conditions, {status} (tol {self.tol:g})"])


def _vec(values) -> _Vec:
    return [Fraction(v) for v in values]


def _mat(rows) -> _Mat:
    s = len(rows)
    return [[Fraction(x) for x in row] + [Fraction(0)] * (s - len(row)) for row in rows]


def _dot(u: _Vec, v: _Vec) -> Fraction:
    return sum((a * b for a, b in zip(u, v, strict=True)), Fraction(0))


def _matvec(m: _Mat, v: _Vec) -> _Vec:
    return [_dot(row, v) for row in m]


def _sq(v: _Vec) -> _Vec:
    return [x * x for x in v]


class _Collector:
    def __init__(self, tol: float):
        self.tol = tol
        self.items: list[OrderCondition] = []

    def add(self, group: str, name: str, value: Fraction, target: Fraction | int) -> None:
        target = Fraction(target)
        residual = float(value - target)
        self.items.append(
            OrderCondition(
                name, group, float(value), float(target), residual, abs(residual) <= self.tol
            )
        )

    def result(self) -> OrderConditions:
        return OrderConditions(tuple(self.items), self.tol)


def _deterministic(out: _Collector, order: int, skip_second: bool, alpha, A0, c0) -> None:
    if order >= 2 and not skip_second:
        out.add("deterministic 2", "αᵀc0 = 1/2", _dot(alpha, c0), Fraction(1, 2))
    if order >= 3:
        out.add("deterministic 3", "αᵀc0² = 1/3", _dot(alpha, _sq(c0)), Fraction(1, 3))
        out.add("deterministic 3", "αᵀA0c0 = 1/6", _dot(alpha, _matvec(A0, c0)), Fraction(1, 6))


def _strong_order(tableau, kind: type, order: float | None) -> float:
    """The strong order to check ``tableau`` to (default: its own), once it is a ``kind``."""
    if not isinstance(tableau, kind):
        raise InputTypeError(f"expected an {kind.__name__}, got {type(tableau).__name__}")
    order = tableau.strong_order if order is None else order
    if order not in (1.0, 1.5):
        family = kind.__name__.removesuffix("Tableau")
        raise InputValueError(
            f"order={order!r}: {family} conditions are listed for strong order 1.0 and 1.5"
        )
    return order


def sri_order_conditions(
    tableau: SRITableau, *, order: float | None = None, tol: float = DEFAULT_TOL
) -> OrderConditions:
    """Check ``tableau`` against the SRI conditions up to strong ``order``.

    Args:
        tableau: an :class:`~sdekit.tableaux.stochastic.SRITableau`.
        order: strong order to check (1.0 or 1.5); default ``tableau.strong_order``. The
            deterministic conditions up to ``tableau.deterministic_order`` are always included.
        tol: a condition holds iff ``|value - target| <= tol``.
    """
    order = _strong_order(tableau, SRITableau, order)
    alpha = _vec(tableau.alpha)
    betas = [_vec(tableau.beta1), _vec(tableau.beta2), _vec(tableau.beta3), _vec(tableau.beta4)]
    A0, A1, B0, B1 = (_mat(m) for m in (tableau.A0, tableau.A1, tableau.B0, tableau.B1))
    e = [Fraction(1)] * tableau.stages
    A0e, A1e, B0e, B1e = (_matvec(m, e) for m in (A0, A1, B0, B1))
    out = _Collector(tol)

    out.add("strong 0.5", "αᵀe = 1", sum(alpha), 1)
    for k, (beta, target) in enumerate(zip(betas, (1, 0, 0, 0), strict=True), start=1):
        out.add("strong 0.5", f"β{k}ᵀe = {target}", sum(beta), target)
    for k, (beta, target) in enumerate(zip(betas, (0, 1, 0, 0), strict=True), start=1):
        out.add("strong 1.0", f"β{k}ᵀB1e = {target}", _dot(beta, B1e), target)
    if order >= 1.5:
        out.add("strong 1.5", "αᵀA0e = 1/2", _dot(alpha, A0e), Fraction(1, 2))
        out.add("strong 1.5", "αᵀB0e = 1", _dot(alpha, B0e), 1)
        out.add("strong 1.5", "αᵀ(B0e)² = 3/2", _dot(alpha, _sq(B0e)), Fraction(3, 2))
        for k, (beta, target) in enumerate(zip(betas, (1, 0, -1, 0), strict=True), start=1):
            out.add("strong 1.5", f"β{k}ᵀA1e = {target}", _dot(beta, A1e), target)
        for k, (beta, target) in enumerate(zip(betas, (1, 0, -1, 2), strict=True), start=1):
            out.add("strong 1.5", f"β{k}ᵀ(B1e)² = {target}", _dot(beta, _sq(B1e)), target)
        B1B1e = _matvec(B1, B1e)
        for k, (beta, target) in enumerate(zip(betas, (0, 0, 0, 1), strict=True), start=1):
            out.add("strong 1.5", f"β{k}ᵀB1(B1e) = {target}", _dot(beta, B1B1e), target)
        A1B0e = _matvec(A1, B0e)
        out.add(
            "strong 1.5",
            "β1ᵀA1(B0e)/2 + β3ᵀA1(B0e)/3 = 0",
            _dot(betas[0], A1B0e) / 2 + _dot(betas[2], A1B0e) / 3,
            0,
        )
    _deterministic(out, tableau.deterministic_order, order >= 1.5, alpha, A0, A0e)
    return out.result()


def sra_order_conditions(
    tableau: SRATableau, *, order: float | None = None, tol: float = DEFAULT_TOL
) -> OrderConditions:
    """Check ``tableau`` against the SRA conditions up to strong ``order`` (1.0 or 1.5).

    Arguments as for :func:`sri_order_conditions`.
    """
    order = _strong_order(tableau, SRATableau, order)
    alpha, beta1, beta2, c1 = (
        _vec(v) for v in (tableau.alpha, tableau.beta1, tableau.beta2, tableau.c1)
    )
    A0, B0 = _mat(tableau.A0), _mat(tableau.B0)
    e = [Fraction(1)] * tableau.stages
    A0e, B0e = _matvec(A0, e), _matvec(B0, e)
    out = _Collector(tol)

    out.add("strong 1.0", "αᵀe = 1", sum(alpha), 1)
    out.add("strong 1.0", "β1ᵀe = 1", sum(beta1), 1)
    out.add("strong 1.0", "β2ᵀe = 0", sum(beta2), 0)
    if order >= 1.5:
        out.add("strong 1.5", "αᵀB0e = 1", _dot(alpha, B0e), 1)
        out.add("strong 1.5", "αᵀA0e = 1/2", _dot(alpha, A0e), Fraction(1, 2))
        out.add("strong 1.5", "αᵀ(B0e)² = 3/2", _dot(alpha, _sq(B0e)), Fraction(3, 2))
        out.add("strong 1.5", "β1ᵀc1 = 1", _dot(beta1, c1), 1)
        out.add("strong 1.5", "β2ᵀc1 = -1", _dot(beta2, c1), -1)
    _deterministic(out, tableau.deterministic_order, order >= 1.5, alpha, A0, A0e)
    return out.result()

r"""Which order conditions a tableau satisfies: Butcher's rooted trees, Rößler's SRI/SRA lists.

An explicit Runge–Kutta method ``(c, A, b)`` has classical order ``p`` iff
``bᵀΦ(τ) = 1/γ(τ)`` for every rooted tree ``τ`` with at most ``p`` nodes (Butcher; Hairer,
Nørsett & Wanner, *Solving ODEs I*, sec. II.2): with ``e = (1, …, 1)``, a tree whose root has
subtrees ``τ₁ … τ_k`` has the elementary weight vector ``Φ(τ) = ∏_i AΦ(τ_i)`` (component-wise;
``Φ(•) = e``) and the density ``γ(τ) = |τ| ∏_i γ(τ_i)``. The trees up to order 1, 2, 3, 4, 5
number 1, 2, 4, 8, 17. Conditions are written with ``Ae = c``: order 3 is ``bᵀc² = 1/3`` and
``bᵀAc = 1/6``. Residuals are exact rational arithmetic on the stored floats, as in
:mod:`sdekit.tableaux.conditions`, whose result types are reused.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from functools import cache

from sdekit.checks import positive_int
from sdekit.errors import InputTypeError
from sdekit.tableaux.butcher import ButcherTableau
from sdekit.tableaux.conditions import (
    DEFAULT_TOL,
    OrderCondition,
    OrderConditions,
    sra_order_conditions,
    sri_order_conditions,
)
from sdekit.tableaux.stochastic import SRATableau, SRITableau

Tree = tuple  # a rooted tree: the sorted tuple of its root's subtrees; () is the single node


def _order(tree: Tree) -> int:
    return 1 + sum(_order(t) for t in tree)


@cache
def trees(order: int) -> tuple[Tree, ...]:
    """The rooted trees with ``order`` nodes, each once (canonical: subtrees sorted)."""
    if order == 1:
        return ((),)
    smaller = [t for k in range(1, order) for t in trees(k)]
    out = []

    def forests(remaining: int, start: int, chosen: list[Tree]) -> None:
        if remaining == 0:
            out.append(tuple(sorted(chosen, key=repr)))
            return
        for i in range(start, len(smaller)):
            size = _order(smaller[i])
            if size <= remaining:
                forests(remaining - size, i, [*chosen, smaller[i]])

    forests(order - 1, 0, [])
    return tuple(dict.fromkeys(out))


def _density(tree: Tree) -> int:
    out = _order(tree)
    for t in tree:
        out *= _density(t)
    return out


def _weights(tree: Tree, A: list[list[Fraction]]) -> list[Fraction]:
    """``Φ(tree)``: the product over subtrees of ``AΦ(subtree)``."""
    s = len(A)
    out = [Fraction(1)] * s
    for t in tree:
        inner = _weights(t, A)
        row = [sum((A[i][j] * inner[j] for j in range(s)), Fraction(0)) for i in range(s)]
        out = [a * b for a, b in zip(out, row, strict=True)]
    return out


def _name(tree: Tree) -> str:
    """``Φ(tree)`` in matrix notation: ``e``, ``c``, ``c²``, ``Ac``, ``c·Ac``, ``A(c²)``..."""
    if not tree:
        return "e"
    factors = Counter("c" if not t else "A" + _wrap(_name(t)) for t in tree)
    powers = "⁰¹²³⁴⁵⁶⁷⁸⁹"
    return "·".join(
        (_wrap(f) if n > 1 and f != "c" else f) + (powers[n] if n > 1 else "")
        for f, n in sorted(factors.items())
    )


def _wrap(text: str) -> str:
    return f"({text})" if any(ch in text for ch in "·²³⁴A") and len(text) > 1 else text


def butcher_order_conditions(
    tableau: ButcherTableau, *, order: int | None = None, tol: float = DEFAULT_TOL
) -> OrderConditions:
    """The rooted-tree conditions of ``b`` up to ``order`` (a positive int; default
    ``tableau.order``) and those of ``b_embedded`` up to ``tableau.embedded_order`` (group
    ``"embedded k"``)."""
    if not isinstance(tableau, ButcherTableau):
        raise InputTypeError(f"expected a ButcherTableau, got {type(tableau).__name__}")
    order = tableau.order if order is None else positive_int(order, "order")
    s = tableau.stages
    A = [[Fraction(x) for x in row] + [Fraction(0)] * (s - len(row)) for row in tableau.a]
    items = []
    weights = [("order", tableau.b, order)]
    if tableau.b_embedded is not None:
        weights.append(("embedded", tableau.b_embedded, tableau.embedded_order))
    for label, b, p in weights:
        b = [Fraction(x) for x in b]
        for k in range(1, p + 1):
            for tree in trees(k):
                value = sum((x * y for x, y in zip(b, _weights(tree, A), strict=True)), Fraction(0))
                target = Fraction(1, _density(tree))
                residual = float(value - target)
                name = f"{'b̂' if label == 'embedded' else 'b'}ᵀ{_name(tree)} = {target}"
                items.append(
                    OrderCondition(
                        name,
                        f"{label} {k}",
                        float(value),
                        float(target),
                        residual,
                        abs(residual) <= tol,
                    )
                )
    return OrderConditions(tuple(items), tol)


def check_tableau(
    tableau, *, order: float | None = None, tol: float = DEFAULT_TOL
) -> OrderConditions:
    """The order conditions ``tableau`` is checked against, each with its residual.

    ``ButcherTableau``: Butcher's conditions up to ``order`` (a positive int; default: the
    declared order), and the embedded weights' up to their declared order.
    ``SRITableau``/``SRATableau``: Rößler's strong conditions up to ``order`` (default: declared)
    and the deterministic ones (:func:`sdekit.sri_order_conditions`,
    :func:`sdekit.sra_order_conditions`). The result has ``all_hold``, ``failed`` (each with its
    name, e.g. ``"bᵀAc = 1/6"``, and residual) and prints as a table.
    """
    if isinstance(tableau, ButcherTableau):
        return butcher_order_conditions(tableau, order=order, tol=tol)
    if isinstance(tableau, SRITableau):
        return sri_order_conditions(tableau, order=order, tol=tol)
    if isinstance(tableau, SRATableau):
        return sra_order_conditions(tableau, order=order, tol=tol)
    raise InputTypeError(
        f"check_tableau: expected a ButcherTableau, SRITableau or SRATableau, got "
        f"{type(tableau).__name__}"
    )


def deterministic_tableau(
    tableau: SRITableau | SRATableau, order: int | None = None
) -> ButcherTableau:
    """The explicit Runge–Kutta method ``(c0, A0, α)`` a stochastic tableau is when ``g = 0``,
    declared of ``order`` (default: the tableau's deterministic order)."""
    if not isinstance(tableau, SRITableau | SRATableau):
        raise InputTypeError(f"expected an SRITableau or SRATableau, got {type(tableau).__name__}")
    return ButcherTableau(
        c=tableau.c0,
        a=tableau.A0,
        b=tableau.alpha,
        order=tableau.deterministic_order if order is None else order,
    )

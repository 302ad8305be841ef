"""Butcher tableaux for explicit Runge–Kutta methods, as validated immutable data.

Coefficients from Hairer, Nørsett & Wanner, *Solving Ordinary Differential Equations I* (2nd ed.):
Euler, Heun and midpoint (sec. II.1), the classical RK4 (table 1.2), Bogacki & Shampine (1989)
"A 3(2) pair of Runge–Kutta formulas", and Dormand & Prince (1980) "A family of embedded
Runge–Kutta formulae" (table 5.2 of HNW).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction as F

from sdekit.errors import InputValueError


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta method.

    Stage ``i`` is evaluated at ``t + c[i] h`` and ``y + h Σ_{j<i} a[i][j] k_j``; the solution is
    ``y + h Σ b[i] k_i`` and, when ``b_embedded`` is given, the lower-order solution is
    ``y + h Σ b_embedded[i] k_i``. ``a`` is given as its strictly lower-triangular rows
    (``a[i]`` has ``i`` entries, ``a[0] == ()``).

    Attributes:
        order: classical order of ``b``.
        embedded_order: classical order of ``b_embedded`` (``None`` without one).
        fsal: the last stage is ``f(t + h, y_next)`` and is reused as the next step's first stage.
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int
    b_embedded: tuple[float, ...] | None = None
    embedded_order: int | None = None
    fsal: bool = False

    def __post_init__(self):
        s = len(self.c)
        if len(self.a) != s or any(len(row) != i for i, row in enumerate(self.a)):
            raise InputValueError(
                f"ButcherTableau: a must have {s} rows with 0, 1, ..., {s - 1} entries "
                f"(strictly lower triangular), got row lengths {[len(r) for r in self.a]}"
            )
        if len(self.b) != s or (self.b_embedded is not None and len(self.b_embedded) != s):
            raise InputValueError(
                f"ButcherTableau: b and b_embedded must have {s} entries (one per stage)"
            )
        for i, row in enumerate(self.a):
            if not math.isclose(sum(row), self.c[i], rel_tol=1e-12, abs_tol=1e-12):
                raise InputValueError(
                    f"ButcherTableau: row {i} of a sums to {sum(row)} but c[{i}] = {self.c[i]}; "
                    f"explicit RK methods need c_i = Σ_j a_ij"
                )
        for name, w in (("b", self.b), ("b_embedded", self.b_embedded)):
            if w is not None and not math.isclose(sum(w), 1.0, rel_tol=1e-12):
                raise InputValueError(f"ButcherTableau: {name} sums to {sum(w)}, must sum to 1")
        if (self.b_embedded is None) != (self.embedded_order is None):
            raise InputValueError("ButcherTableau: give b_embedded and embedded_order together")
        if self.fsal and (self.c[-1] != 1 or tuple(self.a[-1]) != tuple(self.b[:-1])):
            raise InputValueError("ButcherTableau: fsal needs c[-1] == 1 and a[-1] == b[:-1]")

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def b_error(self) -> tuple[float, ...] | None:
        """Weights of the error estimate ``y_next - y_embedded = h Σ b_error[i] k_i``."""
        if self.b_embedded is None:
            return None
        return tuple(b - e for b, e in zip(self.b, self.b_embedded, strict=True))


def _floats(rows):
    return tuple(tuple(float(x) for x in row) for row in rows)


EULER = ButcherTableau(c=(0.0,), a=((),), b=(1.0,), order=1)

HEUN = ButcherTableau(
    c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5), order=2, b_embedded=(1.0, 0.0), embedded_order=1
)

MIDPOINT = ButcherTableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0), order=2)

RK4 = ButcherTableau(
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    order=4,
)

BOGACKI_SHAMPINE = ButcherTableau(
    c=(0.0, 0.5, 0.75, 1.0),
    a=_floats(((), (F(1, 2),), (0, F(3, 4)), (F(2, 9), F(1, 3), F(4, 9)))),
    b=tuple(float(x) for x in (F(2, 9), F(1, 3), F(4, 9), 0)),
    order=3,
    b_embedded=tuple(float(x) for x in (F(7, 24), F(1, 4), F(1, 3), F(1, 8))),
    embedded_order=2,
    fsal=True,
)

_DP_B = (F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0)
DORMAND_PRINCE = ButcherTableau(
    c=tuple(float(x) for x in (0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1)),
    a=_floats(
        (
            (),
            (F(1, 5),),
            (F(3, 40), F(9, 40)),
            (F(44, 45), F(-56, 15), F(32, 9)),
            (F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)),
            (F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)),
            _DP_B[:-1],
        )
    ),
    b=tuple(float(x) for x in _DP_B),
    order=5,
    b_embedded=tuple(
        float(x)
        for x in (
            F(5179, 57600),
            0,
            F(7571, 16695),
            F(393, 640),
            F(-92097, 339200),
            F(187, 2100),
            F(1, 40),
        )
    ),
    embedded_order=4,
    fsal=True,
)

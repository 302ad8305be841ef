"""Butcher tableaux for explicit Runge–Kutta methods, as validated immutable data.

Coefficients from Hairer, Nørsett & Wanner, *Solving Ordinary Differential Equations I* (2nd ed.):
Euler, Heun and midpoint (sec. II.1), the classical RK4 (table 1.2), Bogacki & Shampine (1989)
"A 3(2) pair of Runge–Kutta formulas", and Dormand & Prince (1980) "A family of embedded
Runge–Kutta formulae" (table 5.2 of HNW).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as F

from sdekit.checks import flag, positive_int
from sdekit.errors import InputValueError

from . import coefficients as coef
from .coefficients import Rows, Vector


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta method.

    Stage ``i`` is evaluated at ``t + c[i] h`` and ``y + h Σ_{j<i} a[i][j] k_j``; the solution is
    ``y + h Σ b[i] k_i`` and, when ``b_embedded`` is given, the lower-order solution is
    ``y + h Σ b_embedded[i] k_i``. ``a`` is given as its strictly lower-triangular rows
    (``a[i]`` has ``i`` entries, ``a[0] == ()``) or as a full square matrix with zeros on and
    above the diagonal; it is stored as rows. ``c`` must be the row sums of ``a`` (``None``:
    computed). Coefficients may be any real numbers (exact fractions included); they are
    stored as floats.

    Attributes:
        order: classical order of ``b`` (a positive int).
        embedded_order: classical order of ``b_embedded``, below ``order`` (``None`` without one).
        fsal: the last stage is ``f(t + h, y_next)`` and is reused as the next step's first stage.
    """

    c: Vector | None
    a: Rows
    b: Vector
    order: int
    b_embedded: Vector | None = None
    embedded_order: int | None = None
    fsal: bool = False

    def __post_init__(self):
        cls = type(self).__name__
        c = None if self.c is None else coef.sequence(self.c, f"{cls}.c")
        b = coef.sequence(self.b, f"{cls}.b")
        b_embedded = (
            None if self.b_embedded is None else coef.sequence(self.b_embedded, f"{cls}.b_embedded")
        )
        rows = coef.matrix(self.a, f"{cls}.a")
        s = coef.stage_count(cls, {"c": c, "b": b, "b_embedded": b_embedded}, {"a": rows})
        set_ = object.__setattr__
        set_(self, "a", coef.lower_rows(rows, s, f"{cls}.a"))
        set_(self, "c", coef.nodes(c, self.a, cls, "c", "a"))
        set_(self, "b", coef.weights(b, f"{cls}.b"))
        if b_embedded is not None:
            set_(self, "b_embedded", coef.weights(b_embedded, f"{cls}.b_embedded"))
        set_(self, "order", positive_int(self.order, f"{cls}.order"))
        if (self.b_embedded is None) != (self.embedded_order is None):
            raise InputValueError(f"{cls}: give b_embedded and embedded_order together")
        if self.embedded_order is not None:
            positive_int(self.embedded_order, f"{cls}.embedded_order")
            if self.embedded_order >= self.order:
                raise InputValueError(
                    f"{cls}: embedded_order={self.embedded_order} must be below "
                    f"order={self.order}: b_embedded is the pair's lower-order solution, and the "
                    f"error estimate h Σ (b - b_embedded)_i k_i is of order embedded_order + 1; "
                    f"to step with the higher-order weights, pass them as b"
                )
        flag(self.fsal, f"{cls}.fsal")
        if self.fsal and (self.c[-1] != 1 or self.a[-1] != self.b[:-1]):
            raise InputValueError(f"{cls}: fsal needs c[-1] == 1 and a[-1] == b[:-1]")

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def b_error(self) -> Vector | None:
        """Weights of the error estimate ``y_next - y_embedded = h Σ b_error[i] k_i``."""
        if self.b_embedded is None:
            return None
        return tuple(b - e for b, e in zip(self.b, self.b_embedded, strict=True))


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
    c=(0, F(1, 2), F(3, 4), 1),
    a=((), (F(1, 2),), (0, F(3, 4)), (F(2, 9), F(1, 3), F(4, 9))),
    b=(F(2, 9), F(1, 3), F(4, 9), 0),
    order=3,
    b_embedded=(F(7, 24), F(1, 4), F(1, 3), F(1, 8)),
    embedded_order=2,
    fsal=True,
)

_DP_B = (F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0)
DORMAND_PRINCE = ButcherTableau(
    c=(0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1),
    a=(
        (),
        (F(1, 5),),
        (F(3, 40), F(9, 40)),
        (F(44, 45), F(-56, 15), F(32, 9)),
        (F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)),
        (F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)),
        _DP_B[:-1],
    ),
    b=_DP_B,
    order=5,
    b_embedded=(
        F(5179, 57600),
        0,
        F(7571, 16695),
        F(393, 640),
        F(-92097, 339200),
        F(187, 2100),
        F(1, 40),
    ),
    embedded_order=4,
    fsal=True,
)

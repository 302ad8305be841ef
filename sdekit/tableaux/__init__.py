"""Schemes as data: Butcher tableaux and stochastic Runge–Kutta tableaux.

The tableau classes, the library's named tableaux and Rößler's order-condition checkers; the
modules are :mod:`~sdekit.tableaux.butcher`, :mod:`~sdekit.tableaux.stochastic` and
:mod:`~sdekit.tableaux.conditions`.
"""

from .butcher import (
    BOGACKI_SHAMPINE,
    DORMAND_PRINCE,
    EULER,
    HEUN,
    MIDPOINT,
    RK4,
    ButcherTableau,
)
from .conditions import (
    OrderCondition,
    OrderConditions,
    sra_order_conditions,
    sri_order_conditions,
)
from .stochastic import (
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
    SRIW1,
    SRIW2,
    SRATableau,
    SRITableau,
)

__all__ = [
    "BOGACKI_SHAMPINE",
    "DORMAND_PRINCE",
    "EULER",
    "HEUN",
    "MIDPOINT",
    "RK4",
    "SOSRA",
    "SOSRA2",
    "SOSRI",
    "SOSRI2",
    "SRA1",
    "SRA2",
    "SRA3",
    "SRA_TABLEAUX",
    "SRI1W1",
    "SRI2W1",
    "SRIW1",
    "SRIW2",
    "SRI_TABLEAUX",
    "ButcherTableau",
    "OrderCondition",
    "OrderConditions",
    "SRATableau",
    "SRITableau",
    "sra_order_conditions",
    "sri_order_conditions",
]

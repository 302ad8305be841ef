"""sdekit: stochastic differential equations in PyTorch.

Problems (:class:`SDE`, :class:`ODE`), schemes as data (Butcher and stochastic Runge–Kutta
tableaux), step-size controllers, Brownian sources that keep one path under rejection, and one
solve loop (:func:`solve`) for fixed and adaptive, shared-time and per-sample stepping.
"""

from . import brownian, controllers, distributed, errors, mcmc, random, solvers, tableaux
from .controllers import (
    AbstractStepSizeController,
    ClipStepSize,
    ConstantStepSize,
    IController,
    PIController,
    PIDController,
    StepTo,
)
from .conversion import to_ito, to_stratonovich
from .errors import InputError, InputTypeError, InputValueError
from .problems import ODE, SDE, as_problem
from .solution import Solution, SolveError, Status
from .solve import solve
from .solvers import (
    SRA,
    SRI,
    AbstractSolver,
    Euler,
    EulerHeun,
    ExplicitRungeKutta,
    Heun,
    ImprovedEuler,
    Milstein,
)
from .tableaux.butcher import ButcherTableau
from .tableaux.conditions import sra_order_conditions, sri_order_conditions
from .tableaux.stochastic import SRATableau, SRITableau

__all__ = [
    "AbstractStepSizeController",
    "ClipStepSize",
    "ConstantStepSize",
    "StepTo",
    "Status",
    "AbstractSolver",
    "ButcherTableau",
    "Euler",
    "EulerHeun",
    "ExplicitRungeKutta",
    "Heun",
    "IController",
    "InputError",
    "InputTypeError",
    "InputValueError",
    "ImprovedEuler",
    "Milstein",
    "ODE",
    "PIController",
    "PIDController",
    "SDE",
    "SRA",
    "SRATableau",
    "SRI",
    "SRITableau",
    "Solution",
    "SolveError",
    "as_problem",
    "brownian",
    "controllers",
    "distributed",
    "errors",
    "mcmc",
    "random",
    "solve",
    "solvers",
    "sra_order_conditions",
    "sri_order_conditions",
    "tableaux",
    "to_ito",
    "to_stratonovich",
]

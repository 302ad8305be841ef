"""Property-based testing of SDE solvers, controllers, Brownian sources and samplers.

The tools sdekit's own test suite is built on, for anyone who writes a scheme, a controller, a
Brownian source or a sampler (guide: ``docs/testing.md``)::

    import sdekit.testing as skt

    skt.strong_order(solver, skt.problems.gbm(), None, 1.0, [2**-k for k in range(3, 8)]).slope
    skt.assert_solver_properties(MyScheme())          # the whole battery, or only=[...]
    skt.check_tableau(my_tableau).failed              # which order conditions do not hold

- :mod:`~sdekit.testing.problems`: SDEs with exact pathwise solutions and with known stationary
  laws.
- :mod:`~sdekit.testing.strategies`: hypothesis strategies (valid tableaux of a given order,
  controllers, problems, rejection patterns); imported on first use, so that the rest of the
  module works without hypothesis.
- measurements: :func:`strong_order`, :func:`weak_order`, :func:`stationary_check`,
  :func:`check_tableau`.
- batteries: :func:`assert_solver_properties`, :func:`assert_controller_properties`,
  :func:`assert_brownian_properties` (and the non-raising ``*_properties`` that return a
  :class:`Report`).

Nothing here imports pytest.
"""

from __future__ import annotations

import importlib

from . import problems
from .battery import (
    CONTROLLER_PROPERTIES,
    SOLVER_PROPERTIES,
    assert_controller_properties,
    assert_solver_properties,
    batch_invariance_gap,
    controller_properties,
    solver_properties,
)
from .brownian import BROWNIAN_PROPERTIES, assert_brownian_properties, brownian_properties
from .measure import (
    DEFAULT_TOLERANCE,
    OrderFit,
    StationaryCheck,
    fit_order,
    ks_normal,
    stationary_check,
    strong_order,
    weak_order,
)
from .paths import RecordingSource, brownian_path, mirrored
from .problems import time_reversed
from .report import PropertyResult, Report
from .tableaux import butcher_order_conditions, check_tableau, deterministic_tableau, trees


def __getattr__(name: str):
    if name == "strategies":  # needs hypothesis: loaded on first use
        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BROWNIAN_PROPERTIES",
    "CONTROLLER_PROPERTIES",
    "DEFAULT_TOLERANCE",
    "OrderFit",
    "PropertyResult",
    "RecordingSource",
    "Report",
    "SOLVER_PROPERTIES",
    "StationaryCheck",
    "assert_brownian_properties",
    "assert_controller_properties",
    "assert_solver_properties",
    "batch_invariance_gap",
    "brownian_path",
    "brownian_properties",
    "butcher_order_conditions",
    "check_tableau",
    "controller_properties",
    "deterministic_tableau",
    "fit_order",
    "ks_normal",
    "mirrored",
    "problems",
    "solver_properties",
    "stationary_check",
    "strategies",
    "strong_order",
    "time_reversed",
    "trees",
    "weak_order",
]

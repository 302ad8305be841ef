"""Measured orders of convergence of the core schemes.

Strong orders are fitted over six step sizes (1/8 ... 1/256) on problems with exact pathwise
solutions; every solve of a fit runs on one ``torchsde.BrownianInterval`` (passed as
``brownian=``), so all step sizes see the same Brownian path. Errors are root mean square at the
final time over 1000 paths (2000 components) in float64, and the fitted slope must lie within
0.15 of the theory. The slopes separate the orders cleanly: Euler–Maruyama fits 0.49–0.57 under
multiplicative noise, the order-1.0 schemes 0.92–1.10 (see the report in each failure message).
"""

from __future__ import annotations

import pytest
import torch
from exact_problems import (
    additive,
    arctan,
    cubic,
    fitted_order,
    gbm,
    ornstein_uhlenbeck,
    smooth_ode,
    strong_errors,
)

import sdekit as sk
from sdekit.solvers import resolve_solver

STEPS = [2.0**-k for k in range(3, 9)]
PATHS = 1000
TOLERANCE = 0.15

AUTOGRAD = sk.Milstein(derivative="autograd")
FINITE_DIFFERENCE = sk.Milstein(derivative="finite_difference")

# (problem, solver, theoretical strong order)
STRONG_CASES = [
    (gbm("ito"), "euler", 0.5),
    (gbm("ito"), AUTOGRAD, 1.0),
    (gbm("ito"), FINITE_DIFFERENCE, 1.0),
    (gbm("stratonovich"), AUTOGRAD, 1.0),
    (gbm("stratonovich"), FINITE_DIFFERENCE, 1.0),
    (gbm("stratonovich"), "heun", 1.0),
    (gbm("stratonovich"), "euler_heun", 1.0),
    (cubic("ito"), "euler", 0.5),
    (cubic("ito"), AUTOGRAD, 1.0),
    (cubic("ito"), FINITE_DIFFERENCE, 1.0),
    (cubic("stratonovich"), AUTOGRAD, 1.0),
    (cubic("stratonovich"), FINITE_DIFFERENCE, 1.0),
    (cubic("stratonovich"), "heun", 1.0),
    (cubic("stratonovich"), "euler_heun", 1.0),
    (arctan("ito"), "euler", 0.5),
    (arctan("ito"), AUTOGRAD, 1.0),
    (arctan("ito"), FINITE_DIFFERENCE, 1.0),
    (arctan("stratonovich"), AUTOGRAD, 1.0),
    (arctan("stratonovich"), FINITE_DIFFERENCE, 1.0),
    (arctan("stratonovich"), "heun", 1.0),
    (arctan("stratonovich"), "euler_heun", 1.0),
    (additive("ito"), "euler", 1.0),
    (additive("ito"), AUTOGRAD, 1.0),
    (ornstein_uhlenbeck("ito"), "euler", 1.0),
    (ornstein_uhlenbeck("ito"), "improved_euler", 1.0),
    (ornstein_uhlenbeck("stratonovich"), "improved_euler", 1.0),
    (ornstein_uhlenbeck("stratonovich"), "heun", 1.0),
]


def _solver_id(solver) -> str:
    return solver if isinstance(solver, str) else f"milstein-{solver.derivative}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "problem, solver, order",
    STRONG_CASES,
    ids=[f"{p.name}-{_solver_id(s)}" for p, s, _ in STRONG_CASES],
)
def test_strong_order_matches_theory(problem, solver, order):
    errors = strong_errors(problem, solver, STEPS, batch=PATHS, seed=0)
    slope = fitted_order(STEPS, errors)
    report = ", ".join(f"{e:.2e}" for e in errors)
    assert abs(slope - order) <= TOLERANCE, (
        f"{problem.name} with {_solver_id(solver)}: fitted strong order {slope:.3f}, expected "
        f"{order} ± {TOLERANCE}; RMS errors at dt = 1/8 ... 1/256: {report}"
    )


# --------------------------------------------------------------------- ODE tableaux

# (solver, classical order, end time, step sizes where the error is asymptotic and above round-off)
ODE_CASES = [
    ("euler", 1, 10.0, [2.0**-k for k in range(4, 9)]),
    ("heun", 2, 10.0, [2.0**-k for k in range(3, 8)]),
    ("midpoint", 2, 10.0, [2.0**-k for k in range(3, 8)]),
    ("rk4", 4, 10.0, [2.0**-k for k in range(3, 8)]),
    ("bosh3", 3, 10.0, [2.0**-k for k in range(2, 7)]),
    ("dopri5", 5, 20.0, [2.0**-k for k in range(2, 7)]),
]


@pytest.mark.parametrize("solver, order, t1, steps", ODE_CASES, ids=[c[0] for c in ODE_CASES])
def test_ode_tableau_reaches_its_classical_order(solver, order, t1, steps):
    ode, exact = smooth_ode()
    y0 = torch.tensor([[1.0, 0.2], [0.5, 0.7]], dtype=torch.float64)
    reference = exact(y0, 0.0, t1)
    errors = [
        float((sk.solve(ode, y0, 0.0, t1, solver=solver, dt=h).ys[-1] - reference).abs().max())
        for h in steps
    ]
    slope = fitted_order(steps, errors)
    assert abs(slope - order) <= TOLERANCE, f"{solver}: order {slope:.3f}, errors {errors}"
    assert resolve_solver(solver, ode).order == order


# (solver, embedded order, step sizes)
EMBEDDED_CASES = [
    ("heun", 1, [2.0**-k for k in range(3, 9)]),
    ("bosh3", 2, [2.0**-k for k in range(2, 8)]),
    ("dopri5", 4, [2.0**-k for k in range(1, 7)]),
]


@pytest.mark.parametrize(
    "solver, embedded, steps", EMBEDDED_CASES, ids=[c[0] for c in EMBEDDED_CASES]
)
def test_embedded_error_estimate_scales_as_step_to_embedded_order_plus_one(solver, embedded, steps):
    # One step from the same point at shrinking h: the estimate y_next - y_embedded is the local
    # error of the embedded solution, C h^(p̂ + 1).
    ode, exact = smooth_ode()
    scheme = resolve_solver(solver, ode)
    t = torch.tensor(0.3, dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.2], [0.5, 0.7]], dtype=torch.float64)
    estimates, local_errors = [], []
    for h in steps:
        y1, y_err, _ = scheme.step(ode, t, y0, h, None, scheme.init(ode, t, y0))
        estimates.append(float(y_err.abs().max()))
        local_errors.append(float((y1 - y_err - exact(y0, 0.3, 0.3 + h)).abs().max()))
    assert abs(fitted_order(steps, estimates) - (embedded + 1)) <= TOLERANCE, estimates
    assert scheme.error_order == embedded + 1
    # The estimate is the embedded solution's actual local error, to leading order.
    for estimate, local in zip(estimates[-2:], local_errors[-2:], strict=True):
        assert estimate == pytest.approx(local, rel=0.1)


def test_adaptive_dopri5_error_follows_the_tolerance():
    ode, exact = smooth_ode()
    y0 = torch.tensor([[1.0, 0.2], [0.5, 0.7]], dtype=torch.float64)
    reference = exact(y0, 0.0, 4.0)
    errors = []
    for tol in (1e-4, 1e-7, 1e-10):
        controller = sk.PIController(rtol=tol, atol=tol)
        sol = sk.solve(ode, y0, 0.0, 4.0, solver="dopri5", controller=controller)
        errors.append(float((sol.ys[-1] - reference).abs().max()))
        assert errors[-1] < 100 * tol
    assert errors[0] > errors[1] > errors[2]

"""Measured orders of convergence of the core schemes, with ``sdekit.testing``.

Strong orders are fitted by :func:`sdekit.testing.strong_order` over six step sizes (1/8 ... 1/256)
on the exact problems of :mod:`sdekit.testing.problems`, every solve of a fit on one Brownian path
per sample, RMS error at ``t = 1`` over 1000 paths in float64. A case passes iff the fit's 95%
bootstrap interval (over paths; half-widths 0.01-0.08 here) reaches within
``DEFAULT_TOLERANCE = 0.15`` of the theory on *both* sides: these problems are sharp for these
schemes (Euler–Maruyama fits 0.49–0.57 under multiplicative noise, the order-one schemes
0.92–1.10), so a scheme half an order off fails.
"""

from __future__ import annotations

import math

import pytest
import torch

import sdekit as sk
import sdekit.testing as skt
from sdekit.solvers import resolve_solver
from sdekit.testing import problems as P

STEPS = [2.0**-k for k in range(3, 9)]
PATHS = 1000

AUTOGRAD = sk.Milstein(derivative="autograd")
FINITE_DIFFERENCE = sk.Milstein(derivative="finite_difference")
MU, SIGMA = torch.tensor([0.5, -0.3]), torch.tensor([0.8, 0.5])


def gbm(calculus):
    return P.gbm(MU, SIGMA, calculus=calculus)


# 256 panels: the exact solution to ~1e-6 (RMS), below the order-one schemes' 1e-3 at h = 1/256
OU_ITO = P.ornstein_uhlenbeck(calculus="ito", panels=256)
OU_STRATONOVICH = P.ornstein_uhlenbeck(calculus="stratonovich", panels=256)


# (problem, solver, theoretical strong order)
STRONG_CASES = [
    (gbm("ito"), "euler", 0.5),
    (gbm("ito"), AUTOGRAD, 1.0),
    (gbm("ito"), FINITE_DIFFERENCE, 1.0),
    (gbm("stratonovich"), AUTOGRAD, 1.0),
    (gbm("stratonovich"), FINITE_DIFFERENCE, 1.0),
    (gbm("stratonovich"), "heun", 1.0),
    (gbm("stratonovich"), "euler_heun", 1.0),
    (P.cubic(calculus="ito"), "euler", 0.5),
    (P.cubic(calculus="ito"), AUTOGRAD, 1.0),
    (P.cubic(calculus="ito"), FINITE_DIFFERENCE, 1.0),
    (P.cubic(calculus="stratonovich"), AUTOGRAD, 1.0),
    (P.cubic(calculus="stratonovich"), FINITE_DIFFERENCE, 1.0),
    (P.cubic(calculus="stratonovich"), "heun", 1.0),
    (P.cubic(calculus="stratonovich"), "euler_heun", 1.0),
    (P.arctan(calculus="ito"), "euler", 0.5),
    (P.arctan(calculus="ito"), AUTOGRAD, 1.0),
    (P.arctan(calculus="ito"), FINITE_DIFFERENCE, 1.0),
    (P.arctan(calculus="stratonovich"), AUTOGRAD, 1.0),
    (P.arctan(calculus="stratonovich"), FINITE_DIFFERENCE, 1.0),
    (P.arctan(calculus="stratonovich"), "heun", 1.0),
    (P.arctan(calculus="stratonovich"), "euler_heun", 1.0),
    (P.sinh(calculus="ito"), "euler", 0.5),
    (P.sinh(calculus="ito"), AUTOGRAD, 1.0),
    (P.sinh(calculus="stratonovich"), "euler_heun", 1.0),
    (P.linear_system(*P.commuting_matrices(2, 3), calculus="ito"), "euler", 0.5),
    (P.linear_system(*P.commuting_matrices(2, 3), calculus="ito"), AUTOGRAD, 1.0),
    (P.linear_system(*P.commuting_matrices(2, 3), calculus="stratonovich"), "heun", 1.0),
    (P.additive_linear(calculus="ito"), "euler", 1.0),
    (P.additive_linear(calculus="ito"), AUTOGRAD, 1.0),
    (OU_ITO, "euler", 1.0),
    (OU_ITO, "improved_euler", 1.0),
    (OU_STRATONOVICH, "improved_euler", 1.0),
    (OU_STRATONOVICH, "heun", 1.0),
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
    fit = skt.strong_order(solver, problem, None, 1.0, STEPS, n_paths=PATHS, seed=0)
    failure = fit.failure(order)
    assert failure is None, f"{problem.name} with {_solver_id(solver)}: {failure}"


# (solver, problem, weak order): the bias of E[Y] and E[Y^2] (additive noise: resolved by the
# control variate to ~1e-7 at 10^4 paths, errors 1e-2 ... 1e-6) at h = 1/4 ... 1/32
WEAK_CASES = [
    ("euler", P.additive_linear(calculus="ito"), 1.0),
    ("euler", P.ornstein_uhlenbeck(calculus="ito", panels=64), 1.0),
    ("heun", P.additive_linear(calculus="stratonovich"), 2.0),
    ("improved_euler", P.additive_linear(calculus="ito"), 2.0),
]


@pytest.mark.parametrize(
    "solver, problem, order", WEAK_CASES, ids=[f"{s}-{p.name}" for s, p, _ in WEAK_CASES]
)
def test_weak_order_matches_theory(solver, problem, order):
    # Trapezoidal schemes are second order in the mean on linear problems; Euler–Maruyama first.
    fit = skt.weak_order(
        solver,
        problem,
        None,
        1.0,
        [2.0**-k for k in range(2, 6)],
        phi=lambda y: torch.cat([y, y * y], -1),
        n_paths=10_000,
    )
    assert fit.failure(order) is None, fit.failure(order)
    assert max(s / e for s, e in zip(fit.error_se, fit.errors, strict=True)) < 0.05  # resolved


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
    ode = P.smooth_ode()
    y0 = torch.tensor([[1.0, 0.2], [0.5, 0.7]], dtype=torch.float64)
    fit = skt.strong_order(solver, ode, y0, t1, steps)
    assert fit.kind == "classical" and fit.failure(order) is None, fit.failure(order)


# (solver, embedded order, step sizes)
EMBEDDED_CASES = [
    ("heun", 1, [2.0**-k for k in range(3, 9)]),
    ("bosh3", 2, [2.0**-k for k in range(2, 8)]),
    ("dopri5", 4, [2.0**-k for k in range(1, 7)]),
]


@pytest.mark.parametrize(
    "solver, embedded, steps", EMBEDDED_CASES, ids=[c[0] for c in EMBEDDED_CASES]
)
def test_embedded_error_estimate_is_the_embedded_solutions_local_error(solver, embedded, steps):
    # One step from the same point at shrinking h: the estimate y_next - y_embedded is the local
    # error of the embedded solution, C h^(p̂ + 1), to leading order.
    ode = P.smooth_ode()
    scheme = resolve_solver(solver, ode)
    t = torch.tensor(0.3, dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.2], [0.5, 0.7]], dtype=torch.float64)
    estimates, local_errors = [], []
    for h in steps:
        y1, y_err, _ = scheme.step(ode, t, y0, h, None, scheme.init(ode, t, y0))
        estimates.append(float(y_err.abs().max()))
        local_errors.append(float((y1 - y_err - ode.exact(y0, None, 0.3, 0.3 + h)).abs().max()))
    fit = skt.fit_order(
        steps,
        torch.tensor([estimates]),
        kind="error estimate",
        finish=lambda e: e,
        deterministic=True,
    )
    assert fit.failure(embedded + 1) is None, fit.failure(embedded + 1)
    for estimate, local in zip(estimates[-2:], local_errors[-2:], strict=True):
        assert estimate == pytest.approx(local, rel=0.1)


# Global error per unit tolerance of dopri5 with a PI controller on the smooth ODE over [0, 4]
# (measured 0.02-0.9 at tolerances 1e-4 ... 1e-10): the bound is 10x the largest, and a solve
# that returned y0 (error about 1.3) would exceed it at every tolerance.
ERROR_PER_TOLERANCE = 10.0


def test_adaptive_dopri5_error_follows_the_tolerance():
    ode = P.smooth_ode()
    y0 = torch.tensor([[1.0, 0.2], [0.5, 0.7]], dtype=torch.float64)
    reference = ode.exact(y0, None, 0.0, 4.0)
    errors = []
    for tol in (1e-4, 1e-7, 1e-10):
        controller = sk.PIController(rtol=tol, atol=tol)
        sol = sk.solve(ode, y0, 0.0, 4.0, solver="dopri5", controller=controller)
        errors.append(float((sol.ys[-1] - reference).abs().max()))
        assert errors[-1] <= ERROR_PER_TOLERANCE * tol, (tol, errors[-1])
    assert errors[0] > 30 * errors[1] > 900 * errors[2]


@pytest.mark.parametrize("derivative", ["autograd", "finite_difference"])
def test_stratonovich_milstein_keeps_only_the_diagonal_correction(derivative):
    """dY = 0.8 flip(Y) ∘ dW declared diagonal: the Stratonovich correction of diagonal noise,
    g_i ∂g_i/∂y_i, is zero here, so E|Y_1|² = |Y_0|² e^{0.64}; the full J_g g would add the
    cross terms (E|Y_1|² = 3.58 with it, measured)."""
    n = 20_000
    sde = sk.SDE(
        lambda t, y: torch.zeros_like(y),
        lambda t, y: 0.8 * y.flip(-1),
        noise="diagonal",
        calculus="stratonovich",
    )
    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64).expand(n, 2).clone()
    y1 = sk.solve(sde, y0, 0.0, 1.0, solver=sk.Milstein(derivative), dt=2**-5, generator=1).ys[-1]
    q = y1.square().sum(1)
    z = (float(q.mean()) - math.exp(0.64)) / (float(q.std()) / math.sqrt(n))
    assert abs(z) < 4, z

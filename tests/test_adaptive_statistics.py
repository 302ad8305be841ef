"""Long-run statistics of per-sample adaptive solves: one Brownian path versus re-drawn noise.

The double well ``dY = (Y - Y^3) dt + sigma dW`` has the stationary density
``p(y) ∝ exp((2/sigma^2)(y^2/2 - y^4/4))``. Started from that law, ``Y_T`` must follow it at every
``T``. improved_euler's error estimate is ``(h/2)(f(y_EM) - f(y)) ≈ (h/2) f'(y) sigma dW``: it is
driven by the noise, so the controller rejects the large increments. Re-drawing the noise after a
rejection keeps the small ones and shrinks the spread (measured.md: 60-85% too small second
moments); a bridge that keeps one path per sample does not.

Measured (4000 samples, tol 1e-2, T = 5): rejection rate 0.43; bridge E[Y^2] +1.8% (standard
error 1.3%), E[Y^4] +0.6% (2.3%), Var(W_T)/T = 1.00; re-drawn E[Y^2] -51%, E[Y^4] -76%. With
40000 samples the bridge's E[Y^2] is +4.6% ± 0.4% at tol 1e-2 and +2.1% at tol 3e-3 (fixed steps
of the same mean size: +0.4%): choosing each step with noise that has not been applied yet
biases the solution by O(h), the inherent effect measured.md reports; SYSTEMATIC allows for it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

import sdekit as sk
from sdekit.brownian import BrownianBridge, BrownianSource, GaussianIncrements

F64 = torch.float64
SIGMA = 1.0
SAMPLES = 4000
HORIZON = 5.0
TOL = 1e-2
SYSTEMATIC = 0.07  # relative allowance for the step-selection bias (+4.6% measured above)
Z_LIMIT = 4.0  # standard errors


def _log_density(y):
    return (2 / SIGMA**2) * (y**2 / 2 - y**4 / 4)


def _stationary_moment(power: int) -> float:
    weight = integrate.quad(lambda y: math.exp(_log_density(y)), -np.inf, np.inf)[0]
    moment = integrate.quad(lambda y: y**power * math.exp(_log_density(y)), -np.inf, np.inf)[0]
    return moment / weight


def _stationary_sample(n: int, seed: int) -> torch.Tensor:
    """Inverse-CDF draws from the stationary law (grid of 20001 points on [-4, 4])."""
    grid = np.linspace(-4.0, 4.0, 20001)
    cdf = np.cumsum(np.exp(_log_density(grid)))
    cdf /= cdf[-1]
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=F64).numpy()
    return torch.from_numpy(np.interp(u, cdf, grid)).reshape(n, 1)


class _PathRecorder(BrownianSource):
    """Passes a source through, summing the accepted increments: ``W_T - W_0`` per sample."""

    def __init__(self, source: BrownianSource, shape: tuple[int, ...]):
        self.source = source
        self.levy_area = source.levy_area
        self.total = torch.zeros(shape, dtype=F64)
        self._last = None

    def increment(self, t, h):
        inc = self.source.increment(t, h)
        self._last = inc.dW
        return inc

    def commit(self, accept):
        self.source.commit(accept)
        mask = accept.reshape((-1,) + (1,) * (self.total.dim() - 1))
        self.total = self.total + torch.where(mask, self._last, 0.0)


@pytest.fixture(scope="module")
def double_well_runs():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: threads only add contention
    try:
        sde = sk.SDE(
            lambda t, y: y - y**3, lambda t, y: torch.full_like(y, SIGMA), noise="additive"
        )
        y0 = _stationary_sample(SAMPLES, seed=0)
        runs = {}
        for name, kind in (("bridge", BrownianBridge), ("redraw", GaussianIncrements)):
            generator = torch.Generator().manual_seed(1)
            source = kind(y0.shape, dtype=F64, device=y0.device, generator=generator)
            recorder = _PathRecorder(source, y0.shape)
            controller = sk.IController(rtol=TOL, atol=TOL, per_sample=True)
            sol = sk.solve(
                sde,
                y0,
                0.0,
                HORIZON,
                solver="improved_euler",
                controller=controller,
                brownian=recorder,
            )
            runs[name] = (sol, recorder.total)
        return runs
    finally:
        torch.set_num_threads(threads)


def _moment_errors(y: torch.Tensor) -> dict[int, tuple[float, float]]:
    """Relative error of E[Y^p] and its standard error, p = 2, 4."""
    out = {}
    for power in (2, 4):
        values = y.flatten() ** power
        exact = _stationary_moment(power)
        out[power] = (
            values.mean().item() / exact - 1,
            values.std().item() / math.sqrt(values.numel()) / exact,
        )
    return out


def _moments_match(y: torch.Tensor) -> bool:
    return all(abs(rel) <= Z_LIMIT * se + SYSTEMATIC for rel, se in _moment_errors(y).values())


def _rejection_rate(sol) -> float:
    return sol.stats["rejected"].sum().item() / sol.stats["steps"].sum().item()


def test_bridged_adaptive_solve_keeps_the_double_well_stationary_moments(double_well_runs):
    sol, _ = double_well_runs["bridge"]
    assert sol.stats["steps"].shape == (SAMPLES,)
    assert _rejection_rate(sol) > 0.25  # the rejection rule really is exercised
    assert torch.isfinite(sol.ys[-1]).all()
    assert _moments_match(sol.ys[-1]), _moment_errors(sol.ys[-1])


def test_an_adaptive_solve_with_default_arguments_keeps_one_path(double_well_runs):
    # No brownian= given: the solve must be the bridged one (same generator, same draws), not the
    # biased re-draw.
    sde = sk.SDE(lambda t, y: y - y**3, lambda t, y: torch.full_like(y, SIGMA), noise="additive")
    y0 = _stationary_sample(SAMPLES, seed=0)
    controller = sk.IController(rtol=TOL, atol=TOL, per_sample=True)
    generator = torch.Generator().manual_seed(1)
    sol = sk.solve(
        sde, y0, 0.0, HORIZON, solver="improved_euler", controller=controller, generator=generator
    )
    assert torch.equal(sol.ys, double_well_runs["bridge"][0].ys)
    assert _moments_match(sol.ys[-1]), _moment_errors(sol.ys[-1])


def test_redrawing_noise_on_rejection_fails_the_stationary_moments_check(double_well_runs):
    sol, _ = double_well_runs["redraw"]
    assert _rejection_rate(sol) > 0.25
    assert not _moments_match(sol.ys[-1]), _moment_errors(sol.ys[-1])
    rel2, _ = _moment_errors(sol.ys[-1])[2]
    assert rel2 < -0.3  # far too narrow, as measured.md reports (60-85% on its problem)


def test_bridged_accepted_increments_sum_to_a_brownian_endpoint(double_well_runs):
    """Rejection depends on the noise, so single accepted increments are a selected sample;
    their sum over the horizon is still exactly ``W_T ~ N(0, T)`` for one path per sample."""
    _, w = double_well_runs["bridge"]
    ratio = w.var().item() / HORIZON
    standard_error = math.sqrt(2 / (SAMPLES - 1))
    assert abs(ratio - 1) <= Z_LIMIT * standard_error, ratio
    assert abs(w.mean().item()) <= Z_LIMIT * math.sqrt(HORIZON / SAMPLES)
    _, w_redraw = double_well_runs["redraw"]
    assert w_redraw.var().item() / HORIZON < 1 - 10 * standard_error

"""Exponential reverse-SDE schemes and ``sampler="adaptive"`` on Gaussian data with an exact score.

For Gaussian data the denoiser is affine in ``x``, so one step of either scheme is
``x' = a x + b ξ + c`` with ``ξ = ΔW/√|Δt|``: three calls of ``step`` give ``(a, b, c)`` and the
mean and variance of the scheme's terminal law follow exactly, with no sampling error. That makes
the variance and weak-order checks deterministic.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

import sdekit as sk
import sdekit.testing as skt
import sdekit_score as ss
from sdekit.batching import bcast
from sdekit.brownian import Increment
from sdekit.errors import InputTypeError, InputValueError
from sdekit_score.sampling.exponential_sde import (
    ExponentialEuler,
    ExponentialHeun,
    ExponentialMultistep,
    ExponentialMultistepFSAL,
)
from sdekit_score.sampling.processes import EDMProcess, reverse_sde

F64 = torch.float64
PROCESSES = {"vp": ss.VPSDE, "ve": ss.VESDE, "subvp": ss.SubVPSDE, "edm": EDMProcess}
MEAN = 0.3
WEAK_VARIANCE = 0.05


def gaussian_score(process, variance: float, mean: float = MEAN):
    """The exact score of ``p_t`` for data ``N(mean, variance)`` in every element."""

    def score(x, t):
        alpha, sigma = bcast(process.alpha(t), x), bcast(process.sigma(t), x)
        return -(x - alpha * mean) / (alpha**2 * variance + sigma**2)

    return score


def terminal_moments(solver, process, variance: float, steps: int, t1: float, noise_below=None):
    """Exact mean and variance of ``solver``'s state at ``t1`` after ``steps`` equal steps from
    the prior at ``T`` (and one more landing where the noise stops, with ``noise_below``), by
    propagating the affine one-step map."""
    problem = reverse_sde(process, gaussian_score(process, variance), noise_below=noise_below)
    ts = torch.linspace(process.T, t1, steps + 1, dtype=F64)
    if noise_below is not None:
        switch = torch.tensor([problem.noise_until], dtype=F64)
        ts = torch.cat([ts, switch]).unique().flip(0)
    mean, var = 0.0, process.prior_std**2
    for t, t_next in zip(ts[:-1], ts[1:], strict=True):
        h = float(t_next - t)
        y = torch.tensor([[0.0], [1.0], [0.0]], dtype=F64)
        dW = torch.tensor([[0.0], [0.0], [math.sqrt(abs(h))]], dtype=F64)
        out = solver.step(problem, t, y, h, Increment(dW), None)[0][:, 0]
        c, a, b = float(out[0]), float(out[1] - out[0]), float(out[2] - out[0])
        mean, var = a * mean + c, a * a * var + b * b
    return mean, var


def multistep_moments(process, variance: float, steps: int, t1: float, noise_below=None):
    """:func:`terminal_moments` for :class:`ExponentialMultistep`, whose step also reads the
    previous step's denoised value: the mean and covariance of ``(x, D_prev)`` are propagated
    through the affine one-step map, read off the step at unit inputs."""
    solver = ExponentialMultistep()
    problem = reverse_sde(process, gaussian_score(process, variance), noise_below=noise_below)
    ts = torch.linspace(process.T, t1, steps + 1, dtype=F64)
    if noise_below is not None:
        switch = torch.tensor([problem.noise_until], dtype=F64)
        ts = torch.cat([ts, switch]).unique().flip(0)
    mean = torch.zeros(2, dtype=F64)
    cov = torch.diag(torch.tensor([process.prior_std**2, 0.0], dtype=F64))
    h_prev = torch.zeros((), dtype=F64)
    for t, t_next in zip(ts[:-1], ts[1:], strict=True):
        h = float(t_next - t)
        # rows: nothing, x = 1, D_prev = 1, dW = sqrt(|h|)
        y = torch.tensor([[0.0], [1.0], [0.0], [0.0]], dtype=F64)
        d_prev = torch.tensor([[0.0], [0.0], [1.0], [0.0]], dtype=F64)
        dW = torch.tensor([[0.0], [0.0], [0.0], [math.sqrt(abs(h))]], dtype=F64)
        out, _, (denoised, h_prev) = solver.step(problem, t, y, h, Increment(dW), (d_prev, h_prev))
        x_next, d_now = out[:, 0], denoised[:, 0]
        A = torch.tensor(
            [[x_next[1] - x_next[0], x_next[2] - x_next[0]], [d_now[1] - d_now[0], 0.0]],
            dtype=F64,
        )
        c = torch.stack([x_next[0], d_now[0]])
        b = torch.tensor([x_next[3] - x_next[0], 0.0], dtype=F64)
        mean, cov = A @ mean + c, A @ cov @ A.T + torch.outer(b, b)
    return float(mean[0]), float(cov[0, 0])


def exact_moments(process, variance: float, t: float):
    t = torch.tensor(t, dtype=F64)
    alpha, sigma = float(process.alpha(t)), float(process.sigma(t))
    return alpha * MEAN, alpha**2 * variance + sigma**2


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_sharp_mode_keeps_its_variance_at_any_step_size(name, steps):
    # A mode 100x narrower than the noise at eps: D is nearly constant, the linear part exact.
    process = PROCESSES[name]()
    variance = 1e-4 * float(process.sigma(torch.tensor(process.eps, dtype=F64))) ** 2
    mean, var = exact_moments(process, variance, process.eps)
    for solver in (ExponentialEuler(), ExponentialHeun()):
        m, v = terminal_moments(solver, process, variance, steps, process.eps)
        assert v / var == pytest.approx(1, abs=2e-3), solver.name
        assert m == pytest.approx(mean, abs=1e-6)
    m, v = multistep_moments(process, variance, steps, process.eps)
    assert v / var == pytest.approx(1, abs=2e-3) and m == pytest.approx(mean, abs=1e-6)
    # stochastic Heun on the same steps (rate x step far above 1) is off by orders of magnitude
    _, v = terminal_moments(sk.ImprovedEuler(), process, variance, steps, process.eps)
    assert not 0.5 < v / var < 2


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_sharp_mode_keeps_its_variance_with_noise_only_below_a_level(name, steps):
    # Above the level the steps follow the probability flow, also exact for a sharp mode; a
    # step of the flow with the SDE's decay (or its noise) would shrink (or widen) the mode.
    process = PROCESSES[name]()
    variance = 1e-4 * float(process.sigma(torch.tensor(process.eps, dtype=F64))) ** 2
    mean, var = exact_moments(process, variance, process.eps)
    low, high = process.noise_level_range()
    level = math.sqrt(low * high)
    for solver in (ExponentialEuler(), ExponentialHeun()):
        m, v = terminal_moments(solver, process, variance, steps, process.eps, level)
        assert v / var == pytest.approx(1, abs=2e-3), solver.name
        assert m == pytest.approx(mean, abs=1e-6)


def test_noise_below_is_the_probability_flow_above_and_the_reverse_sde_below():
    process = ss.VPSDE()
    score = gaussian_score(process, 0.05)
    switched = reverse_sde(process, score, noise_below=1.0)
    until = switched.noise_until
    assert float(process.noise_level(torch.tensor(until, dtype=F64))) == pytest.approx(1.0)
    sde, flow = reverse_sde(process, score), ss.probability_flow(process, score)
    x = torch.linspace(-2, 2, 6, dtype=F64).view(3, 2)
    for t in (0.9, until + 1e-3):
        t = torch.tensor(t, dtype=F64)
        torch.testing.assert_close(switched.f(t, x), flow.f(t, x), rtol=1e-12, atol=0)
        assert not bool(switched.g(t, x).any())
    for t in (until, 0.1):
        t = torch.tensor(t, dtype=F64)
        torch.testing.assert_close(switched.f(t, x), sde.f(t, x), rtol=1e-12, atol=0)
        torch.testing.assert_close(switched.g(t, x), sde.g(t, x), rtol=1e-12, atol=0)
    per_sample = torch.tensor([0.9, until, 0.1], dtype=F64)  # one row above, two at or below
    g = switched.g(per_sample, x)
    assert g[0].abs().max() == 0 and bool((g[1:] > 0).all())


@pytest.mark.parametrize("bad", [0.0, -0.5, math.inf, "0.1"])
def test_noise_below_must_be_a_positive_noise_level(bad):
    process = ss.VPSDE()
    with pytest.raises((InputValueError, InputTypeError), match="noise_below"):
        reverse_sde(process, gaussian_score(process, 0.05), noise_below=bad)


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("flow", [False, True], ids=["sde", "flow above noise_below"])
def test_heun_is_exact_when_the_denoiser_is_linear_in_log_snr(name, flow):
    # D = c0 + c1·λ(t): the corrector's interpolation is exact, so one large step without noise
    # equals variation of constants, x_t = (σ_t/σ_s)e^{-η²h} x_s + α_t ∫_0^h 2c e^{-2cu} D(λ_t − u) du
    # with c = (1 + η²)/2 (η = 1, or 0 above noise_below) and
    # ∫_0^h 2c u e^{-2cu} du = (1 − e^{-2ch})/(2c) − h e^{-2ch}.
    process = PROCESSES[name]()
    eta2 = 0.0 if flow else 1.0
    c = (1 + eta2) / 2
    c0, c1 = 0.3, -0.2

    def log_snr(t):
        t = torch.as_tensor(t, dtype=F64)
        return torch.log(process.alpha(t) / process.sigma(t))

    problem = sk.SDE(lambda t, y: y, lambda t, y: torch.ones_like(y), noise="additive")
    problem.process = process
    problem.denoiser = lambda t, y: (c0 + c1 * log_snr(t)) * torch.ones_like(y)
    problem.noise_until = process.eps if flow else None
    s, t = 0.9 * process.T, 2 * process.eps
    x_s = torch.tensor([[0.7]], dtype=F64)
    inc = Increment(torch.zeros_like(x_s))
    x_t = ExponentialHeun().step(problem, torch.tensor(s, dtype=F64), x_s, t - s, inc, None)[0]
    lam_s, lam_t = log_snr(s), log_snr(t)
    h = lam_t - lam_s
    ts = torch.tensor([s, t], dtype=F64)
    alpha_t, (sigma_s, sigma_t) = process.alpha(ts)[1], process.sigma(ts)
    one_minus = -torch.expm1(-2 * c * h)
    integral = (c0 + c1 * lam_t) * one_minus - c1 * (
        one_minus / (2 * c) - h * torch.exp(-2 * c * h)
    )
    exact = sigma_t / sigma_s * torch.exp(-eta2 * h) * x_s + alpha_t * integral
    assert float(h) > 3  # a large step: a merely second-order weight would be far off
    torch.testing.assert_close(x_t, exact, rtol=1e-10, atol=1e-12)


@functools.cache
def _fine_moments(name: str, t1: float, noise_below: float | None):
    # The prior N(0, prior_std^2) is not exactly p_T, so each member of the family has its own
    # limit: compare with a fine solve of the same one from the same prior (exponential Heun at
    # 1024 steps: its weak error is below 1e-7 here).
    process = PROCESSES[name]()
    return terminal_moments(ExponentialHeun(), process, WEAK_VARIANCE, 1024, t1, noise_below)


def _fitted_slope(steps, errors) -> float:
    """``p`` of the least-squares fit ``log error = −p log n + c`` over step counts ``n``."""
    design = torch.tensor([[math.log(n), 1.0] for n in steps], dtype=F64)
    logs = torch.tensor(errors, dtype=F64).log()[:, None]
    return -float(torch.linalg.lstsq(design, logs).solution[0])


def _weak_errors(solver, name, steps, t1, noise_below=None):
    process, variance = PROCESSES[name](), WEAK_VARIANCE
    mean, var = _fine_moments(name, t1, noise_below)
    return [
        math.hypot(m - mean, v - var)
        for m, v in (terminal_moments(solver, process, variance, n, t1, noise_below) for n in steps)
    ]


@pytest.mark.parametrize("name, t1", [("ve", 0.2), ("subvp", 0.2)])
@pytest.mark.parametrize("solver", [ExponentialEuler(), ExponentialHeun()], ids=lambda s: s.name)
@pytest.mark.parametrize("switch", [None, 0.57], ids=["sde", "noise below the level at t=0.57"])
def test_weak_order_is_the_declared_one(name, t1, solver, switch):
    steps = [16, 32, 64, 128]
    level = None if switch is None else float(PROCESSES[name]().noise_level(torch.tensor(switch)))
    errors = _weak_errors(solver, name, steps, t1, level)
    slope = _fitted_slope(steps, errors)
    assert slope == pytest.approx(solver.weak_order, abs=0.2), errors


@pytest.mark.parametrize("name, t1", [("ve", 0.2), ("subvp", 0.2), ("vp", 0.2)])
@pytest.mark.parametrize("switch", [None, 0.57], ids=["sde", "noise below the level at t=0.57"])
def test_the_multistep_scheme_has_weak_order_two(name, t1, switch):
    process, steps = PROCESSES[name](), [16, 32, 64, 128]
    level = None if switch is None else float(process.noise_level(torch.tensor(switch)))
    mean, var = _fine_moments(name, t1, level)
    errors = [
        math.hypot(m - mean, v - var)
        for m, v in (multistep_moments(process, WEAK_VARIANCE, n, t1, level) for n in steps)
    ]
    slope = _fitted_slope(steps, errors)
    assert slope == pytest.approx(ExponentialMultistep.weak_order, abs=0.2), errors


def _first_step(process):
    """A problem and the arguments of a first step from t = 0.8 (no previous step)."""
    problem = reverse_sde(process, gaussian_score(process, 0.05))
    y = torch.linspace(-1, 1, 6, dtype=F64).view(3, 2)
    return problem, y, Increment(torch.full_like(y, 0.1)), torch.tensor(0.8, dtype=F64)


def test_the_multistep_scheme_starts_as_exponential_euler():
    problem, y, inc, t = _first_step(ss.VESDE())
    state = ExponentialMultistep().init(problem, t, y)
    first = ExponentialMultistep().step(problem, t, y, -0.3, inc, state)[0]
    torch.testing.assert_close(first, ExponentialEuler().step(problem, t, y, -0.3, inc, None)[0])


def test_the_fsal_multistep_scheme_starts_as_exponential_euler_against_heun():
    # Without a previous step the extrapolation is zero: the step is exponential Euler's, and
    # the estimate (the denoiser at its end against no change) is exponential Heun's correction.
    problem, y, inc, t = _first_step(ss.VPSDE())
    fsal = ExponentialMultistepFSAL()
    y_next, error, (denoised_end, denoised, _) = fsal.step(
        problem, t, y, -0.3, inc, fsal.init(problem, t, y)
    )
    torch.testing.assert_close(y_next, ExponentialEuler().step(problem, t, y, -0.3, inc, None)[0])
    heun_next, heun_error, _ = ExponentialHeun().step(problem, t, y, -0.3, inc, None)
    torch.testing.assert_close(error, -heun_error)
    torch.testing.assert_close(denoised_end, problem.denoiser(t - 0.3, y_next))
    torch.testing.assert_close(denoised, problem.denoiser(t, y))


@pytest.mark.parametrize("per_sample", [True, False])
def test_the_fsal_multistep_scheme_takes_the_multistep_schemes_steps(per_sample):
    # Adaptive steps made to accept everything and land on a grid (the probability flow, so no
    # noise source differs) against the multistep scheme on that grid as fixed steps.
    process = ss.VESDE()
    problem = reverse_sde(process, gaussian_score(process, 0.05), noise_below=1e-6)
    x = process.prior_sample((8, 3), generator=0, dtype=F64)
    grid = ss.time_grid(process, 12, "logsnr")
    accept_all = sk.PIController(rtol=0.0, atol=1e9, per_sample=per_sample)
    adaptive = sk.solve(
        problem, x, process.T, process.eps, solver=ExponentialMultistepFSAL(), dt=10.0,
        controller=sk.ClipStepSize(accept_all, step_ts=grid[1:-1]),
    )  # fmt: skip
    fixed = sk.solve(
        problem, x, process.T, process.eps, solver=ExponentialMultistep(),
        controller=sk.StepTo(grid),
    )  # fmt: skip
    assert bool((torch.as_tensor(adaptive.stats["accepted"]) == 12).all())
    torch.testing.assert_close(adaptive.ys[-1], fixed.ys[-1], rtol=1e-12, atol=1e-12)
    # a fixed-step solve runs the multistep scheme itself: no evaluation after the last step
    grid_fsal = sk.solve(
        problem, x, process.T, process.eps, solver=ExponentialMultistepFSAL(),
        controller=sk.StepTo(grid),
    )  # fmt: skip
    assert grid_fsal.stats["nfe_drift"] == 12


@pytest.mark.slow
def test_adaptive_keeps_the_light_modes_weights_with_its_grid():
    # The 2-D ring of ten modes with weights 1..10 (bench/samplers.py); at tol 0.1 unbounded
    # per-sample steps move mass from the four light modes to the heavy ones (-7.9 ± 0.8 per
    # mille over 16 seeds, 6.5 standard errors of this test's 100000 samples), the 30-step
    # log-SNR grid keeps it within their noise (-1.3 ± 0.9, docs/benchmarks.md).
    process = ss.VPSDE()
    angles = 2 * math.pi * torch.arange(10, dtype=F64) / 10
    means = 0.8 * torch.stack([angles.cos(), angles.sin()], dim=1)
    mixture = ss.GaussianMixture(means, 0.04, torch.arange(1, 11, dtype=F64))
    n, light = 100_000, float(mixture.weights[:4].sum())
    se = math.sqrt(light * (1 - light) / n)

    def shift(grid_steps):
        x, _ = ss.sample(
            mixture.score(process), process, (n, 2), sampler="adaptive", tol=0.1,
            grid_steps=grid_steps, generator=0,
        )  # fmt: skip
        nearest = torch.cdist(x.double(), means).argmin(1)
        return float((nearest < 4).double().mean()) - light

    assert abs(shift(30)) < 4 * se
    assert shift(None) < -4 * se


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("noise_below", [None, 0.3])
def test_dpmpp_2m_sde_samples_images_of_gaussian_data(name, noise_below):
    process = PROCESSES[name]()
    variance, shape = 0.01, (256, 1, 4, 4)
    x, stats = ss.sample(
        gaussian_score(process, variance), process, shape, sampler="dpmpp_2m_sde",
        noise_below=noise_below, generator=0,
    )  # fmt: skip
    lands = noise_below is not None and process.noise_level_range()[0] < noise_below
    # the centring (two), the steps, the denoising; the switch is one more step
    assert stats["nfe"].tolist() == [2 + 50 + 1 + lands] * 256
    level = process.noise_level_range()[0]
    expected = variance**2 / (variance + level**2)  # denoised exact samples of p_eps
    n = x.numel()
    assert float(x.var()) == pytest.approx(expected, abs=4 * expected * math.sqrt(2 / n))
    assert float(x.mean()) == pytest.approx(MEAN, abs=4 * math.sqrt(variance / n))


@pytest.mark.parametrize("solver", [ExponentialEuler(), ExponentialHeun()], ids=lambda s: s.name)
def test_strong_order_is_one(solver):
    # Against Euler–Maruyama on the same paths (so the limit is the reverse SDE's solution).
    process = ss.VPSDE()
    problem = reverse_sde(process, gaussian_score(process, 0.05))
    fit = skt.strong_order(
        solver,
        problem,
        torch.zeros(1, 1, dtype=F64),
        0.3,
        [2.0**-k for k in range(4, 8)],
        t0=1.0,
        reference_solver="euler",
        reference_dt=2.0**-11,
        n_paths=100,
        seed=3,
    )
    assert fit.failure(solver.strong_order, tolerance=0.25) is None, fit


def test_schemes_refuse_problems_without_a_denoiser():
    plain = sk.SDE(lambda t, y: -y, lambda t, y: torch.ones_like(y), noise="additive")
    with pytest.raises(InputValueError, match="reverse_sde"):
        sk.solve(plain, torch.zeros(2, 1), 1.0, 0.1, solver=ExponentialHeun(), dt=0.1)
    ode = ss.probability_flow(ss.VPSDE(), gaussian_score(ss.VPSDE(), 0.05))
    with pytest.raises(InputValueError, match="ODE"):
        sk.solve(ode, torch.zeros(2, 1), 1.0, 0.1, solver=ExponentialEuler(), dt=0.1)


@pytest.mark.parametrize("tol", [0.0, -0.1, math.inf])
def test_adaptive_refuses_bad_tolerances(tol):
    process = ss.VPSDE()
    with pytest.raises(InputValueError, match="tol"):
        ss.sample(gaussian_score(process, 0.05), process, (2, 1), sampler="adaptive", tol=tol)


@pytest.mark.parametrize("name", PROCESSES)
def test_adaptive_samples_images_of_gaussian_data(name):
    process = PROCESSES[name]()
    variance = 0.01
    shape = (64, 1, 4, 4)
    x, stats = ss.sample(
        gaussian_score(process, variance), process, shape, sampler="adaptive", generator=0
    )
    assert x.shape == shape and bool(torch.isfinite(x).all())
    # one evaluation per attempted step, two centring the prior draw, the first step's and the
    # denoising one; every step lands on the 30-step log-SNR grid: at least 30 attempts
    attempts = stats["accepted"] + stats["rejected"]
    assert stats["nfe"].shape == (64,) and torch.equal(stats["nfe"], attempts + 4)
    assert bool((stats["accepted"] >= 30).all())
    # denoised exact samples of p_eps: N(MEAN, v²/(v + σ̃²)), σ̃ the noise level at eps
    level = process.noise_level_range()[0]
    expected = variance**2 / (variance + level**2)
    n = x.numel()
    se_var = expected * math.sqrt(2 / n)  # standard error of the sample variance, 4.4% here
    assert float(x.var()) == pytest.approx(expected, abs=4 * se_var)
    assert float(x.mean()) == pytest.approx(MEAN, abs=4 * math.sqrt(variance / n))


def test_adaptive_keeps_one_path_per_sample():
    # Each sample's noise comes from its own generator and its steps from its own controller:
    # a sample's result does not depend on what else is in the batch, and a seed reproduces it.
    process = ss.VESDE()
    score = gaussian_score(process, 0.01)

    def run(seeds):
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        return ss.sample(score, process, (len(seeds), 3), sampler="adaptive", generator=generators)

    x4, stats4 = run([0, 1, 2, 3])
    x2, stats2 = run([2, 1])
    assert bool((stats4["rejected"] > 0).any())  # rejections happened and were bridged
    torch.testing.assert_close(x2, x4[[2, 1]])
    torch.testing.assert_close(stats2["nfe"], stats4["nfe"][[2, 1]])
    torch.testing.assert_close(run([0, 1, 2, 3])[0], x4)

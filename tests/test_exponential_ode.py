"""Noise schedules and the exponential integrators of the probability flow (DPM-Solver++).

The problem with a known answer: data ``N(m, s²)`` in every coordinate. Then ``p_t`` is
``N(α m, v_t)`` with ``v_t = α² s² + σ²``, the score is ``−(x − α m)/v_t``, Tweedie's denoiser is
``m + α s² (x − α m)/v_t``, and the probability flow keeps the standardised position, so it maps
``x_T`` to ``α_ε m + √(v_ε/v_T) (x_T − α_T m)`` exactly: every error below is the scheme's.
"""

from __future__ import annotations

import math

import pytest
import torch

import sdekit
import sdekit.testing as skt
import sdekit_score as ss
from sdekit.errors import InputValueError
from sdekit_score.sampling.exponential_ode import (
    DPMSolverPP1,
    DPMSolverPP2M,
    DPMSolverPP3M,
    SinglestepDPMSolverPP,
    UniPC,
)
from sdekit_score.sampling.processes import EDMProcess
from sdekit_score.sampling.schedules import KARRAS_RHO, LOGSNR_POWER, time_grid

MEAN, STD = 0.3, 0.5
PROCESSES = {"vp": ss.VPSDE(), "subvp": ss.SubVPSDE(), "ve": ss.VESDE(), "edm": EDMProcess()}


def variance(process, t):
    t = torch.as_tensor(t, dtype=torch.float64)
    return process.alpha(t) ** 2 * STD**2 + process.sigma(t) ** 2


def gaussian_score(process):
    def score(x, t):
        shape = (-1,) + (1,) * (x.dim() - 1)
        alpha = process.alpha(t).to(x.dtype).view(shape)
        return -(x - alpha * MEAN) / variance(process, t).to(x.dtype).view(shape)

    return score


def exact_flow(process, x_T):
    """The probability flow's map from ``T`` to ``eps`` for the Gaussian data."""
    T, eps = torch.tensor(process.T), torch.tensor(process.eps)
    ratio = (variance(process, eps) / variance(process, T)).sqrt()
    return (process.alpha(eps) * MEAN + ratio * (x_T - process.alpha(T) * MEAN)).to(x_T.dtype)


def start(process, n=16):
    return torch.linspace(-2.0, 2.0, n, dtype=torch.float64).view(n, 1) * process.prior_std


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("kind", PROCESSES)
@pytest.mark.parametrize("schedule", ["linear", "karras", "logsnr", "logsnr_power"])
def test_time_grids_run_from_T_to_eps_uniform_in_their_quantity(kind, schedule):
    process = PROCESSES[kind]
    grid = time_grid(process, 12, schedule)
    assert grid.shape == (13,) and grid.dtype == torch.float64
    assert (float(grid[0]), float(grid[-1])) == (process.T, process.eps)
    assert bool((grid.diff() < 0).all())
    level = process.noise_level(grid)
    quantity = {
        "linear": grid,
        "karras": level ** (1 / KARRAS_RHO),
        "logsnr": -level.log(),
        # λ − λ(T) = Δλ·u^γ: uniform in (λ − λ(T))^(1/γ)
        "logsnr_power": (level[0].log() - level.log()) ** (1 / LOGSNR_POWER),
    }[schedule]
    gaps = quantity.diff()
    assert torch.allclose(gaps, gaps.mean().expand_as(gaps), rtol=1e-8, atol=1e-10)


def test_the_linear_grid_is_the_constant_step_grid():
    process = ss.VPSDE()
    dt = (process.T - process.eps) / 7
    expected = [process.T - k * dt for k in range(7)] + [process.eps]
    assert time_grid(process, 7).tolist() == expected


def test_an_unknown_schedule_is_refused_with_the_choices():
    with pytest.raises(InputValueError, match="karras"):
        time_grid(ss.VPSDE(), 10, "cosine")


# --------------------------------------------------------------------------- denoiser


@pytest.mark.parametrize("kind", PROCESSES)
def test_the_problems_denoiser_is_tweedies_formula(kind):
    process = PROCESSES[kind]
    problem = ss.probability_flow(process, gaussian_score(process))
    t = torch.tensor([0.3 * process.T, 0.05 * process.T], dtype=torch.float64)
    x = torch.tensor([[0.7], [-1.2]], dtype=torch.float64)
    alpha = process.alpha(t)[:, None]
    posterior_mean = MEAN + alpha * STD**2 * (x - alpha * MEAN) / variance(process, t)[:, None]
    torch.testing.assert_close(problem.denoiser(t, x), posterior_mean, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- orders


def fitted_order(process, solver, schedule="logsnr", steps=(20, 40, 80, 160)):
    problem = ss.probability_flow(process, gaussian_score(process))
    x_T = start(process)
    errors = []
    for n in steps:
        grid = time_grid(process, n, schedule)
        y = sdekit.solve(
            problem, x_T, process.T, process.eps, solver=solver, controller=sdekit.StepTo(grid)
        ).ys[-1]
        errors.append(float((y - exact_flow(process, x_T)).abs().max()))
    per_path = torch.tensor(errors).unsqueeze(0)
    fit = skt.fit_order(
        [1 / n for n in steps], per_path, kind="global", finish=lambda e: e, deterministic=True
    )
    return fit.slope


@pytest.mark.parametrize("kind", PROCESSES)
@pytest.mark.parametrize(
    ("make", "order"),
    [
        (DPMSolverPP1, 1),
        (DPMSolverPP2M, 2),
        (lambda: SinglestepDPMSolverPP(2), 2),
        (lambda: SinglestepDPMSolverPP(3), 3),
    ],
    ids=["first_order", "2m", "2s", "3s"],
)
def test_exponential_integrators_converge_at_their_order(kind, make, order):
    slope = fitted_order(PROCESSES[kind], make())
    assert abs(slope - order) < 0.15, slope


@pytest.mark.parametrize("kind", PROCESSES)
def test_3m_converges_at_order_three(kind):
    # On the log-SNR grid the Gaussian's flow makes 3M's leading error term vanish (measured
    # slope 4); the Karras grid's unequal steps show the order of the scheme itself.
    slope = fitted_order(
        PROCESSES[kind], DPMSolverPP3M(), schedule="karras", steps=(40, 80, 160, 320)
    )
    assert abs(slope - 3) < 0.15, slope


@pytest.mark.parametrize("kind", PROCESSES)
@pytest.mark.parametrize("order", [1, 2, 3])
def test_unipc_converges_one_order_above_its_predictor(kind, order):
    # Karras grid, as for 3M: unequal steps show the scheme's own order.
    slope = fitted_order(PROCESSES[kind], UniPC(order), schedule="karras", steps=(40, 80, 160, 320))
    assert abs(slope - (order + 1)) < 0.15, slope


@pytest.mark.parametrize("order", [1, 2, 3])
def test_unipc_starts_as_the_first_order_step_and_corrects_with_its_evaluation(order):
    process = ss.VPSDE()
    problem = ss.probability_flow(process, gaussian_score(process))
    solver, x_T = UniPC(order), start(process)
    T, mid, end = (torch.tensor(t, dtype=torch.float64) for t in (process.T, 0.5, 0.2))
    first = DPMSolverPP1().step(problem, T, x_T, mid - T, None, None)[0]
    state = solver.init(problem, T, x_T)
    y_mid, _, state = solver.step(problem, T, x_T, mid - T, None, state)
    torch.testing.assert_close(y_mid, first, rtol=0, atol=0)
    # The next step first corrects its starting point with its own evaluation: the previous
    # step again with D linear between its ends (UniC-1, the exponential trapezoidal rule).
    _, _, state = solver.step(problem, mid, y_mid, end - mid, None, state)
    d_T, d_mid = problem.denoiser(T, x_T), problem.denoiser(mid, y_mid)
    lam = process.alpha(mid).log() - process.sigma(mid).log()
    h = lam - (process.alpha(T).log() - process.sigma(T).log())
    corrected = process.sigma(mid) / process.sigma(T) * x_T - process.alpha(mid) * torch.expm1(
        -h
    ) * (d_T + 0.5 * (d_mid - d_T))
    torch.testing.assert_close(state[0], corrected)


def test_unipc_orders_other_than_one_to_three_are_refused():
    with pytest.raises(InputValueError, match="orders 1, 2 and 3"):
        UniPC(4)


def test_the_2m_state_without_history_gives_the_first_order_step():
    process = ss.VPSDE()
    problem = ss.probability_flow(process, gaussian_score(process))
    grid = [process.T, 0.5]
    args = (problem, start(process), process.T, 0.5)
    first = sdekit.solve(*args, solver=DPMSolverPP1(), controller=sdekit.StepTo(grid)).ys[-1]
    multi = sdekit.solve(*args, solver=DPMSolverPP2M(), controller=sdekit.StepTo(grid)).ys[-1]
    torch.testing.assert_close(multi, first, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_the_adaptive_pair_reaches_the_requested_tolerance(kind):
    process = PROCESSES[kind]
    problem = ss.probability_flow(process, gaussian_score(process))
    x_T = start(process)
    errors, steps = [], []
    for tol in (1e-3, 1e-5):
        controller = sdekit.PIController(rtol=tol, atol=tol, per_sample=True)
        sol = sdekit.solve(
            problem,
            x_T,
            process.T,
            process.eps,
            solver=SinglestepDPMSolverPP(3),
            controller=controller,
        )
        error = (sol.ys[-1] - exact_flow(process, x_T)).abs()
        scale = exact_flow(process, x_T).abs()
        errors.append(float((error / (tol + tol * scale)).max()))
        steps.append(float(sol.stats["accepted"].double().mean()))
    # the global error stays within a small multiple of the tolerance (local errors add up)
    assert max(errors) < 10, errors
    assert steps[1] > steps[0]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "solver", [DPMSolverPP1(), DPMSolverPP2M(), SinglestepDPMSolverPP(), UniPC()]
)
def test_problems_without_the_process_structure_are_refused(solver):
    plain = sdekit.ODE(lambda t, y: -y)
    with pytest.raises(InputValueError, match="probability_flow"):
        sdekit.solve(plain, torch.ones(2, 1), 1.0, 0.1, solver=solver, dt=0.1)
    process = ss.VPSDE()
    sde = ss.reverse_sde(process, gaussian_score(process))
    with pytest.raises(InputValueError, match="probability_flow"):
        sdekit.solve(sde, torch.ones(2, 1), 1.0, 0.1, solver=solver, dt=0.1)


def test_singlestep_orders_other_than_two_and_three_are_refused():
    with pytest.raises(InputValueError, match="orders 2 and 3"):
        SinglestepDPMSolverPP(4)


# --------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("kind", ["vp", "ve"])
@pytest.mark.parametrize(
    ("sampler", "tolerance"),
    [("dpmpp_2m", 0.02), ("dpmpp_3m", 1e-3), ("unipc", 1e-3), ("dpm_adaptive", 0.01)],
)
def test_samplers_follow_the_exact_flow_on_image_shapes(kind, sampler, tolerance):
    process = PROCESSES[kind]
    shape = (3, 2, 4, 4)
    x, stats = ss.sample(
        gaussian_score(process), process, shape, sampler=sampler, generator=1,
        dtype=torch.float64, init="prior",
    )  # fmt: skip
    x_T = process.prior_sample(shape, generator=1, dtype=torch.float64)
    expected = ss.probability_flow(process, gaussian_score(process)).denoiser(
        torch.tensor(process.eps), exact_flow(process, x_T)
    )
    assert x.shape == shape and stats["nfe"].shape == (3,)
    # at the defaults, against data of std 0.5 (measured, VP / VE: dpmpp_2m 0.0042 / 0.0033,
    # dpmpp_3m 1.4e-4 / 8e-5, dpm_adaptive 0.0023 / 1.4e-4)
    assert float((x - expected).abs().max()) < tolerance


def test_dpmpp_2m_counts_one_evaluation_per_step_and_the_denoising():
    process = ss.VPSDE()
    _, stats = ss.sample(
        gaussian_score(process), process, (2, 3), sampler="dpmpp_2m", steps=9, generator=0
    )
    assert stats["nfe"].tolist() == [10, 10]


# --------------------------------------------------------------------------- schedules in em / pc


def old_em(process, score, shape, seed, steps):
    """``em`` as it was before schedules: a constant step."""
    x = process.prior_sample(shape, generator=seed)
    sol = sdekit.solve(
        ss.reverse_sde(process, score),
        x,
        process.T,
        process.eps,
        solver="euler",
        dt=(process.T - process.eps) / steps,
        generator=seed,
    )
    return sol.ys[-1]


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_em_and_pc_default_schedule_gives_the_same_samples_as_before(kind):
    process = PROCESSES[kind]
    score = gaussian_score(process)
    shape = (4, 3)
    gen = torch.Generator().manual_seed(5)
    x, _ = ss.sample(score, process, shape, sampler="em", steps=20, generator=gen, denoise=False)
    expected = old_em(process, score, shape, torch.Generator().manual_seed(5), 20)
    torch.testing.assert_close(x, expected, rtol=0, atol=0)

    dt = (process.T - process.eps) / 20
    gen = torch.Generator().manual_seed(6)
    x0 = process.prior_sample(shape, generator=gen)

    def correct(t, y):
        t = ss.sampling.processes.batch_time(t, y)
        alpha = 1 - process.beta(t) * dt if kind == "vp" else torch.ones_like(t)
        target = sdekit.mcmc.Target(score=lambda z: score(z, t))
        return sdekit.mcmc.LangevinCorrector(snr=0.16, batch_mean_norms=True)(
            y, target, alpha, gen
        ).x

    expected = sdekit.solve(
        ss.sampling.reverse_diffusion_problem(process, score, dt),
        x0,
        process.T,
        process.eps,
        solver=sdekit.solvers.Corrected(sdekit.Euler(), correct, 1),
        dt=dt,
        generator=gen,
    ).ys[-1]
    x, _ = ss.sample(
        score,
        process,
        shape,
        sampler="pc",
        steps=20,
        generator=torch.Generator().manual_seed(6),
        denoise=False,
    )
    torch.testing.assert_close(x, expected, rtol=0, atol=0)


@pytest.mark.parametrize("sampler", ["em", "pc"])
def test_em_and_pc_step_through_a_karras_grid(sampler):
    process = ss.VPSDE()
    score = gaussian_score(process)
    x, stats = ss.sample(
        score,
        process,
        (2000, 1),
        sampler=sampler,
        steps=100,
        schedule="karras",
        generator=0,
        dtype=torch.float64,
    )
    assert stats["nfe"][0] == (101 if sampler == "em" else 201)
    # the denoised samples are close to N(m, s^2) (the Tweedie denoiser shrinks them a little);
    # standard error of the mean: s / sqrt(2000) = 0.011
    assert abs(float(x.mean()) - MEAN) < 4 * STD / math.sqrt(2000)
    assert abs(float(x.std()) - STD) < 0.05


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "dpmpp_3m", "dpm_adaptive"])
def test_the_exponential_samplers_report_k_diffusion_style_callbacks(sampler):
    process = ss.VPSDE()
    infos = []
    ss.sample(
        gaussian_score(process),
        process,
        (6, 2),
        sampler=sampler,
        generator=0,
        callback=infos.append,
    )
    assert infos and {"i", "t", "x", "denoised"} <= set(infos[0])
    assert infos[-1]["x"].shape == infos[-1]["denoised"].shape == (6, 2)


def test_dpm_adaptive_costs_the_same_in_float32_as_in_float64():
    # Its estimate was y_next - y_low, two states rounding to one ulp of y: errors of 0 and one
    # ulp in turn kept a PI controller's steps tiny (median NFE 142 in float32 for 85 in float64
    # on a 1-D mixture, some samples 10x).
    process = ss.VPSDE()
    score = ss.GaussianMixture.ring2d().score(process)
    nfe = {}
    for dtype in (torch.float32, torch.float64):
        _, stats = ss.sample(
            score, process, (2000, 2), sampler="dpm_adaptive", generator=7, dtype=dtype
        )
        nfe[dtype] = stats["nfe"].double()
    assert float(nfe[torch.float32].median()) <= 1.1 * float(nfe[torch.float64].median()), nfe
    assert float(nfe[torch.float32].max()) <= 1.3 * float(nfe[torch.float64].max()), nfe

"""Properties of ``sdekit.solve`` that hold for every problem: shapes, dtypes, reproducibility,
time reversal, save points, empty spans, torchsde compatibility and evaluation counts."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import torchsde
from hypothesis import assume, given
from hypothesis import strategies as st

import sdekit as sk
import sdekit.testing as skt
from sdekit.testing import problems as P

NOISE_DIM = 3
GBM_MU = torch.tensor([0.5, -0.3], dtype=torch.float64)
GBM_SIGMA = torch.tensor([0.8, 0.5], dtype=torch.float64)


# --------------------------------------------------------------------- a family of test problems


def _per_sample(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``t`` (0-d, or ``(batch,)`` in a per-sample solve) shaped to broadcast against ``y``."""
    return t.reshape((-1,) + (1,) * (y.dim() - 1)) if t.dim() else t


def make_sde(
    noise: str, calculus: str = "ito", *, matrix_additive: bool = False, declare_dim: bool = False
) -> sk.SDE:
    """A smooth SDE of the given noise kind whose coefficients depend on ``t`` and ``y``.

    General noise has ``NOISE_DIM`` Brownian motions, declared as ``noise_dim`` with
    ``declare_dim`` (else read off the diffusion); ``matrix_additive`` makes additive noise
    matrix-valued with ``noise_dim=NOISE_DIM``.
    """

    def drift(t, y):
        return -0.5 * y + torch.sin(3 * _per_sample(t, y))

    if noise == "diagonal":

        def diffusion(t, y):
            return 0.3 * (1 + _per_sample(t, y)) * torch.cos(y)

    elif noise == "scalar":

        def diffusion(t, y):
            return 0.2 * (1 + 0.5 * torch.sin(y + _per_sample(t, y)))

    elif noise == "general":

        def diffusion(t, y):
            scale = torch.arange(1, NOISE_DIM + 1, dtype=y.dtype, device=y.device)
            return 0.1 * torch.cos(y + _per_sample(t, y)).unsqueeze(-1) * scale

    elif matrix_additive:

        def diffusion(t, y):
            scale = torch.arange(1, NOISE_DIM + 1, dtype=y.dtype, device=y.device)
            t = _per_sample(t, y).unsqueeze(-1)
            return (0.1 * (1 + t) * scale).expand(*y.shape, NOISE_DIM)

    else:

        def diffusion(t, y):
            return (0.3 * (1 + _per_sample(t, y))).expand(y.shape)

    noise_dim = NOISE_DIM if matrix_additive or (noise == "general" and declare_dim) else None
    return sk.SDE(drift, diffusion, noise=noise, calculus=calculus, noise_dim=noise_dim)


def compatible_solvers(noise: str, calculus: str) -> list:
    """The SDE solvers that accept this noise kind and calculus."""
    solvers = []
    if calculus == "ito":
        solvers.append("euler")
        if noise == "additive":
            solvers.append("improved_euler")
    else:
        solvers += ["heun", "euler_heun", "improved_euler"]
    if noise != "general":
        solvers += [sk.Milstein("autograd"), sk.Milstein("finite_difference")]
    return solvers


@st.composite
def sde_setups(draw):
    noise = draw(st.sampled_from(["diagonal", "scalar", "additive", "general"]))
    calculus = draw(st.sampled_from(["ito", "stratonovich"]))
    matrix_additive = noise == "additive" and draw(st.booleans())
    declare_dim = noise == "general" and draw(st.booleans())
    solver = draw(st.sampled_from(compatible_solvers(noise, calculus)))
    batch = draw(st.integers(1, 3))
    event = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    sde = make_sde(noise, calculus, matrix_additive=matrix_additive, declare_dim=declare_dim)
    return sde, solver, (batch, *event), dtype


def _label(solver) -> str:
    return solver if isinstance(solver, str) else f"milstein-{solver.derivative}"


# --------------------------------------------------------------------- shapes and dtypes


@given(setup=sde_setups(), seed=st.integers(0, 2**16))
def test_sde_solve_preserves_shape_and_dtype(setup, seed):
    sde, solver, shape, dtype = setup
    y0 = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    sol = sk.solve(sde, y0, 0.0, 0.3, solver=solver, dt=0.1, generator=seed)
    # Without saveat ys still has a leading time axis, as in torchsde and diffrax.
    assert sol.ys.shape == (1, *y0.shape) and sol.ys.dtype == dtype
    assert sol.ts.shape == (1,) and sol.ts.dtype == dtype
    assert sol.ts[-1] == torch.tensor(0.3, dtype=dtype)
    assert torch.isfinite(sol.ys[-1]).all()
    assert not torch.equal(sol.ys[-1], y0)
    saved = sk.solve(sde, y0, 0.0, 0.3, solver=solver, dt=0.1, generator=seed, saveat=[0.1, 0.3])
    assert saved.ys.shape == (2, *shape) and saved.ys.dtype == dtype
    assert saved.ts.dtype == dtype
    # The same noise reaches the same final state whether or not intermediate states are saved.
    assert torch.equal(saved.ys[-1], sol.ys[-1])


@given(
    solver=st.sampled_from(["euler", "heun", "midpoint", "rk4", "bosh3", "dopri5"]),
    event=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    batch=st.integers(1, 3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_ode_solve_preserves_shape_and_dtype(solver, event, batch, dtype):
    ode = sk.ODE(lambda t, y: -y + torch.cos(t))
    y0 = torch.ones((batch, *event), dtype=dtype)
    sol = sk.solve(ode, y0, 0.0, 0.5, solver=solver, dt=0.1)
    assert sol.ys[-1].shape == y0.shape and sol.ys[-1].dtype == dtype
    exact = math.exp(-0.5) + 0.5 * (math.sin(0.5) + math.cos(0.5) - math.exp(-0.5))
    tol = {"euler": 3e-2, "heun": 3e-3, "midpoint": 3e-3}.get(solver, 1e-4)
    assert torch.allclose(sol.ys[-1], torch.full_like(y0, exact), atol=tol)


@pytest.mark.parametrize("per_sample", [False, True], ids=["shared", "per-sample"])
@pytest.mark.parametrize("noise", ["diagonal", "scalar", "general"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adaptive_sde_solve_preserves_shape_and_dtype(per_sample, noise, dtype):
    sde = make_sde(noise, "stratonovich")
    y0 = torch.zeros(3, 2, 2, dtype=dtype)
    controller = sk.PIController(rtol=1e-2, atol=1e-2, per_sample=per_sample)
    sol = sk.solve(
        sde,
        y0,
        0.0,
        1.0,
        solver="improved_euler",
        controller=controller,
        saveat=[0.5, 1.0],
        generator=0,
        max_steps=10_000,
    )
    assert sol.ys.shape == (2, 3, 2, 2) and sol.ys.dtype == dtype and sol.ts.dtype == dtype
    assert torch.isfinite(sol.ys).all() and sol.status is None
    steps = sol.stats["steps"]
    assert (steps.shape == (3,)) if per_sample else isinstance(steps, int)


@pytest.mark.parametrize("solver", ["dopri5", "bosh3", "heun"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adaptive_ode_solve_preserves_shape_and_dtype(solver, dtype):
    ode = sk.ODE(lambda t, y: -y)
    y0 = torch.ones(2, 3, 2, dtype=dtype)
    controller = sk.PIController(rtol=1e-4, atol=1e-6)
    sol = sk.solve(ode, y0, 0.0, 1.0, solver=solver, controller=controller, saveat=[0.5, 1.0])
    assert sol.ys.shape == (2, 2, 3, 2) and sol.ys.dtype == dtype and sol.ts.dtype == dtype
    assert torch.allclose(sol.ys[1], torch.full_like(y0, math.exp(-1)), rtol=1e-3)


# --------------------------------------------------------------------- reproducibility


@given(setup=sde_setups(), seed=st.integers(0, 2**16))
def test_same_seed_gives_bitwise_identical_solutions_and_different_seeds_differ(setup, seed):
    sde, solver, shape, dtype = setup
    y0 = torch.zeros(shape, dtype=dtype)

    def run(generator):
        return sk.solve(sde, y0, 0.0, 0.2, solver=solver, dt=0.05, generator=generator).ys[-1]

    first = run(seed)
    assert torch.equal(first, run(seed))
    assert torch.equal(first, run(torch.Generator().manual_seed(seed)))
    assert not torch.equal(first, run(seed + 1))


def test_per_sample_generators_make_each_sample_independent_of_the_batch():
    sde = make_sde("diagonal")
    y0 = torch.zeros(3, 2, dtype=torch.float64)

    def generators(seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    batch = sk.solve(sde, y0, 0.0, 1.0, solver="euler", dt=0.1, generator=generators([7, 8, 9]))
    alone = sk.solve(sde, y0[1:2], 0.0, 1.0, solver="euler", dt=0.1, generator=generators([8]))
    assert torch.equal(batch.ys[-1, 1:2], alone.ys[-1])
    assert not torch.equal(batch.ys[-1, 0], batch.ys[-1, 1])


@pytest.mark.parametrize("event", [1, 64])
def test_per_sample_generators_give_the_same_paths_in_a_large_batch(event):
    # A large batch drew each generator's normals in smaller blocks than a small one, and CPU
    # randn's numbers depend on how many are drawn at once: every path of a 5000-batch differed
    # from the same generators' paths in a 2500-batch.
    sde = sk.SDE(lambda t, y: 0.5 * y, lambda t, y: 0.8 * y)

    def solve(batch):
        generators = [torch.Generator().manual_seed(1000 + i) for i in range(batch)]
        y0 = torch.ones(batch, event, dtype=torch.float64)
        return sk.solve(sde, y0, 0.0, 1.0, solver="euler", dt=0.01, generator=generators).ys[-1]

    small = solve(8)
    assert torch.equal(solve(2500)[:8], small) and torch.equal(solve(5000)[:8], small)


# --------------------------------------------------------------------- time reversal
#
# A backward solve (t0 > t1) takes steps of negative size h: y + f(t, y) h + g(t, y) ΔW with
# ΔW = W(t + h) - W(t). Writing s = -t, that is exactly the forward solve of the reversed problem
# dZ = -f(-s, Z) ds + g(-s, Z) dW~ on the mirrored path W~(s) = W(-s), whose increments are
# W~(s + |h|) - W~(s) = W(t + h) - W(t). For an ODE the two solves agree to the last bit; for an
# SDE they agree pathwise, in the calculus of the problem (an Itô correction uses |h|).


@pytest.mark.parametrize("solver", ["euler", "heun", "midpoint", "rk4", "bosh3", "dopri5"])
def test_backward_ode_solve_is_the_forward_solve_of_the_reversed_problem(solver):
    ode = P.smooth_ode()
    y0 = torch.tensor([[1.0, 0.2], [0.5, 0.7]], dtype=torch.float64)
    backward = sk.solve(ode, y0, 1.3, 0.1, solver=solver, dt=0.07, saveat=[0.9, 0.1])
    forward = sk.solve(
        P.time_reversed(ode), y0, -1.3, -0.1, solver=solver, dt=0.07, saveat=[-0.9, -0.1]
    )
    assert torch.equal(backward.ys, forward.ys)
    assert torch.equal(backward.ts, -forward.ts)
    # ... and it integrates backward: it approaches the exact backward flow.
    assert torch.allclose(backward.ys[-1], ode.exact(y0, None, 1.3, 0.1), atol=3e-3)


def test_backward_adaptive_ode_solve_is_the_forward_solve_of_the_reversed_problem():
    ode = P.smooth_ode()
    y0 = torch.tensor([[1.0, 0.2], [0.5, 0.7]], dtype=torch.float64)

    def run(problem, t0, t1):
        controller = sk.PIController(rtol=1e-6, atol=1e-8)
        return sk.solve(problem, y0, t0, t1, solver="dopri5", controller=controller)

    backward, forward = run(ode, 2.0, 0.0), run(P.time_reversed(ode), -2.0, 0.0)
    assert torch.equal(backward.ys[-1], forward.ys[-1])
    assert backward.stats == forward.stats
    assert torch.allclose(backward.ys[-1], ode.exact(y0, None, 2.0, 0.0), rtol=1e-5)


SDE_REVERSAL_CASES = [
    ("diagonal", "ito", "euler"),
    ("diagonal", "ito", sk.Milstein("autograd")),
    ("diagonal", "ito", sk.Milstein("finite_difference")),
    ("scalar", "ito", sk.Milstein("autograd")),
    ("diagonal", "stratonovich", sk.Milstein("autograd")),
    ("diagonal", "stratonovich", sk.Milstein("finite_difference")),
    ("diagonal", "stratonovich", "heun"),
    ("diagonal", "stratonovich", "euler_heun"),
    ("general", "stratonovich", "heun"),
    ("general", "ito", "euler"),
    ("additive", "ito", "improved_euler"),
]


@pytest.mark.parametrize(
    "noise, calculus, solver",
    SDE_REVERSAL_CASES,
    ids=[f"{n}-{c}-{_label(s)}" for n, c, s in SDE_REVERSAL_CASES],
)
def test_backward_sde_solve_is_the_forward_solve_of_the_reversed_problem_on_the_mirrored_path(
    noise, calculus, solver
):
    sde = make_sde(noise, calculus)
    y0 = torch.linspace(-1, 1, 8, dtype=torch.float64).reshape(4, 2)
    shape = sde.noise_shape(y0)
    bm = skt.brownian_path(shape, 0.2, 1.4, seed=5)
    backward = sk.solve(sde, y0, 1.4, 0.2, solver=solver, dt=0.05, brownian=bm)
    forward = sk.solve(
        P.time_reversed(sde), y0, -1.4, -0.2, solver=solver, dt=0.05, brownian=skt.mirrored(bm)
    )
    torch.testing.assert_close(backward.ys[-1], forward.ys[-1], rtol=1e-14, atol=1e-14)


def test_backward_stratonovich_solve_on_the_same_path_undoes_the_forward_solve():
    # Stratonovich calculus is time-symmetric: the backward solve on the same path inverts the
    # forward flow, up to a discretisation error that vanishes at order 1.0 for stochastic Heun.
    problem = P.gbm(GBM_MU, GBM_SIGMA, calculus="stratonovich")
    y0 = problem.initial(500)
    bm = skt.brownian_path(problem.noise_shape(y0), seed=2)
    gaps = []
    for dt in (2.0**-5, 2.0**-7):
        there = sk.solve(problem, y0, 0.0, 1.0, solver="heun", dt=dt, brownian=bm).ys[-1]
        back = sk.solve(problem, there, 1.0, 0.0, solver="heun", dt=dt, brownian=bm).ys[-1]
        gaps.append(float((back / y0 - 1).square().mean().sqrt()))
    assert gaps[1] < 0.01
    assert gaps[0] / gaps[1] > 2.5  # order 1: a factor 4 per factor 4 in dt


def test_backward_ito_solve_on_the_same_path_is_the_ito_solution_of_the_reversed_problem():
    # For Itô GBM the round trip is not the identity. Forward, X1 = X0 exp(mu - sigma^2/2 + sigma W);
    # the backward Itô solve of the same SDE on the same path is the Itô solution of
    # dZ = -mu Z ds + sigma Z dW~ with W~ ending at -W, so it returns X0 exp(-sigma^2) in the
    # limit. A backward Milstein step with the Itô term ΔW^2 - h (mean 2|h| for h < 0) adds the
    # drift sigma^2 Z and misses this by a factor exp(sigma^2).
    problem = P.gbm(GBM_MU, GBM_SIGMA, calculus="ito")
    y0 = problem.initial(500)
    bm = skt.brownian_path(problem.noise_shape(y0), seed=4)
    for solver in (sk.Milstein("autograd"), sk.Milstein("finite_difference")):
        there = sk.solve(problem, y0, 0.0, 1.0, solver=solver, dt=2.0**-8, brownian=bm).ys[-1]
        back = sk.solve(problem, there, 1.0, 0.0, solver=solver, dt=2.0**-8, brownian=bm).ys[-1]
        ratio = back / (y0 * torch.exp(-(GBM_SIGMA**2)))
        assert float((ratio - 1).square().mean().sqrt()) < 0.03, solver.derivative


# --------------------------------------------------------------------- save points


@st.composite
def save_grids(draw):
    t0 = draw(st.sampled_from([0.0, 0.25, -1.0]))
    span = draw(st.sampled_from([1.0, 0.7]))
    direction = draw(st.sampled_from([1.0, -1.0]))
    t1 = t0 + direction * span
    fractions = draw(st.lists(st.floats(0.01, 1.0), min_size=1, max_size=5, unique=True))
    saveat = sorted({t0 + direction * span * f for f in fractions}, reverse=direction < 0)
    dt = draw(st.sampled_from([0.05, 0.1, 0.13, 0.3]))
    return t0, t1, saveat, dt


@given(grid=save_grids(), solver=st.sampled_from(["euler", sk.Milstein(), "improved_euler"]))
def test_saveat_times_are_hit_exactly_on_the_same_path(grid, solver):
    # Steps land on every save time, so ys[i] is the state of a solve that stops at saveat[i]
    # (taking the same steps: through the earlier save times) on the same path.
    t0, t1, saveat, dt = grid
    calculus = "ito" if solver == "euler" else "stratonovich"
    sde = make_sde("diagonal", calculus)
    y0 = torch.tensor([[0.3, -0.4], [1.0, 0.1]], dtype=torch.float64)
    bm = skt.brownian_path((2, 2), min(t0, t1), max(t0, t1), seed=1)
    sol = sk.solve(sde, y0, t0, t1, solver=solver, dt=dt, saveat=saveat, brownian=bm)
    assert torch.equal(sol.ts, torch.tensor(saveat, dtype=torch.float64))
    assert sol.ys.shape == (len(saveat), *y0.shape)
    for i, s in enumerate(saveat):
        alone = sk.solve(sde, y0, t0, s, solver=solver, dt=dt, brownian=bm, saveat=saveat[: i + 1])
        assert torch.equal(sol.ys[i], alone.ys[-1]), f"saveat[{i}] = {s}"
        assert alone.ts[-1] == s


@given(
    ks=st.lists(st.integers(1, 20), min_size=1, max_size=4, unique=True),
    seed=st.integers(0, 100),
)
def test_saving_at_grid_times_does_not_change_the_solution(ks, seed):
    # Save times on the fixed-step grid t0 + k dt add no steps: ys[i] is the plain solve to them,
    # with the same Gaussian increments drawn in step order.
    t0, dt = 0.25, 0.05
    saveat = [t0 + k * dt for k in sorted(ks)]
    sde = make_sde("scalar")
    y0 = torch.zeros(3, 2, dtype=torch.float64)
    sol = sk.solve(sde, y0, t0, saveat[-1], solver="euler", dt=dt, saveat=saveat, generator=seed)
    for i, s in enumerate(saveat):
        alone = sk.solve(sde, y0, t0, s, solver="euler", dt=dt, generator=seed)
        assert torch.equal(sol.ys[i], alone.ys[-1])


@given(grid=save_grids())
def test_adaptive_saveat_matches_adaptive_solves_to_each_save_time(grid):
    t0, t1, saveat, _ = grid
    ode = P.smooth_ode()
    y0 = torch.tensor([[1.0, 0.2], [0.5, 0.7]], dtype=torch.float64)

    def run(end, save):
        controller = sk.PIController(rtol=1e-6, atol=1e-8)
        return sk.solve(
            ode,
            y0,
            t0,
            end,
            solver="dopri5",
            controller=controller,
            dt=0.01,
            saveat=save,
            max_steps=500,
        )

    sol = run(t1, saveat)
    assert torch.equal(sol.ts, torch.tensor(saveat, dtype=torch.float64))
    for i, s in enumerate(saveat):
        assert torch.equal(sol.ys[i], run(s, saveat[: i + 1]).ys[-1])
        assert torch.allclose(sol.ys[i], ode.exact(y0, None, t0, s), rtol=1e-5)


def test_adaptive_step_that_reaches_a_save_time_by_rounding_goes_on():
    # From t0 = 0.25 a first step of 0.01 lands on 0.26 exactly in floating point, although the
    # remaining distance 0.26 - 0.25 = 0.010000000000000009 exceeds it: the step is not clipped to
    # the save time, yet the save time is reached and the solve must continue past it.
    ode = sk.ODE(lambda t, y: -y)
    y0 = torch.ones(1, 1, dtype=torch.float64)
    controller = sk.PIController(rtol=1e-6, atol=1e-8)
    sol = sk.solve(
        ode,
        y0,
        0.25,
        1.25,
        solver="dopri5",
        controller=controller,
        dt=0.01,
        saveat=[0.26, 1.25],
        max_steps=1000,
    )
    assert torch.allclose(
        sol.ys[:, 0, 0],
        torch.tensor([math.exp(-0.01), math.exp(-1.0)], dtype=torch.float64),
        rtol=1e-6,
    )
    assert sol.stats["steps"] < 100


@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed", "adaptive"])
def test_saveat_may_start_at_t0(adaptive):
    # saveat in [t0, t1] includes t0; the state saved there is y0.
    ode = P.smooth_ode()
    y0 = torch.tensor([[1.0, 0.2]], dtype=torch.float64)
    options = (
        dict(controller=sk.PIController(rtol=1e-8, atol=1e-8), max_steps=1000)
        if adaptive
        else dict(dt=0.01)
    )
    sol = sk.solve(ode, y0, 0.0, 1.0, solver="dopri5", saveat=[0.0, 0.5, 1.0], **options)
    assert sol.ys.shape == (3, 1, 2)
    assert torch.equal(sol.ys[0], y0)
    assert torch.allclose(sol.ys[1], ode.exact(y0, None, 0.0, 0.5), rtol=1e-7)


# --------------------------------------------------------------------- empty spans


EMPTY_SPAN_CASES = [
    ("sde", "euler", dict(dt=0.1)),
    ("sde", "milstein", dict(dt=0.1)),
    ("sde", "improved_euler", dict(controller=sk.PIController())),
    ("ode", "dopri5", dict(dt=0.1)),
    ("ode", "dopri5", dict(controller=sk.PIController())),
]


@pytest.mark.parametrize(
    "kind, solver, options",
    EMPTY_SPAN_CASES,
    ids=[f"{s}-{'adaptive' if 'controller' in o else 'fixed'}" for _, s, o in EMPTY_SPAN_CASES],
)
def test_empty_time_span_returns_y0(kind, solver, options):
    problem = sk.ODE(lambda t, y: -y) if kind == "ode" else make_sde("additive")
    y0 = torch.randn(3, 2, dtype=torch.float64)
    sol = sk.solve(problem, y0, 0.7, 0.7, solver=solver, generator=0, **options)
    assert torch.equal(sol.ys[-1], y0) and float(sol.ts) == 0.7
    saved = sk.solve(problem, y0, 0.7, 0.7, solver=solver, saveat=[0.7], **options)
    assert saved.ys.shape == (1, 3, 2) and torch.equal(saved.ys[0], y0)
    assert saved.ts.tolist() == [0.7]


def test_empty_time_span_reports_no_evaluations():
    calls = []
    ode = sk.ODE(lambda t, y: calls.append(1) or -y)
    sol = sk.solve(ode, torch.ones(2, 1), 0.5, 0.5, solver="dopri5", dt=0.1)
    assert sol.stats["nfe"] == len(calls) == 0


# --------------------------------------------------------------------- torchsde-style modules


class TorchsdeModule(torch.nn.Module):
    """A torchsde-style module with the coefficients of :func:`make_sde`, in torchsde's layouts."""

    def __init__(self, noise: str, calculus: str):
        super().__init__()
        self.noise_type, self.sde_type = noise, calculus
        self._sde = make_sde(noise, calculus, matrix_additive=noise == "additive")

    def f(self, t, y):
        return self._sde.f(t, y)

    def g(self, t, y):
        g = self._sde.g(t, y)
        return g.unsqueeze(-1) if self.noise_type == "scalar" else g


TORCHSDE_CASES = [
    ("diagonal", "ito", "euler", "euler"),
    ("diagonal", "ito", "milstein", "milstein"),
    ("diagonal", "stratonovich", "heun", "heun"),
    ("diagonal", "stratonovich", "euler_heun", "euler_heun"),
    ("diagonal", "stratonovich", "milstein", "milstein"),
    ("scalar", "ito", "euler", "euler"),
    ("scalar", "ito", "milstein", "milstein"),
    ("scalar", "stratonovich", "heun", "heun"),
    ("additive", "ito", "euler", "euler"),
    ("general", "ito", "euler", "euler"),
    ("general", "stratonovich", "euler_heun", "euler_heun"),
]


@pytest.mark.parametrize(
    "noise, calculus, solver, method",
    TORCHSDE_CASES,
    ids=[f"{n}-{c}-{s}" for n, c, s, _ in TORCHSDE_CASES],
)
def test_torchsde_module_solves_like_the_equivalent_sde_and_like_torchsde(
    noise, calculus, solver, method
):
    module = TorchsdeModule(noise, calculus)
    sde = make_sde(noise, calculus, matrix_additive=noise == "additive")
    y0 = torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(3, 2)
    bm = skt.brownian_path(sde.noise_shape(y0), 0.0, 1.0, seed=9)
    as_module = sk.solve(module, y0, 0.0, 1.0, solver=solver, dt=0.125, brownian=bm).ys[-1]
    as_sde = sk.solve(sde, y0, 0.0, 1.0, solver=solver, dt=0.125, brownian=bm).ys[-1]
    assert torch.equal(as_module, as_sde)
    # An independent implementation on the same path: torchsde itself (dt = 1/8 keeps both
    # step grids exact in binary, so both query the path at the same times).
    ts = torch.tensor([0.0, 1.0], dtype=torch.float64)
    reference = torchsde.sdeint(module, y0, ts, bm=bm, method=method, dt=0.125)[-1]
    torch.testing.assert_close(as_module, reference, rtol=1e-12, atol=1e-12)


class SeasonalModule(torch.nn.Module):
    """A torchsde module written for a 0-d ``t``, as torchsde's examples write them:
    ``dY = cos(2πt) dt + 0.2 dW`` (drift through ``t.expand(batch, 1)``), exact mean
    ``y0 + sin(2πt)/(2π)``."""

    noise_type, sde_type = "diagonal", "ito"

    def f(self, t, y):
        return torch.cos(2 * math.pi * t.expand(y.shape[0], 1)).expand_as(y)

    def g(self, t, y):
        return 0.2 * torch.ones_like(y) + 0 * torch.sin(t)


def test_a_torchsde_module_written_for_a_scalar_time_takes_per_sample_times_as_a_column():
    # per-sample times reached the module with shape (batch,): t.expand(batch, 1) failed, and
    # products with (batch, d) tensors took other samples' times where d equals the batch
    n = 2000
    y0 = torch.zeros(n, 1, dtype=torch.float64)
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    sol = sk.solve(SeasonalModule(), y0, 0.0, 0.75, solver="sosri",
                   controller=controller, generator=0)  # fmt: skip
    mean, se = float(sol.ys[-1].mean()), 0.2 * math.sqrt(0.75 / n)
    assert abs(mean - math.sin(1.5 * math.pi) / (2 * math.pi)) < 4 * se


class ScalarTimeOnly(SeasonalModule):
    def f(self, t, y):
        return torch.full_like(y, float(t))  # needs a 0-d t


def test_a_torchsde_module_that_cannot_take_per_sample_times_says_what_to_do():
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    with pytest.raises(sk.InputValueError, match=r"f\(t, y\) failed on a per-sample .* column"):
        sk.solve(
            ScalarTimeOnly(), torch.zeros(4, 1), 0.0, 1.0, solver="sosri", controller=controller
        )
    sk.solve(ScalarTimeOnly(), torch.zeros(4, 1), 0.0, 1.0, solver="sosri",
             controller=sk.PIController(rtol=1e-3, atol=1e-3))  # fmt: skip


# --------------------------------------------------------------------- evaluation counts


class Counted:
    """Wraps a problem's functions and counts their calls."""

    def __init__(self, sde: sk.SDE):
        self.drift_calls = self.diffusion_calls = 0
        self.sde = sk.SDE(
            self._f(sde.f),
            self._g(sde.g),
            noise=sde.noise,
            calculus=sde.calculus,
            noise_dim=sde.noise_dim,
        )

    def _f(self, f):
        def counted(t, y):
            self.drift_calls += 1
            return f(t, y)

        return counted

    def _g(self, g):
        def counted(t, y):
            self.diffusion_calls += 1
            return g(t, y)

        return counted


COUNT_CASES = [
    ("diagonal", "ito", "euler"),
    ("additive", "ito", "milstein"),
    ("diagonal", "ito", "milstein"),
    ("diagonal", "stratonovich", "heun"),
    ("diagonal", "stratonovich", "euler_heun"),
    ("additive", "ito", "improved_euler"),
]


@pytest.mark.parametrize("noise, calculus, solver", COUNT_CASES, ids=[c[2] for c in COUNT_CASES])
def test_reported_evaluations_match_the_calls(noise, calculus, solver):
    counted = Counted(make_sde(noise, calculus))
    y0 = torch.zeros(2, 2, dtype=torch.float64)
    sol = sk.solve(counted.sde, y0, 0.0, 1.0, solver=solver, dt=0.1, generator=0)
    assert sol.stats["nfe_drift"] == counted.drift_calls
    assert sol.stats["nfe_diffusion"] == counted.diffusion_calls
    assert sol.stats["steps"] == sol.stats["accepted"] == 10


def test_the_evaluation_that_finds_noise_dim_is_counted():
    # general noise without noise_dim: the solve learns m from one evaluation of g
    calls = []

    def g(t, y):
        calls.append(1)
        return 0.3 * torch.ones(*y.shape, 3, dtype=y.dtype)

    sde = sk.SDE(lambda t, y: -y, g, noise="general")
    y0 = torch.ones(2, 2, dtype=torch.float64)
    for _ in range(2):  # the second solve's problem knows its noise_dim: no probe
        calls.clear()
        sol = sk.solve(sde, y0, 0.0, 1.0, solver="euler", dt=0.1, generator=0)
        assert sol.stats["nfe_diffusion"] == len(calls)


# --------------------------------------------------------------------- generated problems


SDE_SOLVER_NAMES = ["euler", "milstein", "heun", "euler_heun", "improved_euler", "sosri", "sosra"]


@given(problem=skt.strategies.exact_sdes(), solver=st.sampled_from(SDE_SOLVER_NAMES))
def test_time_reversal_and_composition_hold_on_generated_problems(problem, solver):
    # Random families, coefficients and event shapes (sdekit.testing.strategies.exact_sdes); a
    # solver that refuses the problem has nothing to check.
    report = skt.solver_properties(
        solver, only=["time_reversal", "composition"], problems=[problem]
    )
    assume(report.results[0].status != "skipped")
    report.raise_if_failed()


@given(problem=skt.strategies.exact_sdes(dtypes=(torch.float32,)), seed=st.integers(0, 100))
def test_float32_solves_follow_float64_solves_on_one_path(problem, seed):
    # dt = 2^-6 keeps every step time exact in float32, so both solves query the same path; after
    # 64 steps the float32 solution is within 1e-4 of the float64 one (float32 eps 1.2e-7 per
    # operation, a few hundred operations, coefficients of order one).
    y32 = problem.initial(3)
    y64 = y32.double()
    path = skt.brownian_path(problem.noise_shape(y64), seed=seed)

    def path32(ta, tb, return_U=False, return_A=False):
        out = path(ta, tb, return_U=return_U)
        return tuple(x.float() for x in out) if return_U else out.float()

    solver = "euler" if problem.calculus == "ito" else "heun"
    low = sk.solve(problem, y32, 0.0, 1.0, solver=solver, dt=2.0**-6, brownian=path32).ys[-1]
    high = sk.solve(problem, y64, 0.0, 1.0, solver=solver, dt=2.0**-6, brownian=path).ys[-1]
    assert low.dtype == torch.float32 and high.dtype == torch.float64
    scale = high.abs().max().clamp_min(1.0)
    assert float((low.double() - high).abs().max() / scale) < 1e-4


# --------------------------------------------------------------------- generators


@pytest.mark.parametrize("bad", [True, "seed", 1.5, [torch.Generator(), 3]])
def test_a_generator_of_the_wrong_type_is_refused(bad):
    with pytest.raises(TypeError, match="generator must be None, an int seed, a torch.Generator"):
        sk.solve(
            make_sde("diagonal"), torch.zeros(2, 2), 0.0, 1.0, solver="euler", dt=0.5, generator=bad
        )


def test_one_generator_per_sample_is_required_when_a_list_is_given():
    generators = [torch.Generator().manual_seed(s) for s in range(2)]
    with pytest.raises(ValueError, match="got 2 generators for a batch of 3: pass one per sample"):
        sk.solve(
            make_sde("diagonal"),
            torch.zeros(3, 2),
            0.0,
            1.0,
            solver="euler",
            dt=0.5,
            generator=generators,
        )
    with pytest.raises(ValueError, match="got 2 generators for a batch of 3"):
        sk.random.rand((3, 2), generators, torch.float32, torch.device("cpu"))


def test_a_flattened_state_rebuilds_its_structure_from_new_tensors():
    """``tree_flatten``/``tree_unflatten``: the leaves in order, and a structure made of
    constants (equal for equal structures, so a compiled function taking it compiles once)."""
    from typing import NamedTuple

    from sdekit.batching import tree_flatten, tree_unflatten
    from sdekit.controllers.pid import ControllerState

    class Pair(NamedTuple):
        first: object
        second: object

    def tree(x):
        memory = ControllerState(x[0], x[1], None, x[2])
        return (x[3], None, memory, Pair(x[4], (x[5],)), [x[6]])

    tensors = [torch.full((i + 1,), float(i)) for i in range(7)]
    leaves, structure = tree_flatten(tree(tensors))
    assert [id(x) for x in leaves] == [id(tensors[i]) for i in (3, 0, 1, 2, 4, 5, 6)]
    assert structure == tree_flatten(tree([t + 1 for t in tensors]))[1]
    hash(structure)
    rebuilt = tree_unflatten(structure, iter([x + 10 for x in leaves]))
    expected = tree([t + 10 for t in tensors])
    assert type(rebuilt[2]) is ControllerState and type(rebuilt[3]) is Pair
    assert rebuilt[1] is None and rebuilt[2].reference is None
    for a, b in zip(tree_flatten(rebuilt)[0], tree_flatten(expected)[0], strict=True):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="cannot flatten a str"):
        tree_flatten(("not a tensor",))


@pytest.mark.parametrize("many", [False, True])
def test_a_generator_on_another_device_than_the_state_is_refused_naming_both(many):
    # torch draws on a device only with a generator of that device; its own error ("Expected a
    # 'cuda' device type for generator") names neither the argument nor the fix.
    generator = [torch.Generator(), torch.Generator()] if many else torch.Generator()
    with pytest.raises(ValueError, match=r"Generator on cpu cannot draw .* on cuda.*device='cuda'"):
        sk.random.as_generator(generator, "cuda")
    assert sk.random.as_generator(generator, "cpu") is not None


@pytest.mark.parametrize("backward", [False, True])
def test_float32_save_times_on_the_grid_add_no_steps(backward):
    # a float32 linspace's 0.1 is 1.5e-9 from the grid's 0.1: it made a step of that length
    sde = sk.SDE(lambda t, y: -y, lambda t, y: 0.5 * y)
    t0, t1 = (1.0, 0.0) if backward else (0.0, 1.0)
    ts = torch.linspace(t0, t1, 11)
    hs = []
    sol = sk.solve(sde, torch.ones(4, 2), t0, t1, solver="euler", dt=0.1, generator=0,
                   saveat=ts, callback=lambda info: hs.append(float(info["h"])))  # fmt: skip
    assert sol.stats["steps"] == 10 and min(map(abs, hs)) > 0.099
    assert sol.ts.tolist() == ts.tolist()
    stepped = sk.solve(sde, torch.ones(4, 2), t0, t1, solver="euler", controller=sk.StepTo(ts),
                       saveat=[t0 + (t1 - t0) * k / 10 for k in (3, 7, 10)])  # fmt: skip
    assert stepped.stats["steps"] == 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_grid_of_dt_keeps_its_steps_where_dt_is_a_few_ulps_of_t(dtype):
    # a resolution of the state's dtype merged grid points with one another: 20 steps of 5e-4
    # for dt=1e-4 at t = 1000 in float32
    sde = sk.SDE(lambda t, y: -y, lambda t, y: 0.5 * y)
    y0 = torch.ones(2, 1, dtype=dtype)
    sol = sk.solve(sde, y0, 1000.0, 1000.01, solver="euler", dt=1e-4, generator=0)
    assert sol.stats["steps"] == 100


def test_milstein_under_inference_mode_is_milstein():
    # autograd records nothing there: the correction read as zero, and Milstein became Euler
    gbm = sk.SDE(lambda t, y: 0.5 * y, lambda t, y: 0.8 * y)
    y0 = torch.ones(64, 1, dtype=torch.float64)
    options = dict(solver="milstein", dt=0.1, generator=0)
    plain = sk.solve(gbm, y0, 0.0, 1.0, **options).ys
    with torch.inference_mode():
        inferred = sk.solve(gbm, y0.clone(), 0.0, 1.0, **options).ys
    euler = sk.solve(gbm, y0, 0.0, 1.0, solver="euler", dt=0.1, generator=0).ys
    torch.testing.assert_close(inferred, plain, rtol=1e-12, atol=1e-12)
    assert (plain - euler).abs().max() > 0.01


_SAVED_MEMORY = """
import resource, sys, torch, sdekit as sk
gbm = sk.SDE(lambda t, y: 0.05 * y, lambda t, y: 0.2 * y, noise="diagonal")
y0 = torch.full((50_000, 1), 100.0, dtype=torch.float64)
saveat = torch.arange(1, 201, dtype=torch.float64) / 200
sk.solve(gbm, y0[:10], 0.0, 1.0, solver="euler", dt=1 / 200, generator=0, saveat=saveat)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
sol = sk.solve(gbm, y0, 0.0, 1.0, solver="euler", dt=1 / 200, generator=0, saveat=saveat)
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(growth / (sol.ys.numel() * sol.ys.element_size()))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS in bytes, glibc's mmap threshold")
def test_fixed_step_saves_are_held_once():
    # the states at save times were kept as a list and stacked at the end: peak memory twice the
    # result's (391 MiB for 191 MiB of saves); they are now written into the result as they come
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")  # freed blocks leave the RSS at once
    result = subprocess.run(
        [sys.executable, "-c", _SAVED_MEMORY], capture_output=True, text=True, env=env, check=True
    )
    assert float(result.stdout) < 1.5  # measured 1.04; 1.79 before

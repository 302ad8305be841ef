"""Backpropagation through ``sdekit.solve``: gradients reach y0 and the parameters of the drift and
the diffusion, and agree with finite differences (``torch.autograd.gradcheck``) on a fixed path."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

import sdekit as sk
from sdekit.testing import brownian_path

DT = 0.125


def _parametric_sde(theta_f, theta_g, calculus, noise="diagonal") -> sk.SDE:
    def drift(t, y):
        return -theta_f[0] * y + theta_f[1] * torch.sin(y + t)

    if noise == "scalar":

        def diffusion(t, y):
            return theta_g[0] * torch.cos(y) + theta_g[1] * t

    else:

        def diffusion(t, y):
            return theta_g[0] * torch.cos(y) + theta_g[1] * y

    return sk.SDE(drift, diffusion, noise=noise, calculus=calculus)


GRADCHECK_CASES = [
    ("euler", "ito", "diagonal"),
    ("milstein-autograd", "ito", "diagonal"),
    ("milstein-finite_difference", "ito", "diagonal"),
    ("milstein-autograd", "stratonovich", "diagonal"),
    ("milstein-finite_difference", "stratonovich", "scalar"),
    ("heun", "stratonovich", "diagonal"),
    ("euler_heun", "stratonovich", "scalar"),
]


def _solver(name: str):
    if name.startswith("milstein-"):
        return sk.Milstein(derivative=name.removeprefix("milstein-"))
    return name


@pytest.mark.parametrize(
    "solver, calculus, noise", GRADCHECK_CASES, ids=[f"{s}-{c}-{n}" for s, c, n in GRADCHECK_CASES]
)
def test_gradients_through_a_fixed_step_sde_solve_match_finite_differences(solver, calculus, noise):
    y0 = torch.tensor([[0.3, -0.2], [0.8, 0.1]], dtype=torch.float64, requires_grad=True)
    theta_f = torch.tensor([0.7, 0.4], dtype=torch.float64, requires_grad=True)
    theta_g = torch.tensor([0.5, 0.3], dtype=torch.float64, requires_grad=True)
    shape = (2, 1) if noise == "scalar" else (2, 2)
    bm = brownian_path(shape, 0.0, 1.0, seed=3)

    def final_state(y0, theta_f, theta_g):
        sde = _parametric_sde(theta_f, theta_g, calculus, noise)
        sol = sk.solve(sde, y0, 0.0, 1.0, solver=_solver(solver), dt=DT, brownian=bm)
        return sol.ys[-1]

    assert gradcheck(final_state, (y0, theta_f, theta_g))
    # Every input influences the result: a gradient that is silently zero would pass gradcheck
    # only if the finite differences were zero too.
    grads = torch.autograd.grad(final_state(y0, theta_f, theta_g).sum(), (y0, theta_f, theta_g))
    assert all(bool((g != 0).all()) for g in grads)


def test_gradients_through_saved_states_match_finite_differences():
    theta_f = torch.tensor([0.7, 0.4], dtype=torch.float64, requires_grad=True)
    theta_g = torch.tensor([0.5, 0.3], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[0.3, -0.2]], dtype=torch.float64)

    def saved(theta_f, theta_g):
        sde = _parametric_sde(theta_f, theta_g, "ito")
        return sk.solve(
            sde, y0, 0.0, 1.0, solver="euler", dt=DT, saveat=[0.3, 0.6, 1.0], generator=5
        ).ys

    assert gradcheck(saved, (theta_f, theta_g))


def test_gradients_through_an_adaptive_dopri5_solve_match_finite_differences():
    # Step sizes depend on the state, but smoothly while no accept/reject decision flips: the
    # solution is differentiable there and gradcheck's perturbations (1e-6) keep the decisions.
    y0 = torch.tensor([[1.0, 0.5], [0.2, -0.3]], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([0.8, 1.5], dtype=torch.float64, requires_grad=True)

    def final_state(y0, theta):
        ode = sk.ODE(lambda t, y: -theta[0] * y + torch.sin(theta[1] * t) * y.flip(-1))
        controller = sk.PIController(rtol=1e-7, atol=1e-9)
        return sk.solve(
            ode, y0, 0.0, 2.0, solver="dopri5", controller=controller, saveat=[1.0, 2.0]
        ).ys

    assert gradcheck(final_state, (y0, theta))


def test_adaptive_dopri5_gradient_matches_the_exact_sensitivity():
    # y' = -a y: y(T) = y0 exp(-a T), dy(T)/dy0 = exp(-a T), dy(T)/da = -T y0 exp(-a T).
    a = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[1.5, -0.5]], dtype=torch.float64, requires_grad=True)
    ode = sk.ODE(lambda t, y: -a * y)
    controller = sk.PIController(rtol=1e-9, atol=1e-12)
    y1 = sk.solve(ode, y0, 0.0, 2.0, solver="dopri5", controller=controller).ys[-1]
    grad_y0, grad_a = torch.autograd.grad(y1.sum(), (y0, a))
    decay = math.exp(-0.9 * 2.0)
    torch.testing.assert_close(grad_y0, torch.full_like(y0, decay), rtol=1e-7, atol=0)
    torch.testing.assert_close(
        grad_a, torch.tensor(-2.0 * 1.0 * decay, dtype=torch.float64), rtol=1e-7, atol=0
    )


def test_gbm_pathwise_gradient_matches_the_exact_one():
    # Stratonovich GBM: X1 = X0 exp(mu + sigma W1), so dX1/dsigma = W1 X1 pathwise; stochastic
    # Heun's gradient converges to it as dt -> 0 on the same path.
    mu = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    y0 = torch.ones(200, 1, dtype=torch.float64)
    bm = brownian_path((200, 1), 0.0, 1.0, seed=8)
    sde = sk.SDE(lambda t, y: mu * y, lambda t, y: sigma * y, calculus="stratonovich")
    y1 = sk.solve(sde, y0, 0.0, 1.0, solver="heun", dt=2.0**-9, brownian=bm).ys[-1]
    grad_mu, grad_sigma = torch.autograd.grad(y1.sum(), (mu, sigma))
    W1 = bm(0.0, 1.0)
    exact = y0 * torch.exp(mu.detach() + sigma.detach() * W1)
    torch.testing.assert_close(grad_mu, exact.sum(), rtol=1e-2, atol=0)
    torch.testing.assert_close(grad_sigma, (W1 * exact).sum(), rtol=1e-2, atol=0)


@pytest.mark.parametrize("compile", [False, True])
def test_a_per_sample_adaptive_solve_differentiates_through_its_steps(compile):
    """Per-sample step sizes, the one-path bridge and (compiled) one attempt per call: gradients
    flow through the steps taken, not through the choice of step sizes, and with no noise they
    match the exact sensitivities of y' = -a y."""
    a = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[1.5], [-0.5], [0.2]], dtype=torch.float64, requires_grad=True)

    def solve(sigma, tol):
        sde = sk.SDE(lambda t, y: -a * y, lambda t, y: sigma * torch.ones_like(y), "additive")
        controller = sk.PIController(rtol=tol, atol=tol, per_sample=True)
        options = dict(solver="improved_euler", controller=controller, generator=3)
        return sk.solve(sde, y0, 0.0, 2.0, compile=compile, **options).ys[-1]

    grad_y0, grad_a = torch.autograd.grad(solve(0.0, 1e-8).sum(), (y0, a))
    decay = math.exp(-0.9 * 2.0)
    torch.testing.assert_close(grad_y0, torch.full_like(y0, decay), rtol=1e-6, atol=0)
    exact_a = torch.tensor(-2.0 * decay * (1.5 - 0.5 + 0.2), dtype=torch.float64)
    torch.testing.assert_close(grad_a, exact_a, rtol=1e-6, atol=0)
    # The bridge's times hold no graph. (A loose tolerance: at 1e-8 the noise takes about 2e5
    # steps per sample.)
    noisy = torch.autograd.grad(solve(0.4, 1e-4).sum(), (y0, a))
    assert all(torch.isfinite(g).all() for g in noisy)


def test_a_rejected_non_finite_attempt_leaves_per_sample_gradients_finite():
    # y' = -a sqrt(y): a first attempt too long makes y negative in a stage (NaN), rejected. Per
    # sample the rejected row stays in the graph behind a where, and 0 * NaN poisoned every
    # gradient; shared time discards the attempt. Exact: y = (sqrt(y0) - a t / 2)².
    a = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[1.0], [4.0]], dtype=torch.float64, requires_grad=True)
    ode = sk.ODE(lambda t, y: -a * torch.sqrt(y))
    root = y0.detach().sqrt() - 3.0 * 0.66 / 2
    for per_sample in (False, True):
        controller = sk.PIController(rtol=1e-6, atol=1e-6, per_sample=per_sample)
        sol = sk.solve(ode, y0, 0.0, 0.66, solver="dopri5", controller=controller)
        assert torch.as_tensor(sol.stats["rejected"]).sum() > 0
        grad_y0, grad_a = torch.autograd.grad(sol.ys[-1].sum(), (y0, a))
        # (to the solve's tolerance: the first sample ends at y = 1e-4, near the singular 0)
        torch.testing.assert_close(grad_y0, root / y0.detach().sqrt(), rtol=1e-2, atol=0)
        torch.testing.assert_close(grad_a, -(root * 0.66).sum(), rtol=1e-3, atol=0)


@pytest.mark.parametrize("grad", [True, False])
def test_milstein_with_a_learnable_diffusion_that_ignores_y_is_euler(grad):
    """A diffusion with parameters but no dependence on y (declared diagonal, as torchsde users
    do) has J_g g = 0: Milstein's step is Euler–Maruyama's, with or without a graph, and the
    gradient flows into the parameter."""
    sigma = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    y0 = torch.ones(4, 1, dtype=torch.float64)
    for g in (lambda t, y: sigma * torch.ones_like(y), lambda t, y: sigma * t + 1 + 0 * y.detach()):
        sde = sk.SDE(lambda t, y: -y, g, noise="diagonal")
        with torch.set_grad_enabled(grad):
            ys = [
                sk.solve(sde, y0, 0.0, 1.0, solver=s, dt=0.1, generator=0).ys[-1]
                for s in ("milstein", "euler")
            ]
        torch.testing.assert_close(ys[0], ys[1], rtol=1e-12, atol=1e-12)
        if grad:
            (d_sigma,) = torch.autograd.grad(ys[0].sum(), sigma)
            (d_euler,) = torch.autograd.grad(ys[1].sum(), sigma)
            torch.testing.assert_close(d_sigma, d_euler)


def test_milstein_takes_an_expanded_learnable_initial_state():
    # One learnable state for the batch, expanded: forward-mode AD refused to make it dual
    # ("more than one element of the written-to tensor refers to a single memory location").
    leaf = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    sde = sk.SDE(lambda t, y: -y, lambda t, y: torch.sin(y) + 1)

    def final(y0):
        return sk.solve(sde, y0, 0.0, 1.0, solver="milstein", dt=0.1, generator=0).ys[-1]

    (expanded,) = torch.autograd.grad(final(leaf.expand(8, 2)).sum(), leaf)
    (copied,) = torch.autograd.grad(final(leaf.expand(8, 2).clone()).sum(), leaf)
    torch.testing.assert_close(expanded, copied, rtol=1e-14, atol=0)
    with torch.inference_mode():
        torch.testing.assert_close(
            final(leaf.detach().expand(8, 2)), final(leaf.detach().clone().expand(8, 2).clone())
        )


class _Softplus(torch.autograd.Function):
    """softplus as a custom Function with a backward and no jvp (no forward mode)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.nn.functional.softplus(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


def test_milstein_differentiates_a_diffusion_without_forward_mode():
    # torchsde's milstein runs such a diffusion; ours raised NotImplementedError from forward AD
    w = torch.tensor([0.5, 0.7], dtype=torch.float64, requires_grad=True)
    y0 = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y0.requires_grad_(True)

    def grads(softplus):
        sde = sk.SDE(lambda t, y: -y, lambda t, y: softplus(w * y))
        ys = sk.solve(sde, y0, 0.0, 0.5, solver="milstein", dt=0.05, generator=0).ys
        return ys, torch.autograd.grad(ys.sum(), (y0, w))

    custom, built_in = grads(_Softplus.apply), grads(torch.nn.functional.softplus)
    torch.testing.assert_close(custom, built_in, rtol=1e-12, atol=1e-14)
    with torch.inference_mode(), pytest.raises(ValueError, match="under torch.no_grad"):
        sk.solve(
            sk.SDE(lambda t, y: -y, lambda t, y: _Softplus.apply(y)),
            y0.detach(),
            0.0,
            0.5,
            solver="milstein",
            dt=0.05,
        )


def test_finite_difference_milstein_steps_of_length_zero_have_finite_gradients():
    # A compiled chunk pads its last steps with h = 0 and discards them: the finite-difference
    # derivative divided by sqrt|h| = 0, and 0 * inf made every gradient NaN.
    solver = sk.Milstein("finite_difference")
    sde = sk.SDE(lambda t, y: -y, lambda t, y: torch.sin(y) + 1)
    solver.check(sde)
    y = torch.ones(2, 1, dtype=torch.float64, requires_grad=True)
    h = torch.tensor([0.1, 0.0], dtype=torch.float64)
    inc = sk.brownian.Increment(dW=torch.tensor([[0.2], [0.0]], dtype=torch.float64))
    y_next, _, _ = solver.step(sde, torch.zeros(2, dtype=torch.float64), y, h, inc, None)
    (grad,) = torch.autograd.grad(torch.where(h[:, None] > 0, y_next, y).sum(), y)
    assert torch.isfinite(grad).all() and grad[1].item() == 1.0

"""Test problems with known pathwise solutions, shared by the test modules.

Each :class:`ExactProblem` is a scalar SDE applied component-wise to a state of shape
``(batch, dim)`` with diagonal or additive noise, so every component is driven by its own
Brownian motion. ``problem.solution(y0, bm)`` is the exact solution at ``t1`` on the path ``bm``
(a ``torchsde.BrownianInterval``, see :func:`brownian_interval`): solves at different step sizes
on the same ``bm`` converge to it, which is what :func:`strong_errors` measures.

The cubic and arctan problems are from Kloeden & Platen, *Numerical Solution of Stochastic
Differential Equations* (1992), sec. 4.4; the time-dependent additive problem is the one of
DifferentialEquations.jl's SDE problem library. Each exact solution is checked against Itô's
formula in the comment above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchsde

import sdekit as sk

#: ``solution(y0, bm)``: the exact state at ``t1`` on the path ``bm``.
Solution = Callable[[torch.Tensor, torchsde.BrownianInterval], torch.Tensor]


@dataclass(frozen=True)
class ExactProblem:
    """An SDE on ``[t0, t1]`` with its exact pathwise solution at ``t1``.

    ``levy_area``: the solution needs the path's space-time Lévy area (build ``bm`` with it).
    """

    name: str
    sde: sk.SDE
    solution: Solution
    y0: tuple[float, ...]
    t0: float = 0.0
    t1: float = 1.0
    levy_area: bool = False

    def initial(self, batch: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``y0`` repeated over the batch: shape ``(batch, len(self.y0))``."""
        return torch.tensor(self.y0, dtype=dtype).expand(batch, -1).clone()

    def path(self, batch: int, *, seed: int = 0, dt: float | None = None):
        """The initial state for ``batch`` paths and one Brownian path for all of them."""
        y0 = self.initial(batch)
        bm = brownian_interval(
            tuple(y0.shape), self.t0, self.t1, seed=seed, dt=dt, levy_area=self.levy_area
        )
        return y0, bm


def _per_component(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _of_increment(exact, t0: float, t1: float) -> Solution:
    """A solution that depends on the path only through ``W(t1) - W(t0)``."""

    def solution(y0, bm):
        return exact(y0, t1 - t0, bm(t0, t1))

    return solution


# --------------------------------------------------------------------- geometric Brownian motion
#
# dX = mu X dt + sigma X dW (Itô):              X_t = X_0 exp((mu - sigma^2/2) t + sigma W_t)
# dX = mu X dt + sigma X ∘dW (Stratonovich):    X_t = X_0 exp(mu t + sigma W_t)

GBM_MU = (0.5, -0.3)
GBM_SIGMA = (0.8, 0.5)


def gbm(calculus: str) -> ExactProblem:
    def drift(t, y):
        return _per_component(GBM_MU, y) * y

    def diffusion(t, y):
        return _per_component(GBM_SIGMA, y) * y

    def exact(y0, t, W):
        mu, sigma = _per_component(GBM_MU, y0), _per_component(GBM_SIGMA, y0)
        rate = mu - 0.5 * sigma**2 if calculus == "ito" else mu
        return y0 * torch.exp(rate * t + sigma * W)

    sde = sk.SDE(drift, diffusion, noise="diagonal", calculus=calculus)
    return ExactProblem(f"gbm-{calculus}", sde, _of_increment(exact, 0.0, 1.0), y0=(1.0, 0.5))


# --------------------------------------------------------------------- the cubic problem
#
# du = -1/4 u (1 - u^2) dt + 1/2 (1 - u^2) dW (Itô), i.e. du = 1/2 (1 - u^2) ∘dW (Stratonovich:
# the Itô-to-Stratonovich correction -1/2 g g' = -1/4 u (1 - u^2) cancels the drift). Exact:
#   u_t = tanh(W_t / 2 + artanh u_0) = ((1 + u_0) e^W + u_0 - 1) / ((1 + u_0) e^W + 1 - u_0)
# (Itô: d tanh z = (1 - u^2) dz - u (1 - u^2) d<z>, with z = W/2 + artanh u_0, d<z> = dt/4).


def cubic(calculus: str) -> ExactProblem:
    def drift(t, y):
        if calculus == "stratonovich":
            return torch.zeros_like(y)
        return -0.25 * y * (1 - y**2)

    def diffusion(t, y):
        return 0.5 * (1 - y**2)

    def exact(y0, t, W):
        e = torch.exp(W)
        return ((1 + y0) * e + y0 - 1) / ((1 + y0) * e + 1 - y0)

    sde = sk.SDE(drift, diffusion, noise="diagonal", calculus=calculus)
    return ExactProblem(f"cubic-{calculus}", sde, _of_increment(exact, 0.0, 1.0), y0=(0.5, -0.2))


# --------------------------------------------------------------------- the arctan ("wave") problem
#
# dX = -a^2 sin X cos^3 X dt + a cos^2 X dW (Itô), i.e. dX = a cos^2 X ∘dW (Stratonovich).
# Exact: X_t = arctan(a W_t + tan X_0)  (Itô's formula on X = arctan Y, Y = a W + tan X_0:
# dX = dY / (1 + Y^2) - Y / (1 + Y^2)^2 a^2 dt = a cos^2 X dW - a^2 tan X cos^4 X dt).

ARCTAN_A = 1.0


def arctan(calculus: str) -> ExactProblem:
    a = ARCTAN_A

    def drift(t, y):
        if calculus == "stratonovich":
            return torch.zeros_like(y)
        return -(a**2) * torch.sin(y) * torch.cos(y) ** 3

    def diffusion(t, y):
        return a * torch.cos(y) ** 2

    def exact(y0, t, W):
        return torch.atan(a * W + torch.tan(y0))

    sde = sk.SDE(drift, diffusion, noise="diagonal", calculus=calculus)
    return ExactProblem(f"arctan-{calculus}", sde, _of_increment(exact, 0.0, 1.0), y0=(0.3, 1.0))


# --------------------------------------------------------------------- time-dependent additive noise
#
# dX = (beta / sqrt(1 + t) - X / (2 (1 + t))) dt + alpha beta / sqrt(1 + t) dW
# Exact: X_t = (X_0 + beta t + alpha beta W_t) / sqrt(1 + t)  (Itô's formula on Z / sqrt(1 + t)
# with dZ = beta dt + alpha beta dW). Itô and Stratonovich coincide. The diffusion depends on t,
# so Euler–Maruyama is strong order 1.0 here. The problem is special: its solution is a function
# of W_t alone, and the trapezoidal schemes (stochastic Heun, improved Euler) reach order 2.0 on it;
# use :func:`ornstein_uhlenbeck` to measure their generic order 1.0 under additive noise.

ADDITIVE_ALPHA = 1.0
ADDITIVE_BETA = 0.5


def additive(calculus: str = "ito") -> ExactProblem:
    alpha, beta = ADDITIVE_ALPHA, ADDITIVE_BETA

    def drift(t, y):
        return beta / torch.sqrt(1 + t) - y / (2 * (1 + t))

    def diffusion(t, y):
        return (alpha * beta / torch.sqrt(1 + t)).expand(y.shape)

    def exact(y0, t, W):
        return (y0 + beta * (t + alpha * W)) / math.sqrt(1 + t)

    sde = sk.SDE(drift, diffusion, noise="additive", calculus=calculus)
    return ExactProblem(f"additive-{calculus}", sde, _of_increment(exact, 0.0, 1.0), y0=(1.0, -0.5))


# --------------------------------------------------------------------- Ornstein–Uhlenbeck
#
# dX = theta (m - X) dt + sigma dW: additive noise with a state-dependent drift. The trapezoidal
# schemes are strong order 1.0 here (their leading error is f' g times each step's space-time Lévy
# area). Exact solution:
#   X_t = m + (X_0 - m) e^{-theta t} + sigma ∫_0^t e^{-theta (t - s)} dW_s,
# with the stochastic integral taken on the path by :func:`ou_integral_on_path`.

OU_THETA = 1.5
OU_MEAN = 0.5
OU_SIGMA = 0.7
OU_PANELS = 256


def ou_integral_on_path(
    bm: torchsde.BrownianInterval, t0: float, t1: float, theta: float, panels: int
) -> torch.Tensor:
    """``∫_t0^t1 e^{-θ(t1-s)} dW_s`` on the path ``bm`` (built with the space-time Lévy area).

    On each panel ``[a, a + h]``, ``e^{-θ(t1-s)} = w_a (1 + θ (s - a) + O(h^2))`` and
    ``∫ (s - a) dW = h ΔW - U`` with ``U = ∫ (W_s - W_a) ds``, which the path returns exactly;
    the result is exact up to ``O(h^2)`` in root mean square (about ``4e-6`` for 256 panels).
    """
    ts = torch.linspace(t0, t1, panels + 1, dtype=torch.float64).tolist()
    total = 0.0
    for a, b in zip(ts, ts[1:], strict=False):
        dW, U = bm(a, b, return_U=True)
        total = total + math.exp(-theta * (t1 - a)) * (dW + theta * ((b - a) * dW - U))
    return total


def ornstein_uhlenbeck(calculus: str = "ito") -> ExactProblem:
    theta, m, sigma = OU_THETA, OU_MEAN, OU_SIGMA

    def drift(t, y):
        return theta * (m - y)

    def diffusion(t, y):
        return torch.full_like(y, sigma)

    def solution(y0, bm):
        t0, t1 = 0.0, 1.0
        decay = math.exp(-theta * (t1 - t0))
        integral = ou_integral_on_path(bm, t0, t1, theta, OU_PANELS)
        return m + (y0 - m) * decay + sigma * integral

    sde = sk.SDE(drift, diffusion, noise="additive", calculus=calculus)
    return ExactProblem(f"ou-{calculus}", sde, solution, y0=(1.0, -0.5), levy_area=True)


# --------------------------------------------------------------------- a smooth ODE
#
# y1' = y1 cos t (exact y1_0 e^{sin t}) and the logistic y2' = y2 (1 - y2)
# (exact y2_0 e^t / (1 - y2_0 + y2_0 e^t)).


def smooth_ode() -> tuple[sk.ODE, Callable[[torch.Tensor, float, float], torch.Tensor]]:
    """The ODE and its exact flow ``exact(y0, t0, t1)``."""

    def field(t, y):
        return torch.stack([y[:, 0] * torch.cos(t), y[:, 1] * (1 - y[:, 1])], dim=1)

    def exact(y0, t0, t1):
        e = math.exp(t1 - t0)
        y1 = y0[:, 0] * math.exp(math.sin(t1) - math.sin(t0))
        y2 = y0[:, 1] * e / (1 - y0[:, 1] + y0[:, 1] * e)
        return torch.stack([y1, y2], dim=1)

    return sk.ODE(field), exact


# --------------------------------------------------------------------- paths and fitted orders


def brownian_interval(
    shape: tuple[int, ...],
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    seed: int = 0,
    dt: float | None = None,
    dtype: torch.dtype = torch.float64,
    levy_area: bool = False,
) -> torchsde.BrownianInterval:
    """One Brownian path of ``shape`` on ``[t0, t1]``, queried consistently by every solve.

    With ``levy_area`` it also carries the space-time Lévy area (``bm(a, b, return_U=True)``).
    """
    return torchsde.BrownianInterval(
        t0=t0,
        t1=t1,
        size=shape,
        dtype=dtype,
        entropy=seed,
        dt=dt,
        levy_area_approximation="space-time" if levy_area else "none",
    )


def fitted_order(step_sizes: list[float], errors: list[float]) -> float:
    """Least-squares slope of ``log(error)`` against ``log(step)``."""
    x = torch.tensor(step_sizes, dtype=torch.float64).log()
    y = torch.tensor(errors, dtype=torch.float64).log()
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def strong_errors(
    problem: ExactProblem, solver, step_sizes: list[float], *, batch: int, seed: int = 0
) -> list[float]:
    """RMS error at ``t1`` over ``batch`` paths for each step size, every solve on one path."""
    y0, bm = problem.path(batch, seed=seed, dt=min(step_sizes))
    exact = problem.solution(y0, bm)
    errors = []
    for dt in step_sizes:
        sol = sk.solve(problem.sde, y0, problem.t0, problem.t1, solver=solver, dt=dt, brownian=bm)
        errors.append(float((sol.ys[-1] - exact).square().mean().sqrt()))
    return errors

r"""Problems with known answers: exact pathwise solutions, and known stationary laws.

**Exact SDEs** (:class:`ExactSDE`) are ordinary :class:`sdekit.SDE` objects that also carry
``exact(y0, path, t0, t1)``, the solution at ``t1`` started from ``y0`` at ``t0`` on the Brownian
path ``path`` (a torchsde-style callable, ``path(ta, tb)`` the increment over ``[ta, tb]`` and
``path(ta, tb, return_U=True)`` also ``U = ∫_ta^tb (W(s) − W(ta)) ds``; see
:func:`sdekit.testing.brownian_path`). Solves at different step sizes on that same path converge to
it, at the scheme's strong order. Each family below states its solution with the line of Itô
calculus that checks it. Coefficients may be floats or tensors broadcastable to the event shape
(one coefficient per component), and any event shape works unless a family says otherwise.

========================  ==========  ============  =======================================
family                    noise       calculus      exact solution
========================  ==========  ============  =======================================
:func:`gbm`               diagonal,   Itô, Strat.   ``y0 exp(r Δt + σ ΔW)``
                          scalar
:func:`linear_system`     scalar      Itô, Strat.   ``expm(M Δt + B ΔW) y0`` (``AB = BA``)
:func:`cubic`             diagonal    Itô, Strat.   ``tanh(a ΔW + artanh y0)``
:func:`arctan`            diagonal    Itô, Strat.   ``arctan(a ΔW + tan y0)``
:func:`sinh`              diagonal    Itô, Strat.   ``sinh(a ΔW + arsinh y0)``
:func:`additive_linear`   additive    either        ``(√(1+t0) y0 + β Δt + αβ ΔW)/√(1+t1)``
:func:`ornstein_uhlenbeck` additive   either        ``m + (y0 − m)e^{−θΔt} + σ∫e^{−θ(t1−s)}dW``
========================  ==========  ============  =======================================

The reducible nonlinear families (cubic, arctan, sinh) are Kloeden & Platen, *Numerical Solution
of Stochastic Differential Equations* (1992), sec. 4.4; their Stratonovich forms have no drift.
:func:`additive_linear` is DifferentialEquations.jl's time-dependent additive test problem.

**Stationary SDEs** (:class:`StationarySDE`) know their stationary law: ``moment(p)`` is
``E[Y^p]`` under it and ``sample_stationary(n, generator)`` draws from it, so a solve started from
the law must keep it at every horizon (:func:`sdekit.testing.stationary_check`). The double well
(:func:`double_well`) is the long-time test of adaptive stepping: its embedded error estimates are
driven by the noise, so a Brownian source that does not keep one path biases its moments.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sdekit.checks import one_of
from sdekit.errors import InputValueError
from sdekit.problems import CALCULI, ODE, SDE
from sdekit.random import GeneratorLike, as_generator, rand, randn

Coefficient = float | torch.Tensor
#: ``exact(y0, path, t0, t1)``: the exact state at ``t1`` on ``path``, shaped like ``y0``.
Exact = Callable[[torch.Tensor, Callable, float, float], torch.Tensor]


def _like(c: Coefficient, y: torch.Tensor) -> Coefficient:
    return c.to(dtype=y.dtype, device=y.device) if isinstance(c, torch.Tensor) else c


def _as_tensor(c: Coefficient) -> Coefficient:
    return torch.as_tensor(c, dtype=torch.float64) if isinstance(c, torch.Tensor) else float(c)


class _Initial:
    """``y0`` (one sample's state, any event shape) and :meth:`initial` to repeat it."""

    name: str
    y0: torch.Tensor

    def initial(self, batch: int, *, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
        """``y0`` repeated over a batch: shape ``(batch, *y0.shape)``."""
        y0 = self.y0.to(dtype=dtype or self.y0.dtype, device=device)
        return y0.expand(batch, *y0.shape).clone()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, event_shape={tuple(self.y0.shape)})"


class ExactSDE(SDE, _Initial):
    """An :class:`sdekit.SDE` with its exact pathwise solution (module docstring).

    Args:
        drift, diffusion, noise, calculus, noise_dim: as for :class:`sdekit.SDE`.
        exact: ``exact(y0, path, t0, t1)``; ``y0`` is ``(batch, *event)``, ``path`` a
            torchsde-style Brownian path shaped like the problem's increments.
        y0: one sample's initial state (event shape, no batch axis); its dtype is the default.
        name: for messages and test ids.
        time_dependent: whether the coefficients depend on ``t`` (the battery checks orders on
            one such problem, so that a scheme that ignores ``t`` fails).
    """

    def __init__(
        self,
        drift,
        diffusion,
        *,
        exact: Exact,
        y0,
        name: str,
        noise="diagonal",
        calculus="ito",
        noise_dim: int | None = None,
        time_dependent: bool = False,
    ):
        super().__init__(drift, diffusion, noise=noise, calculus=calculus, noise_dim=noise_dim)
        self.exact = exact
        self.time_dependent = time_dependent
        self.y0 = torch.as_tensor(y0, dtype=torch.float64) if not torch.is_tensor(y0) else y0
        self.name = name


class ExactODE(ODE, _Initial):
    """An :class:`sdekit.ODE` with its exact flow ``exact(y0, None, t0, t1)``."""

    def __init__(self, vector_field, *, exact: Exact, y0, name: str):
        super().__init__(vector_field)
        self.exact = exact
        self.y0 = torch.as_tensor(y0, dtype=torch.float64) if not torch.is_tensor(y0) else y0
        self.name = name


class StationarySDE(SDE):
    """An :class:`sdekit.SDE` with a known stationary law (module docstring).

    Args:
        moment: ``moment(p)``, ``E[Y^p]`` of one component under the stationary law.
        sample: ``sample(n, generator, dtype, device)``, ``n`` independent draws of the law,
            shape ``(n, 1)``.
    """

    def __init__(self, drift, diffusion, *, moment, sample, name: str, noise="additive"):
        super().__init__(drift, diffusion, noise=noise, calculus="ito")
        self.moment = moment
        self._sample = sample
        self.name = name

    def __repr__(self) -> str:
        return f"StationarySDE({self.name!r})"

    def sample_stationary(
        self, n: int, generator: GeneratorLike = None, *, dtype=torch.float64, device=None
    ) -> torch.Tensor:
        """``n`` draws from the stationary law, shape ``(n, 1)``."""
        generator = as_generator(generator, device)
        return self._sample(n, generator, dtype, torch.device(device or "cpu"))


def of_increment(
    solution: Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor],
    forward_only: str | None = None,
) -> Exact:
    """An ``exact(y0, path, t0, t1)`` from ``solution(y0, t1 - t0, W(t1) - W(t0))``, for
    solutions that see the path only through its increment (autonomous reducible problems).

    A backward span (``t1 < t0``) is solved as sdekit solves it: the Itô integral taken in the
    direction of the solve, so the Itô correction ``−½σ²`` grows with ``|t1 − t0|`` (the
    quadratic variation). ``forward_only`` (the problem's name) refuses backward spans, for
    closed forms that hold forward only."""

    def exact(y0, path, t0, t1):
        if forward_only is not None and t1 < t0:
            raise InputValueError(
                f"{forward_only}'s exact solution is for forward spans: backward, its Itô drift "
                f"is another Stratonovich equation (use its Stratonovich form for backward spans)"
            )
        lo, hi = min(t0, t1), max(t0, t1)
        dW = path(lo, hi) if t1 >= t0 else -path(lo, hi)
        return solution(y0, t1 - t0, dW.to(y0.dtype))

    return exact


def _check_calculus(calculus: str) -> str:
    return one_of("calculus", calculus, CALCULI)


# --------------------------------------------------------------------------- linear, multiplicative


def gbm(
    mu: Coefficient = 0.5,
    sigma: Coefficient = 0.8,
    *,
    calculus: str = "ito",
    noise: str = "diagonal",
    y0=(1.0, 0.5),
) -> ExactSDE:
    r"""Geometric Brownian motion ``dY = μY dt + σY dW`` (or ``∘dW``), component-wise.

    Itô: ``Y = y0 exp(μΔt − σ²|Δt|/2 + σΔW)`` (``|Δt|``: also for backward spans, as sdekit
    solves them); Stratonovich: ``Y = y0 exp(μΔt + σΔW)``. With ``noise="scalar"`` one Brownian
    motion drives every component.
    """
    _check_calculus(calculus)
    one_of("noise", noise, ("diagonal", "scalar"))
    mu, sigma = _as_tensor(mu), _as_tensor(sigma)

    def solution(y, dt, dW):
        m, s = _like(mu, y), _like(sigma, y)
        correction = 0.5 * s**2 * abs(dt) if calculus == "ito" else 0.0
        return y * torch.exp(m * dt - correction + s * dW)

    return ExactSDE(
        lambda t, y: _like(mu, y) * y,
        lambda t, y: _like(sigma, y) * y,
        exact=of_increment(solution),
        y0=y0,
        name=f"gbm-{noise}-{calculus}",
        noise=noise,
        calculus=calculus,
    )


def linear_system(A, B, *, calculus: str = "ito", y0=(1.0, -0.5)) -> ExactSDE:
    r"""``dY = AY dt + BY dW`` with one Brownian motion and commuting matrices ``AB = BA``.

    Because ``A`` and ``B`` commute, ``Y = expm(MΔt + BΔW) y0`` with ``M = A − B²/2`` (Itô) or
    ``M = A`` (Stratonovich): ``Z = MΔt + BΔW`` has ``dZ`` commuting with ``Z``, and Itô's formula
    gives ``d expm(Z) = expm(Z)(dZ + B² dt/2)``. States have shape ``(batch, d)``.
    """
    _check_calculus(calculus)
    A, B = torch.as_tensor(A, dtype=torch.float64), torch.as_tensor(B, dtype=torch.float64)
    if A.shape != B.shape or A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise InputValueError(f"A and B must be square and of one shape, got {A.shape}, {B.shape}")
    if not torch.allclose(A @ B, B @ A, rtol=1e-10, atol=1e-12):
        raise InputValueError("linear_system needs commuting matrices: A @ B != B @ A")
    correction = 0.5 * B @ B if calculus == "ito" else torch.zeros_like(A)

    def solution(y, dt, dW):  # the Itô correction with |Δt| (backward spans too)
        Z = _like(A, y) * dt - _like(correction, y) * abs(dt) + _like(B, y) * dW.reshape(-1, 1, 1)
        return (torch.linalg.matrix_exp(Z) @ y.unsqueeze(-1)).squeeze(-1)

    return ExactSDE(
        lambda t, y: y @ _like(A, y).T,
        lambda t, y: y @ _like(B, y).T,
        exact=of_increment(solution),
        y0=y0,
        name=f"linear-system-{calculus}",
        noise="scalar",
        calculus=calculus,
    )


def commuting_matrices(
    d: int, generator: GeneratorLike = None, *, rate=(-1.0, 0.5), vol=(-0.6, 0.6)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random commuting ``A = P diag(a) P⁻¹``, ``B = P diag(b) P⁻¹`` with a well-conditioned
    ``P`` (a rotation-like orthogonal factor times a diagonal in ``[1/2, 2]``); ``a`` in
    ``rate``, ``b`` in ``vol``."""
    gen = as_generator(generator)
    Q, _ = torch.linalg.qr(randn((d, d), gen, torch.float64, torch.device("cpu")))
    P = Q * (0.5 + 1.5 * rand((d,), gen, torch.float64, torch.device("cpu")))
    u = rand((2, d), gen, torch.float64, torch.device("cpu"))
    a = rate[0] + (rate[1] - rate[0]) * u[0]
    b = vol[0] + (vol[1] - vol[0]) * u[1]
    P_inv = torch.linalg.inv(P)
    return P @ torch.diag(a) @ P_inv, P @ torch.diag(b) @ P_inv


# --------------------------------------------------------------------------- reducible nonlinear


def cubic(a: Coefficient = 0.5, *, calculus: str = "ito", y0=(0.5, -0.2)) -> ExactSDE:
    r"""``dY = −a²Y(1 − Y²) dt + a(1 − Y²) dW`` (Itô), i.e. ``dY = a(1 − Y²)∘dW``; ``|y0| < 1``.

    ``Y = tanh(aΔW + artanh y0)``: with ``Z = aΔW + artanh y0``, ``d tanh Z = (1 − Y²) dZ −
    Y(1 − Y²) d⟨Z⟩``, ``d⟨Z⟩ = a² dt``. Kloeden & Platen's example has ``a = 1/2``.
    """
    _check_calculus(calculus)
    a = _as_tensor(a)

    def drift(t, y):
        if calculus == "stratonovich":
            return torch.zeros_like(y)
        return -(_like(a, y) ** 2) * y * (1 - y**2)

    def solution(y, dt, dW):
        return torch.tanh(_like(a, y) * dW + torch.atanh(y))

    return ExactSDE(
        drift,
        lambda t, y: _like(a, y) * (1 - y**2),
        exact=of_increment(solution, f"cubic-{calculus}" if calculus == "ito" else None),
        y0=y0,
        name=f"cubic-{calculus}",
        calculus=calculus,
    )


def arctan(a: Coefficient = 1.0, *, calculus: str = "ito", y0=(0.3, 1.0)) -> ExactSDE:
    r"""``dY = −a² sin Y cos³Y dt + a cos²Y dW`` (Itô), i.e. ``dY = a cos²Y ∘dW``; ``|y0| < π/2``.

    ``Y = arctan(aΔW + tan y0)``: Itô's formula on ``arctan X``, ``X = aΔW + tan y0``:
    ``dY = dX/(1 + X²) − X a² dt/(1 + X²)²``, and ``1/(1 + X²) = cos²Y``.
    """
    _check_calculus(calculus)
    a = _as_tensor(a)

    def drift(t, y):
        if calculus == "stratonovich":
            return torch.zeros_like(y)
        return -(_like(a, y) ** 2) * torch.sin(y) * torch.cos(y) ** 3

    def solution(y, dt, dW):
        return torch.atan(_like(a, y) * dW + torch.tan(y))

    return ExactSDE(
        drift,
        lambda t, y: _like(a, y) * torch.cos(y) ** 2,
        exact=of_increment(solution, f"arctan-{calculus}" if calculus == "ito" else None),
        y0=y0,
        name=f"arctan-{calculus}",
        calculus=calculus,
    )


def sinh(a: Coefficient = 0.6, *, calculus: str = "ito", y0=(0.2, -1.0)) -> ExactSDE:
    r"""``dY = ½a²Y dt + a√(1 + Y²) dW`` (Itô), i.e. ``dY = a√(1 + Y²)∘dW``.

    ``Y = sinh(aΔW + arsinh y0)``: ``d sinh X = cosh X dX + ½ sinh X d⟨X⟩`` with ``dX = a dW``.
    """
    _check_calculus(calculus)
    a = _as_tensor(a)

    def drift(t, y):
        if calculus == "stratonovich":
            return torch.zeros_like(y)
        return 0.5 * _like(a, y) ** 2 * y

    def solution(y, dt, dW):
        return torch.sinh(_like(a, y) * dW + torch.asinh(y))

    return ExactSDE(
        drift,
        lambda t, y: _like(a, y) * torch.sqrt(1 + y**2),
        exact=of_increment(solution, f"sinh-{calculus}" if calculus == "ito" else None),
        y0=y0,
        name=f"sinh-{calculus}",
        calculus=calculus,
    )


# --------------------------------------------------------------------------- additive noise


def _per_sample_time(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return t.reshape((-1,) + (1,) * (y.dim() - 1)) if t.dim() else t


def additive_linear(
    alpha: Coefficient = 1.0,
    beta: Coefficient = 0.5,
    *,
    calculus: str = "ito",
    noise: str = "additive",
    y0=(1.0, -0.5),
) -> ExactSDE:
    r"""``dY = (β/√(1+t) − Y/(2(1+t))) dt + αβ/√(1+t) dW``, time-dependent additive noise.

    ``√(1+t) Y`` is ``β t + αβ W`` plus a constant (Itô's formula on ``Z/√(1+t)``), so
    ``Y(t1) = (√(1+t0) y0 + β Δt + αβ ΔW)/√(1+t1)``. Itô and Stratonovich coincide; needs
    ``t > −1``. Its solution sees the path only through ``ΔW``: trapezoidal schemes reach order 2
    on it, and Euler–Maruyama order 1 (use :func:`ornstein_uhlenbeck` for the generic case).
    ``noise="diagonal"`` declares the same problem as diagonal noise, for schemes that take no
    additive-noise problems.
    """
    _check_calculus(calculus)
    one_of("noise", noise, ("additive", "diagonal"))
    alpha, beta = _as_tensor(alpha), _as_tensor(beta)

    def drift(t, y):
        s = 1 + _per_sample_time(t, y)
        return _like(beta, y) / torch.sqrt(s) - y / (2 * s)

    def diffusion(t, y):
        s = 1 + _per_sample_time(t, y)
        return (_like(alpha, y) * _like(beta, y) / torch.sqrt(s)).expand(y.shape)

    def exact(y, path, t0, t1):
        lo, hi = min(t0, t1), max(t0, t1)
        dW = (path(lo, hi) if t1 >= t0 else -path(lo, hi)).to(y.dtype)
        a, b = _like(alpha, y), _like(beta, y)
        return (math.sqrt(1 + t0) * y + b * (t1 - t0) + a * b * dW) / math.sqrt(1 + t1)

    return ExactSDE(
        drift,
        diffusion,
        exact=exact,
        y0=y0,
        name=f"additive-linear-{calculus}" + ("" if noise == "additive" else f"-{noise}"),
        noise=noise,
        calculus=calculus,
        time_dependent=True,
    )


def ornstein_uhlenbeck(
    theta: Coefficient = 1.5,
    mean: Coefficient = 0.5,
    sigma: Coefficient = 0.7,
    *,
    calculus: str = "ito",
    y0=(1.0, -0.5),
    panels: int = 512,
) -> ExactSDE:
    r"""``dY = θ(m − Y) dt + σ dW``: additive noise with a state-dependent drift.

    ``Y(t1) = m + (y0 − m)e^{−θΔt} + σ∫_{t0}^{t1} e^{−θ(t1−s)} dW_s``. The integral is taken on
    the path over ``panels`` equal panels: on a panel of length ``h`` and midpoint ``c`` with
    ``u = s − c``, ``e^{−θ(t1−s)} = w_c(1 + θu + θ²u²/2 + …)``, and ``∫ dW = ΔW``,
    ``∫ u dW = hΔW/2 − U``, ``∫ u² dW = h²ΔW/12 + (a term orthogonal to both)``, so each panel
    is exact up to a term of variance ``w_c² θ⁴ h⁵/720``: about ``θ²h²/27`` in root mean square
    over the span (``3e-7`` at the defaults), below any error a solve reaches.
    The path must carry the space-time Lévy area (``U``).
    """
    _check_calculus(calculus)
    theta, mean, sigma = _as_tensor(theta), _as_tensor(mean), _as_tensor(sigma)

    def exact(y, path, t0, t1):
        if t1 < t0:
            raise InputValueError("ornstein_uhlenbeck's exact solution is for forward spans")
        th, m, s = _like(theta, y), _like(mean, y), _like(sigma, y)
        edges = torch.linspace(t0, t1, panels + 1, dtype=torch.float64).tolist()
        integral = torch.zeros_like(y)
        for a, b in zip(edges, edges[1:], strict=False):
            h = b - a
            dW, U = (x.to(y.dtype) for x in path(a, b, return_U=True))
            w = torch.exp(-th * torch.as_tensor(t1 - (a + b) / 2, dtype=y.dtype))
            integral = integral + w * ((1 + th**2 * h**2 / 24) * dW + th * (h * dW / 2 - U))
        decay = torch.exp(-th * torch.as_tensor(t1 - t0, dtype=y.dtype))
        return m + (y - m) * decay + s * integral

    return ExactSDE(
        lambda t, y: _like(theta, y) * (_like(mean, y) - y),
        lambda t, y: _like(sigma, y) * torch.ones_like(y),
        exact=exact,
        y0=y0,
        name=f"ou-{calculus}",
        noise="additive",
        calculus=calculus,
    )


# --------------------------------------------------------------------------- an ODE


def smooth_ode(y0=(1.0, 0.2)) -> ExactODE:
    r"""``y₁' = y₁ cos t`` and the logistic ``y₂' = y₂(1 − y₂)``, states ``(batch, 2)``.

    ``y₁(t1) = y₁ e^{sin t1 − sin t0}``, ``y₂(t1) = y₂ e^{Δt}/(1 − y₂ + y₂ e^{Δt})``.
    """

    def field(t, y):
        return torch.stack([y[:, 0] * torch.cos(t), y[:, 1] * (1 - y[:, 1])], dim=1)

    def exact(y, path, t0, t1):
        e = math.exp(t1 - t0)
        y1 = y[:, 0] * math.exp(math.sin(t1) - math.sin(t0))
        y2 = y[:, 1] * e / (1 - y[:, 1] + y[:, 1] * e)
        return torch.stack([y1, y2], dim=1)

    return ExactODE(field, exact=exact, y0=y0, name="smooth-ode")


# --------------------------------------------------------------------------- stationary laws


def _grid_law(log_density: Callable[[np.ndarray], np.ndarray], lo: float, hi: float):
    """Moments and an inverse-CDF sampler of a 1-D density known up to a constant, on a grid
    of 200001 points (trapezoid rule: relative error far below 1e-8 for smooth, fast-decaying
    densities such as the double well's)."""
    grid = np.linspace(lo, hi, 200_001)
    weights = np.exp(log_density(grid) - log_density(grid).max())

    def integral(values: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum((values[1:] + values[:-1]) / 2 * np.diff(grid))])

    cdf = integral(weights)
    mass = cdf[-1]
    cdf = cdf / mass

    def moment(p: int) -> float:
        return float(integral(grid**p * weights)[-1] / mass)

    def sample(n, generator, dtype, device):
        u = rand((n,), generator, torch.float64, torch.device("cpu")).numpy()
        y = torch.from_numpy(np.interp(u, cdf, grid)).reshape(n, 1)
        return y.to(dtype=dtype, device=device)

    return moment, sample


def double_well(sigma: float = 1.0) -> StationarySDE:
    r"""``dY = (Y − Y³) dt + σ dW``: stationary density ``∝ exp((2/σ²)(y²/2 − y⁴/4))``.

    (The stationary Fokker–Planck equation of ``dY = −V'(Y) dt + σ dW`` is solved by
    ``exp(−2V/σ²)``.) Two wells at ``±1``; with ``σ = 1`` a sample crosses between them on a time
    scale of a few units, so horizons of 5–10 test the long-time law.
    """
    sigma = float(sigma)

    def log_density(y):
        return (2 / sigma**2) * (y**2 / 2 - y**4 / 4)

    moment, sample = _grid_law(log_density, -6.0, 6.0)
    return StationarySDE(
        lambda t, y: y - y**3,
        lambda t, y: torch.full_like(y, sigma),
        moment=moment,
        sample=sample,
        name=f"double-well-{sigma:g}",
    )


def ou_stationary(theta: float = 1.0, mean: float = 0.0, sigma: float = 1.0) -> StationarySDE:
    r"""``dY = θ(m − Y) dt + σ dW`` with its stationary law ``N(m, σ²/(2θ))``."""
    var = sigma**2 / (2 * theta)

    def moment(p: int) -> float:
        # E[(m + sZ)^p] = sum_k C(p, k) m^(p-k) s^k E[Z^k], E[Z^k] = (k-1)!! for even k
        s = math.sqrt(var)
        return sum(
            math.comb(p, k) * mean ** (p - k) * s**k * math.prod(range(k - 1, 0, -2))
            for k in range(0, p + 1, 2)
        )

    def sample(n, generator, dtype, device):
        z = randn((n, 1), generator, torch.float64, torch.device("cpu"))
        return (mean + math.sqrt(var) * z).to(dtype=dtype, device=device)

    return StationarySDE(
        lambda t, y: theta * (mean - y),
        lambda t, y: torch.full_like(y, sigma),
        moment=moment,
        sample=sample,
        name=f"ou-stationary-{theta:g}-{mean:g}-{sigma:g}",
    )


def time_reversed(problem: SDE | ODE) -> SDE | ODE:
    r"""The problem in ``s = −t``: drift ``−f(−s, y)``, diffusion ``g(−s, y)``.

    A backward solve of ``problem`` from ``t0`` to ``t1 < t0`` is the forward solve of this one
    from ``−t0`` to ``−t1`` on the mirrored path (:func:`sdekit.testing.mirrored`), step for step.
    """
    f = problem.f
    if problem.noise is None:
        return ODE(lambda s, y: -f(-s, y))
    g = problem.g
    return SDE(
        lambda s, y: -f(-s, y),
        lambda s, y: g(-s, y),
        noise=problem.noise,
        calculus=problem.calculus,
        noise_dim=problem.noise_dim,
    )


def default_problems() -> list[ExactSDE]:
    """The battery's exact problems, sharpest first: multiplicative noise (where a scheme of strong
    order ``p`` shows ``p``), then additive noise (where many schemes show more).

    The scalar-noise system has a diffusion matrix far from diagonal (``B`` with equal and
    opposite eigenvalues, column sums 0.7 and 0.3), so that a Milstein-type correction that is
    right for diagonal noise only shows strong order 0.5 there.
    """
    B = torch.tensor([[0.2, 0.5], [0.5, -0.2]], dtype=torch.float64)
    A = 0.5 * B - 0.5 * torch.eye(2, dtype=torch.float64)  # commutes with B
    return [
        gbm(calculus="ito"),
        gbm(calculus="stratonovich"),
        cubic(calculus="ito"),
        cubic(calculus="stratonovich"),
        linear_system(A, B, calculus="ito"),
        linear_system(A, B, calculus="stratonovich"),
        ornstein_uhlenbeck(),
        additive_linear(),
    ]

r"""Measurements: fitted orders of convergence and long-time statistics, with their uncertainty.

**Orders** (:func:`strong_order`, :func:`weak_order`). Every solve of a fit runs on one Brownian
path per sample (:func:`~sdekit.testing.brownian_path`), so the errors at different step sizes
differ by the scheme's discretisation only, not by new noise. The target is the exact solution on
that path (``exact(y0, path, t0, t1)``, or the problem's own ``exact``), else a fine reference solve
on the same path. The fitted order is the least-squares slope of ``log(error)`` against
``log(h)``; its uncertainty is a bootstrap over paths (the paths are resampled together for all
step sizes, so the interval is that of the slope, not of each error). Strong error: root mean
square over paths and components, ``e(h) = (E|Y_h − Y|²)^{1/2}``. Weak error:
``|E φ(Y_h) − E φ(Y)|`` (root mean square over components), estimated as the mean of
``φ(Y_h) − φ(Y)`` over paths when ``Y`` is known pathwise (a control variate: the noise of
``E φ(Y)`` itself cancels), or against a given ``expectation``.

**Stationary statistics** (:func:`stationary_check`). Samples drawn from a problem's stationary law
and solved to a horizon must keep its moments. Each moment passes iff its relative error lies in
``[b_low − z·SE, b_high + z·SE]``: ``SE`` is the computed standard error of the sample moment,
``[b_low, b_high]`` the stated systematic error the configuration is known to carry (measure it
once with a large run and write it down with its source; for adaptive SDE solves it is the
inherent effect of choosing steps with noise not yet applied, ``O(tol)``; ``±s`` when only a
bound is known). The check also sums the accepted Brownian
increments: a source that keeps one path gives ``W(T) − W(0) ~ N(0, T)`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from sdekit.brownian import BrownianBridge, BrownianSource, GaussianIncrements
from sdekit.checks import positive_float, positive_int
from sdekit.errors import InputTypeError, InputValueError
from sdekit.problems import as_problem
from sdekit.solve import _one_path_bridge, solve
from sdekit.solvers import resolve_solver

from .paths import RecordingSource, brownian_path

DEFAULT_TOLERANCE = 0.15
"""Allowance of an order check for pre-asymptotic curvature of the error curve, in units of the
order: sdekit's schemes fit within 0.1 of their orders on the built-in problems over ``h`` from
1/8 to 1/256 (Euler–Maruyama 0.49–0.57, order-one schemes 0.92–1.10), while a scheme that loses a
half order is 0.5 off."""
MIN_PATHS = 20  # below this a bootstrap interval of a fitted order means nothing


# --------------------------------------------------------------------------- fits


@dataclass(frozen=True)
class OrderFit:
    """A fitted order of convergence.

    Attributes:
        kind: ``"strong"``, ``"weak"`` or ``"classical"`` (an ODE).
        slope: least-squares slope of ``log(error)`` against ``log(h)``.
        ci: bootstrap confidence interval of the slope over paths (``(slope, slope)`` for an ODE).
        stderr: bootstrap standard error of the slope (0 for an ODE).
        step_sizes, errors: the measured error at each step size.
        error_se: standard error of each error (its standard deviation over the bootstrap
            resamples of the paths).
        residual: largest distance of a ``log(error)`` from the fitted line: curvature, i.e.
            how far from asymptotic the step sizes are.
        n_paths: number of paths (samples) per solve.
    """

    kind: str
    slope: float
    ci: tuple[float, float]
    stderr: float
    step_sizes: tuple[float, ...]
    errors: tuple[float, ...]
    error_se: tuple[float, ...]
    residual: float
    n_paths: int
    confidence: float = 0.95

    def failure(
        self, order: float, *, tolerance: float = DEFAULT_TOLERANCE, at_least: bool = False
    ) -> str | None:
        """``None`` if the fit agrees with ``order``, else a message saying by how much it misses.

        Agreement: the confidence interval reaches ``[order − tolerance, order + tolerance]``
        (only its lower end with ``at_least``: schemes may converge faster on special problems).
        A fit whose interval is wider than ``2·tolerance`` on either side cannot decide and fails
        too, asking for more paths: narrower, a scheme half an order short of ``order`` (for the
        default tolerance) always fails. With ``at_least``, an interval wholly at or above
        ``order − tolerance`` decides however wide it is (a few paths that blow up at the
        largest step widen it upwards only).
        """
        positive_float(tolerance, "tolerance")
        low, high = self.ci
        half_width = (high - low) / 2
        if not math.isfinite(self.slope):
            return f"{self.kind} order could not be fitted: errors {self._errors()}"
        if at_least and low >= order - tolerance:
            return None
        if half_width > 2 * tolerance:
            return (
                f"{self.kind} order {self.slope:.3f} is too uncertain to check against {order:g}: "
                f"{self.confidence:.0%} interval [{low:.3f}, {high:.3f}] wider than "
                f"±{2 * tolerance:g}; use more paths (now {self.n_paths})"
            )
        if high < order - tolerance:
            return (
                f"{self.kind} order {self.slope:.3f} ({self.confidence:.0%} interval [{low:.3f}, "
                f"{high:.3f}]), declared {order:g}: {order - self.slope:.3f} too low (allowed "
                f"{tolerance:g} below); errors {self._errors()}"
            )
        if not at_least and low > order + tolerance:
            return (
                f"{self.kind} order {self.slope:.3f} ({self.confidence:.0%} interval [{low:.3f}, "
                f"{high:.3f}]), declared {order:g}: {self.slope - order:.3f} too high (allowed "
                f"{tolerance:g} above); errors {self._errors()}"
            )
        return None

    def _errors(self) -> str:
        return ", ".join(
            f"h={h:.3g}: {e:.3g}" for h, e in zip(self.step_sizes, self.errors, strict=True)
        )

    def __str__(self) -> str:
        low, high = self.ci
        return (
            f"{self.kind} order {self.slope:.3f} [{low:.3f}, {high:.3f}] over {self.n_paths} "
            f"paths; {self._errors()}"
        )


def _slopes(log_h: torch.Tensor, log_e: torch.Tensor) -> torch.Tensor:
    """Least-squares slopes of the rows of ``log_e`` (``(..., K)``) against ``log_h`` (``(K,)``)."""
    x = log_h - log_h.mean()
    return ((log_e - log_e.mean(-1, keepdim=True)) * x).sum(-1) / (x * x).sum()


def fit_order(
    step_sizes: Sequence[float],
    per_path: torch.Tensor,
    *,
    kind: str,
    finish: Callable[[torch.Tensor], torch.Tensor],
    confidence: float = 0.95,
    bootstrap: int = 400,
    seed: int = 0,
    deterministic: bool = False,
) -> OrderFit:
    """Fit an order from per-path statistics ``(n_paths, K, ...)``, ``K`` the step sizes.

    The errors are ``finish(mean over paths)`` (``finish`` maps ``(..., K, ...)`` to
    ``(..., K)``); the bootstrap recomputes them from ``bootstrap`` resamplings of the paths.
    """
    steps = torch.tensor(list(step_sizes), dtype=torch.float64)
    data = per_path.to(torch.float64)
    n = data.shape[0]
    errors = finish(data.mean(0))
    log_h = steps.log()
    tiny = torch.finfo(torch.float64).tiny
    log_e = errors.clamp_min(tiny).log()
    slope = float(_slopes(log_h, log_e))
    fitted = log_e.mean() + slope * (log_h - log_h.mean())
    residual = float((log_e - fitted).abs().max())
    if deterministic or n < 2:
        ci, stderr, error_se = (slope, slope), 0.0, torch.zeros_like(errors)
    else:
        gen = torch.Generator().manual_seed(seed)
        flat = data.reshape(n, -1)
        boot = []
        for chunk in range(0, bootstrap, 50):  # resampling counts, 50 resamples at a time
            size = min(50, bootstrap - chunk)
            idx = torch.randint(n, (size, n), generator=gen)
            counts = torch.zeros(size, n, dtype=torch.float64).scatter_add_(
                1, idx, torch.ones(size, n, dtype=torch.float64)
            )
            boot.append(finish((counts @ flat / n).reshape(size, *data.shape[1:])))
        boot = torch.cat(boot)
        slopes = _slopes(log_h, boot.clamp_min(tiny).log())
        alpha = (1 - confidence) / 2
        q = torch.quantile(slopes, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
        ci, stderr = (float(q[0]), float(q[1])), float(slopes.std())
        error_se = boot.std(0)
    return OrderFit(
        kind=kind,
        slope=slope,
        ci=ci,
        stderr=stderr,
        step_sizes=tuple(float(h) for h in steps),
        errors=tuple(float(e) for e in errors),
        error_se=tuple(float(s) for s in error_se),
        residual=residual,
        n_paths=n,
        confidence=confidence,
    )


def _root(mean_square: torch.Tensor) -> torch.Tensor:
    """Mean squared errors over paths ``(..., K)`` → root mean square errors."""
    return mean_square.sqrt()


def _bias(mean_difference: torch.Tensor) -> torch.Tensor:
    """Mean differences ``(..., K, C)`` → their root mean square over components, ``(..., K)``."""
    return mean_difference.square().mean(-1).sqrt()


# --------------------------------------------------------------------------- solving on one path


@dataclass
class _Setup:
    problem: object
    solver: object
    y0: torch.Tensor
    t0: float
    t1: float
    path: object
    exact: Callable | None


def _setup(solver, problem, y0, t0, t1, step_sizes, exact, n_paths, seed, path) -> _Setup:
    if exact is None:
        exact = getattr(problem, "exact", None)
    if y0 is None:
        if not hasattr(problem, "initial"):
            raise InputValueError("y0=None needs a problem from sdekit.testing (it has .initial)")
        y0 = problem.initial(1)
    problem = as_problem(problem)
    if not isinstance(y0, torch.Tensor) or y0.dim() < 1:
        raise InputTypeError("y0 must be a tensor of shape (batch, *event_shape)")
    steps = list(step_sizes)
    if len(steps) < 2 or len(set(steps)) < 2:
        raise InputValueError(f"step_sizes: give at least two different step sizes, got {steps}")
    for h in steps:
        positive_float(h, "step size")
    n_paths = positive_int(n_paths, "n_paths")
    if problem.noise is not None and n_paths < MIN_PATHS:
        raise InputValueError(
            f"n_paths={n_paths}: an order fitted over fewer than {MIN_PATHS} paths has no "
            f"usable confidence interval (its bootstrap needs paths to resample); use at least "
            f"{MIN_PATHS}, better hundreds"
        )
    solver = resolve_solver(solver, problem)
    if problem.noise is not None:
        y0 = y0[torch.arange(n_paths, device=y0.device) % y0.shape[0]]
    if problem.noise is not None and path is None:
        path = brownian_path(
            problem.noise_shape(y0),
            t0,
            t1,
            seed=seed,
            dtype=y0.dtype,
            device=y0.device,
            dt=min(steps),
        )
    return _Setup(problem, solver, y0, float(t0), float(t1), path, exact)


def _target(setup: _Setup, reference_solver, reference_dt, steps) -> torch.Tensor:
    if setup.exact is not None:
        return setup.exact(setup.y0, setup.path, setup.t0, setup.t1)
    reference = resolve_solver(reference_solver or setup.solver, setup.problem)
    dt = reference_dt if reference_dt is not None else min(steps) / 16
    return _solve(setup, reference, dt)


def _solve(setup: _Setup, solver, dt: float) -> torch.Tensor:
    return solve(
        setup.problem, setup.y0, setup.t0, setup.t1, solver=solver, dt=dt, brownian=setup.path
    ).ys[-1]


def strong_order(
    solver,
    problem,
    y0: torch.Tensor | None,
    t1: float,
    step_sizes: Sequence[float],
    *,
    exact: Callable | None = None,
    n_paths: int = 1000,
    seed: int = 0,
    t0: float = 0.0,
    reference_solver=None,
    reference_dt: float | None = None,
    confidence: float = 0.95,
    path=None,
) -> OrderFit:
    r"""Fitted strong order of ``solver`` on ``problem`` over ``[t0, t1]``.

    Args:
        solver: a solver name or instance.
        problem: an :class:`sdekit.SDE` (or an ODE: then the classical order), e.g. one of the
            :mod:`sdekit.testing.problems`, whose ``exact`` is used when ``exact`` is not given.
        y0: initial states ``(b, *event)``; row ``i % b`` starts path ``i``. ``None``: the
            problem's own ``y0``.
        t1: end time; ``t0`` (keyword) the start.
        step_sizes: fixed step sizes, e.g. ``[2**-k for k in range(3, 8)]``.
        exact: ``exact(y0, path, t0, t1)``, the exact solution on the shared path. Without it (and
            without ``problem.exact``) the target is a solve with ``reference_solver`` (default:
            ``solver`` itself, which measures self-convergence: the order, but not whether the
            scheme converges to the right solution) at ``reference_dt`` (default
            ``min(step_sizes)/16``) on the same path.
        n_paths: samples per solve (ignored for an ODE: ``y0``'s rows are used).
        seed: of the shared path and of the bootstrap.
        confidence: level of the bootstrap interval ``fit.ci``.
        path: the shared Brownian path (default: :func:`~sdekit.testing.brownian_path` of the
            problem's increments over ``n_paths`` samples, seeded with ``seed``); pass one to
            share an expensive ``exact`` or reference between fits.

    Returns an :class:`OrderFit`; ``fit.slope`` is the order, ``fit.failure(p)`` a message when it
    does not agree with ``p``.
    """
    setup = _setup(solver, problem, y0, t0, t1, step_sizes, exact, n_paths, seed, path)
    target = _target(setup, reference_solver, reference_dt, step_sizes)
    per_path = []
    for h in step_sizes:
        diff = (_solve(setup, setup.solver, h) - target).to(torch.float64)
        per_path.append(diff.reshape(diff.shape[0], -1).square().mean(1))
    stats = torch.stack(per_path, dim=1)  # (n, K): mean squared error of each path
    deterministic = setup.problem.noise is None
    return fit_order(
        step_sizes,
        stats,
        kind="classical" if deterministic else "strong",
        finish=_root,
        confidence=confidence,
        seed=seed,
        deterministic=deterministic,
    )


def weak_order(
    solver,
    problem,
    y0: torch.Tensor | None,
    t1: float,
    step_sizes: Sequence[float],
    *,
    phi: Callable[[torch.Tensor], torch.Tensor] | None = None,
    exact: Callable | None = None,
    expectation: float | torch.Tensor | None = None,
    n_paths: int = 20000,
    seed: int = 0,
    t0: float = 0.0,
    reference_solver=None,
    reference_dt: float | None = None,
    confidence: float = 0.95,
    path=None,
) -> OrderFit:
    r"""Fitted weak order of ``solver``: how fast ``E φ(Y_h)`` approaches ``E φ(Y)``.

    Arguments as for :func:`strong_order`, and:

    Args:
        phi: the test function, ``(n, *event) -> (n, ...)``; default the identity (the mean).
        expectation: ``E φ(Y(t1))`` when it is known in closed form (a float or a tensor shaped
            like one sample's ``φ``); otherwise the pathwise ``exact`` solution (or a reference
            solve) is the control variate.

    Weak errors are small: use step sizes where the bias stands well above its standard error
    (``fit.error_se``), typically coarse ones (``h`` from 1/2 to 1/16) and many paths.
    """
    phi = _per_path(phi or (lambda y: y))
    setup = _setup(solver, problem, y0, t0, t1, step_sizes, exact, n_paths, seed, path)
    if expectation is None:
        reference = phi(_target(setup, reference_solver, reference_dt, step_sizes))
    else:
        reference = torch.as_tensor(expectation, dtype=setup.y0.dtype, device=setup.y0.device)
    per_path = []
    for h in step_sizes:
        diff = (phi(_solve(setup, setup.solver, h)) - reference).to(torch.float64)
        per_path.append(diff.reshape(diff.shape[0], -1))
    stats = torch.stack(per_path, dim=1)  # (n, K, C): φ differences of each path
    return fit_order(step_sizes, stats, kind="weak", finish=_bias, confidence=confidence, seed=seed)


def _per_path(phi: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """``phi`` checked to keep the paths' dimension: its values are averaged over paths here."""

    def checked(y: torch.Tensor) -> torch.Tensor:
        out = phi(y)
        if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != y.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputValueError(
                f"phi returned {shape} for states of shape {tuple(y.shape)}: it must keep the "
                f"paths' dimension, (n, *event) -> (n, ...), e.g. lambda y: y.sum(1) rather than "
                f"y.sum(); the expectation over paths is taken here"
            )
        return out

    return checked


# --------------------------------------------------------------------------- stationary statistics


@dataclass(frozen=True)
class MomentCheck:
    """One moment ``E[Y^power]``: relative error, its standard error and the allowed band.

    Passes iff ``bias[0] − z·se ≤ error ≤ bias[1] + z·se``: ``bias`` is the stated systematic
    error of the configuration (measured once with a large run), ``z·se`` the sampling error.
    """

    power: int
    exact: float
    estimate: float
    error: float
    se: float
    bias: tuple[float, float]
    z: float

    @property
    def band(self) -> tuple[float, float]:
        return self.bias[0] - self.z * self.se, self.bias[1] + self.z * self.se

    @property
    def passed(self) -> bool:
        low, high = self.band
        return low <= self.error <= high

    def __str__(self) -> str:
        low, high = self.band
        return (
            f"E[Y^{self.power}] {self.estimate:.4g} vs {self.exact:.4g}: {self.error:+.2%} "
            f"(SE {self.se:.2%}); allowed [{low:+.2%}, {high:+.2%}] = systematic "
            f"[{self.bias[0]:+.2%}, {self.bias[1]:+.2%}] ± {self.z:g} SE "
            f"{'ok' if self.passed else 'FAIL'}"
        )


@dataclass(frozen=True)
class StationaryCheck:
    """The outcome of :func:`stationary_check`."""

    moments: tuple[MomentCheck, ...]
    w_ratio: float  #: Var(W(T) − W(0)) / T from the accepted increments
    w_se: float  #: its standard error, sqrt(2/(n − 1))
    z: float
    rejection_rate: float
    y: torch.Tensor = field(repr=False)

    @property
    def path_kept(self) -> bool:
        """Whether the accepted increments add up to a Brownian endpoint (variance ``T``)."""
        return abs(self.w_ratio - 1) <= self.z * self.w_se

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.moments) and self.path_kept

    def failure(self) -> str | None:
        if self.passed:
            return None
        return str(self)

    def __str__(self) -> str:
        lines = [str(m) for m in self.moments]
        lines.append(
            f"Var(W_T)/T {self.w_ratio:.4f} (SE {self.w_se:.4f}) "
            f"{'ok' if self.path_kept else 'FAIL: the accepted increments are not one path'}"
        )
        lines.append(f"rejection rate {self.rejection_rate:.2f}")
        return "\n".join(lines)


def _source(brownian, shape, dtype, device, generator, levy_area, bridge) -> BrownianSource:
    kwargs = dict(dtype=dtype, device=device, generator=generator, levy_area=levy_area)
    if brownian is None or brownian == "bridge":
        return bridge(shape, **kwargs)
    if brownian == "redraw":
        return GaussianIncrements(shape, **kwargs)
    if isinstance(brownian, BrownianSource):
        return brownian
    if callable(brownian):
        return brownian(shape, **kwargs)
    raise InputValueError(
        f"brownian={brownian!r}: use None/'bridge', 'redraw', a BrownianSource or a factory "
        f"(shape, *, dtype, device, generator, levy_area) -> BrownianSource"
    )


def stationary_check(
    solver,
    problem,
    *,
    horizon: float,
    controller=None,
    dt: float | None = None,
    n_samples: int = 4000,
    seed: int = 0,
    brownian=None,
    powers: Sequence[int] = (2, 4),
    systematic: float | tuple[float, float] | dict = 0.0,
    z: float = 4.0,
    dtype: torch.dtype = torch.float64,
    max_steps: int | None = None,
) -> StationaryCheck:
    r"""Start ``n_samples`` from ``problem``'s stationary law, solve to ``horizon``, compare moments.

    Args:
        solver: a solver name or instance.
        problem: a :class:`~sdekit.testing.problems.StationarySDE` (``moment``,
            ``sample_stationary``), e.g. :func:`~sdekit.testing.problems.double_well`.
        horizon: the end time (start 0).
        controller, dt: as for :func:`sdekit.solve`; a per-sample controller keeps the samples
            independent (a shared one makes every sample's steps depend on the worst sample).
        brownian: ``None``/``"bridge"`` (:class:`~sdekit.brownian.BrownianBridge`, or
            :class:`~sdekit.brownian.SharedTimeBridge` for a shared-time adaptive solve, as
            :func:`sdekit.solve` chooses), ``"redraw"``,
            a :class:`~sdekit.brownian.BrownianSource`, or a factory
            ``(shape, *, dtype, device, generator, levy_area) -> BrownianSource`` (a source under
            test). It is wrapped in a :class:`~sdekit.testing.RecordingSource`.
        powers: the moments ``E[Y^p]`` to compare (their exact values must not vanish).
        systematic: the stated relative bias of the configuration, allowed on top of ``z``
            standard errors: ``s`` for ``[−s, s]``, or a measured interval ``(low, high)``; one for
            every power, or a dict by power.
        z: standard errors allowed (two-sided).
        seed: the initial states use ``seed``, the Brownian source ``seed + 1``.
    """
    n_samples = positive_int(n_samples, "n_samples")
    y0 = problem.sample_stationary(n_samples, seed, dtype=dtype)
    solver = resolve_solver(solver, problem)
    generator = torch.Generator().manual_seed(seed + 1)
    bridge = BrownianBridge if controller is None else _one_path_bridge(controller)  # as solve()
    source = _source(
        brownian, tuple(y0.shape), dtype, y0.device, generator, solver.levy_area, bridge
    )
    recorder = RecordingSource(source, tuple(y0.shape))
    sol = solve(
        problem,
        y0,
        0.0,
        horizon,
        solver=solver,
        controller=controller,
        dt=dt,
        brownian=recorder,
        max_steps=max_steps,
    )
    y = sol.ys[-1].to(torch.float64).flatten()
    checks = []
    for p in powers:
        exact = problem.moment(p)
        if abs(exact) < 1e-12:
            raise InputValueError(f"E[Y^{p}] = 0 under the stationary law: use even powers")
        values = y**p
        allowed = systematic.get(p, 0.0) if isinstance(systematic, dict) else systematic
        bias = (-allowed, allowed) if isinstance(allowed, int | float) else tuple(allowed)
        checks.append(
            MomentCheck(
                power=p,
                exact=exact,
                estimate=float(values.mean()),
                error=float(values.mean()) / exact - 1,
                se=float(values.std()) / math.sqrt(len(values)) / abs(exact),
                bias=(float(bias[0]), float(bias[1])),
                z=z,
            )
        )
    steps = torch.as_tensor(sol.stats["steps"]).sum().item()
    rejected = torch.as_tensor(sol.stats["rejected"]).sum().item()
    w = recorder.total.flatten()
    return StationaryCheck(
        moments=tuple(checks),
        w_ratio=float(w.var()) / horizon,
        w_se=math.sqrt(2 / (len(w) - 1)),
        z=z,
        rejection_rate=rejected / max(steps, 1),
        y=y,
    )


# --------------------------------------------------------------------------- statistics helpers


def ks_normal(z: torch.Tensor) -> tuple[float, float]:
    """Kolmogorov–Smirnov test of ``z`` against ``N(0, 1)``: ``(statistic D, p-value)``.

    The p-value is the asymptotic Kolmogorov distribution with Stephens' small-sample
    correction, ``P(K > (√n + 0.12 + 0.11/√n) D)``; accurate for ``n ≥ 35``.
    """
    x = z.detach().to(torch.float64).flatten().sort().values
    n = x.numel()
    cdf = torch.special.ndtr(x)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    d = float(torch.maximum(k / n - cdf, cdf - (k - 1) / n).max())
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 0.2:
        return d, 1.0
    p = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    return d, min(max(p, 0.0), 1.0)

r"""Batteries: a scheme or a controller through the standard properties, in one call.

:func:`solver_properties` runs a solver through the properties below on the exact problems it
accepts (:func:`~sdekit.testing.problems.default_problems`, sharpest first, or ``problems=``) and
returns a :class:`~sdekit.testing.Report`; :func:`assert_solver_properties` raises an
``AssertionError`` naming each failed property and by how much it missed. ``only=``/``skip=``
select properties, so a test can parametrise over :data:`SOLVER_PROPERTIES`.

==================  ==========================================================================
property            what must hold
==================  ==========================================================================
tableau             a solver with a ``tableau`` satisfies its order conditions
strong_order        the fitted strong order (classical order for an ODE solver) is at least the
                    declared one (a scheme that declares none fails), within
                    :data:`~sdekit.testing.measure.DEFAULT_TOLERANCE` and the bootstrap
                    interval, on the two sharpest problems it accepts, the first of each other
                    noise type it accepts and a time-dependent one
weak_order          the same for the weak order, when declared (``weak_order=`` or an attribute),
                    from the first two moments on an additive-noise problem (only: on
                    multiplicative noise the battery's step sizes are pre-asymptotic for
                    correct schemes; a scheme with a strong order that reads ``dW`` in the
                    wrong calculus fails ``strong_order`` there)
determinism         the same seed gives bitwise the same solution; another seed another one
batch_invariance    with one generator per sample, a sample's solution does not depend on the
                    rest of the batch or its order (fixed steps, and per-sample adaptive steps
                    with the bridge when the solver has an error estimate)
composition         solving to ``t_m`` and on from there is the solve to ``t1`` (same path)
time_reversal       a backward solve is the forward solve of the time-reversed problem on the
                    mirrored path
dtype_device        the solution has ``y0``'s dtype and device; float32 agrees with float64 on
                    the same path to ``1e-4`` relative (float32's ``1.2e-7`` times the steps)
gradients           gradients reach ``y0`` and the coefficients' parameters, and agree with a
                    central difference of the solve on the same path to ``1e-5`` relative
error_estimate      the embedded estimate of one step scales as ``h^error_order`` (or faster)
stops               adaptive steps never step past a save time or ``t1``, and land on each
==================  ==========================================================================

:func:`controller_properties` does the same for a step-size controller: accept iff the scaled
error is at most one, the next step non-increasing in the error (among accepted and among rejected
attempts), the step factor within its bounds and a rejected step shrunk to a positive one (also
after rejections in a row), every step within ``dt_max``, a non-finite error a rejection that
shrinks the step, decisions of the declared shape, and steps that land on save times; through
``init_host``/``adapt_host`` too where the controller decides on the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

import sdekit as sk
from sdekit.brownian import GaussianIncrements
from sdekit.errors import InputError, InputTypeError, InputValueError
from sdekit.solvers import AbstractSolver, resolve_solver

from . import problems as P
from .measure import DEFAULT_TOLERANCE, fit_order, strong_order, weak_order
from .paths import brownian_path, mirrored
from .report import PropertyResult, Report, run_property, select, skipped
from .tableaux import check_tableau

SOLVER_PROPERTIES = (
    "tableau",
    "strong_order",
    "weak_order",
    "determinism",
    "batch_invariance",
    "composition",
    "time_reversal",
    "dtype_device",
    "gradients",
    "error_estimate",
    "stops",
)
CONTROLLER_PROPERTIES = (
    "accept_iff_error_at_most_one",
    "monotone_in_the_error",
    "factor_bounds",
    "non_finite_error",
    "decision_shape",
    "stops",
)

F64 = torch.float64
STRONG_STEPS = tuple(2.0**-k for k in range(3, 8))
ODE_STEPS = tuple(2.0**-k for k in range(3, 9))
ROUND_OFF = 1e-12  # an ODE error below it is not fitted (round-off over 256 steps: ~1e-14)


# --------------------------------------------------------------------------- helpers


def _accepted(solver, candidates) -> list:
    """The problems ``solver`` accepts (its ``check`` does not refuse them), in order."""
    out = []
    for problem in candidates:
        try:
            resolve_solver(solver, problem)
        except InputError:
            continue
        out.append(problem)
    return out


def _additive_linear_problems() -> list:
    """The time-dependent additive problem in each declaration a scheme may accept."""
    return [
        P.additive_linear(calculus=c, noise=n)
        for n in ("additive", "diagonal")
        for c in ("ito", "stratonovich")
    ]


def _name(solver) -> str:
    return solver if isinstance(solver, str) else getattr(solver, "name", type(solver).__name__)


def _max_relative(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().clamp_min(1e-300)
    return float((a.to(b.dtype) - b).abs().max() / scale)


class _StepLog:
    """A solve ``callback`` that keeps every attempted step, per sample: ``(t, h, accept)``."""

    def __init__(self, batch: int):
        self.batch, self.steps = batch, []

    def __call__(self, info: dict) -> None:
        def per_sample(x, dtype):
            return torch.as_tensor(x).detach().to("cpu", dtype).expand(self.batch).clone()

        t, h, accept = info["t"], info["h"], info["accept"]
        self.steps.append((per_sample(t, F64), per_sample(h, F64), per_sample(accept, torch.bool)))

    def landing_failure(self, t0: float, t1: float, saveat: list[float]) -> str | None:
        """Why the steps do not land on every save time and ``t1`` without passing one."""
        t, h, accept = (torch.stack(x) for x in zip(*self.steps, strict=True))
        direction = 1.0 if t1 > t0 else -1.0
        end = t + h
        for s in saveat:
            inside = (direction * (t - s) < 0) & (direction * (end - s) > 0)
            if inside.any():
                k, i = (int(x) for x in inside.nonzero()[0])
                return (
                    f"sample {i}, attempt {k}: the step [{float(t[k, i])!r}, {float(end[k, i])!r}] "
                    f"straddles the save time {s!r}"
                )
            for i in range(self.batch):
                if s != t1 and not bool(((t[:, i] == s) & (h[:, i] != 0)).any()):
                    return f"sample {i} never started a step exactly at the save time {s!r}"
        past = direction * (end - t1) > 0
        if past.any():
            k, i = (int(x) for x in past.nonzero()[0])
            return f"sample {i}, attempt {k}: the step ends at {float(end[k, i])!r}, past t1={t1}"
        last = torch.where(accept, direction * end, -math.inf).amax(0)
        if (last < direction * t1 - 1e-12 * max(1.0, abs(t1))).any():
            return f"accepted steps end at {last.tolist()}, short of t1={t1}"
        return None


def batch_invariance_gap(
    run: Callable[[list[int], list[torch.Generator]], torch.Tensor],
    batch: int,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> float:
    """How much a sample's result depends on the rest of its batch: the largest relative gap.

    ``run(rows, generators)`` computes the results of the samples ``rows`` (indices into a batch
    of ``batch``), sample ``rows[k]`` driven by ``generators[k]``, and returns them stacked in
    that order (a solve with ``generator=generators``, ``ss.sample`` likewise). The batch is
    compared with one sample alone, a pair and a permutation of all. A sampler or solver that
    keeps its samples independent gives 0 (or rounding, where batch-wide reductions change).
    """
    device = torch.device(device or "cpu")

    def generators(rows):
        return [torch.Generator(device=device).manual_seed(seed + 1000 + i) for i in rows]

    everything = list(range(batch))
    together = run(everything, generators(everything))
    permutation = torch.randperm(batch, generator=torch.Generator().manual_seed(seed)).tolist()
    gap = 0.0
    for rows in ([batch // 2], [batch - 1, 0], permutation):
        gap = max(gap, _max_relative(run(rows, generators(rows)), together[rows]))
    return gap


# --------------------------------------------------------------------------- solver properties


class _SolverBattery:
    def __init__(self, solver, problems, n_paths, seed, weak, tolerance, device):
        self.solver, self.n_paths, self.seed = solver, n_paths, seed
        self.weak, self.tolerance, self.device = weak, tolerance, device
        probe = resolve_solver(solver, P.smooth_ode()) if _is_ode_solver(solver) else None
        if probe is not None:
            self.problems = [P.smooth_ode()]
        else:
            self.problems = _accepted(solver, problems or P.default_problems())
        self.ode = probe is not None

    # each method returns None/a message on success, raises AssertionError on failure

    def tableau(self):
        tableau = getattr(resolve_solver(self.solver, self.problems[0]), "tableau", None)
        if tableau is None:
            return skipped("tableau", "the solver has no tableau")
        result = check_tableau(tableau)
        assert result.all_hold, "; ".join(
            f"{c.name} off by {c.residual:.3g}" for c in result.failed
        )
        return f"{len(result)} conditions hold (largest residual {result.max_residual:.1e})"

    def strong_order(self):
        solver = resolve_solver(self.solver, self.problems[0])
        declared = solver.order if self.ode else solver.strong_order
        assert declared is not None, (
            f"{_name(solver)} declares no {'order' if self.ode else 'strong_order'}: set the order "
            f"the scheme is meant to have, so that its convergence is checked (or leave the "
            f"property out with skip='strong_order')"
        )
        lines = []
        for problem in self.problems if self.ode else self._strong_problems():
            steps = ODE_STEPS if self.ode else STRONG_STEPS
            y0 = problem.initial(2 if self.ode else 1, device=self.device)
            fit = strong_order(
                self.solver,
                problem,
                y0,
                4.0 if self.ode else 1.0,
                steps,
                n_paths=self.n_paths,
                seed=self.seed,
            )
            if self.ode:
                # Deterministic: the local slope of the two smallest steps whose error beats
                # round-off, the most asymptotic estimate there is. A fit over three mixes in a
                # pre-asymptotic slope where the error constants are large (a member of Kutta's
                # order-4 family with c2 = 0.1875: local slopes 3.51, then 3.79; fitted 3.65).
                kept = [k for k, e in enumerate(fit.errors) if e > ROUND_OFF][-2:]
                fit = fit_order(
                    [steps[k] for k in kept],
                    torch.tensor([[fit.errors[k] ** 2 for k in kept]], dtype=F64),
                    kind="classical",
                    finish=torch.sqrt,
                    deterministic=True,
                )
            failure = fit.failure(declared, tolerance=self.tolerance, at_least=True)
            assert failure is None, f"on {problem.name}: {failure}"
            lines.append(f"{problem.name}: {fit.slope:.3f} [{fit.ci[0]:.3f}, {fit.ci[1]:.3f}]")
        return f"declared {declared:g}; " + ", ".join(lines)

    def _strong_problems(self) -> list:
        """The two sharpest problems, then the first of each other noise type the solver
        accepts (a scheme may be wrong on one type only: a Milstein correction right for diagonal
        noise and wrong for scalar noise), and a time-dependent problem (the defaults are
        autonomous before it, so a scheme that ignores ``t`` would pass them)."""
        chosen = list(self.problems[:2])
        for problem in self.problems[2:]:
            if problem.noise not in {p.noise for p in chosen}:
                chosen.append(problem)
        if not any(getattr(p, "time_dependent", False) for p in chosen):
            chosen += _accepted(self.solver, _additive_linear_problems())[:1]
        return chosen

    def weak_order(self):
        if self.ode:
            return skipped("weak_order", "an ODE solver")
        solver = resolve_solver(self.solver, self.problems[0])
        declared = self.weak if self.weak is not None else getattr(solver, "weak_order", None)
        if declared is None:
            return skipped("weak_order", "no weak order declared (pass weak_order=)")
        # Additive noise: the control variate (the exact solution on each path) resolves the bias
        # of the first two moments to about 1e-7 with 10^4 paths, far below the errors at h >= 1/32.
        problems = _accepted(self.solver, _additive_linear_problems())
        if not problems:
            return skipped("weak_order", "the solver accepts no problem with additive noise")
        problem = problems[0]
        fit = weak_order(
            self.solver,
            problem,
            problem.initial(1, device=self.device),
            1.0,
            [2.0**-k for k in range(2, 6)],
            phi=lambda y: torch.cat([y, y * y], -1),
            n_paths=10_000,
            seed=self.seed,
        )
        failure = fit.failure(declared, tolerance=self.tolerance, at_least=True)
        assert failure is None, f"on {problem.name}, moments E[Y] and E[Y²]: {failure}"
        # Not on multiplicative noise: there h = 1/4 ... 1/32 is pre-asymptotic for correct
        # schemes (on gbm sosri shows 1.43 of its 2, euler_heun 0.83 of 1), so a check would
        # fail them; with a strong order declared, a wrong calculus shows in strong_order.
        return (
            f"declared {declared:g}; {problem.name}: {fit.slope:.3f} (checked on additive noise "
            f"only)"
        )

    def _solve(self, problem, y0, **kwargs):
        return sk.solve(problem, y0, 0.0, 1.0, solver=self.solver, **kwargs)

    def _initial(self, problem, batch=4, dtype=F64):
        y0 = problem.initial(batch, dtype=dtype, device=self.device)
        gen = torch.Generator().manual_seed(self.seed)
        noise = 1 + 0.1 * torch.rand(y0.shape, generator=gen, dtype=F64)
        return y0 * noise.to(y0)  # distinct rows, so that a mix-up of samples shows

    def determinism(self):
        problem = self.problems[0]
        y0 = self._initial(problem)
        runs = [dict(dt=0.1)]
        if self._adaptive(problem):
            runs.append(dict(controller=sk.PIController(rtol=5e-2, atol=5e-2, per_sample=True)))
        for options in runs:
            first = self._solve(problem, y0, generator=self.seed, **options).ys
            again = self._solve(problem, y0, generator=self.seed, **options).ys
            gen = torch.Generator(device=y0.device).manual_seed(self.seed)
            as_generator = self._solve(problem, y0, generator=gen, **options).ys
            assert torch.equal(first, again), f"two solves with seed {self.seed} differ ({options})"
            assert torch.equal(first, as_generator), "an int seed and its torch.Generator differ"
            if problem.noise is not None:
                other = self._solve(problem, y0, generator=self.seed + 1, **options).ys
                assert not torch.equal(first, other), "a different seed gives the same solution"
        return f"on {problem.name}, fixed{' and adaptive' if len(runs) > 1 else ''} steps"

    def _adaptive(self, problem) -> bool:
        return resolve_solver(self.solver, problem).error_order is not None

    def batch_invariance(self):
        problem = self.problems[0]
        if problem.noise is None:
            return skipped("batch_invariance", "an ODE: no randomness to keep per sample")
        y0 = self._initial(problem, 5)
        runs = [(dict(dt=0.1), 1e-12)]
        if self._adaptive(problem):
            # The bridge re-bases each sample's values at calls set by the batch's longest queue:
            # one path up to rounding, which a long solve may amplify (tests/test_testing_samplers).
            controller = sk.PIController(rtol=5e-2, atol=5e-2, per_sample=True)
            runs.append((dict(controller=controller, brownian="bridge"), 1e-9))
        worst = 0.0
        for options, tolerance in runs:

            def run(rows, generators, options=options):
                sol = self._solve(problem, y0[rows], generator=generators, **options)
                return sol.ys[-1]

            gap = batch_invariance_gap(run, len(y0), seed=self.seed, device=y0.device)
            worst = max(worst, gap)
            assert gap <= tolerance, (
                f"a sample's solution depends on the rest of the batch: solved alone or "
                f"permuted, it differs by {gap:.3g} (relative), {options}"
            )
        return f"subsets and a permutation agree to {worst:.1e}"

    def composition(self):
        problem = self.problems[0]
        y0 = self._initial(problem)
        path = None
        if problem.noise is not None:
            path = brownian_path(problem.noise_shape(y0), 0.0, 1.0, seed=self.seed)
        whole = sk.solve(
            problem, y0, 0.0, 1.0, solver=self.solver, dt=0.125, saveat=[0.5, 1.0], brownian=path
        ).ys
        first = sk.solve(problem, y0, 0.0, 0.5, solver=self.solver, dt=0.125, brownian=path).ys[-1]
        second = sk.solve(problem, first, 0.5, 1.0, solver=self.solver, dt=0.125, brownian=path).ys[
            -1
        ]
        gaps = _max_relative(first, whole[0]), _max_relative(second, whole[1])
        assert max(gaps) <= 1e-12, (
            f"solving [0, 0.5] then [0.5, 1] differs from one solve by {gaps[0]:.3g} at 0.5 and "
            f"{gaps[1]:.3g} at 1 (relative)"
        )
        return f"agree to {max(gaps):.1e}"

    def time_reversal(self):
        problem = self.problems[0]
        y0 = self._initial(problem)
        path = (
            brownian_path(problem.noise_shape(y0), 0.2, 1.4, seed=self.seed)
            if (problem.noise is not None)
            else None
        )
        back = sk.solve(problem, y0, 1.4, 0.2, solver=self.solver, dt=0.05, brownian=path)
        forward = sk.solve(
            P.time_reversed(problem),
            y0,
            -1.4,
            -0.2,
            solver=self.solver,
            dt=0.05,
            brownian=mirrored(path) if path is not None else None,
        )
        gap = _max_relative(back.ys[-1], forward.ys[-1])
        assert gap <= 1e-12, (
            f"the backward solve differs from the forward solve of the reversed problem on the "
            f"mirrored path by {gap:.3g} (relative)"
        )
        return f"agree to {gap:.1e}"

    def dtype_device(self):
        problem = self.problems[0]
        y64 = self._initial(problem)
        y32 = y64.float()
        path = None
        if problem.noise is not None:
            path = brownian_path(problem.noise_shape(y64), 0.0, 1.0, seed=self.seed)

        def path32(ta, tb, return_U=False, return_A=False):
            out = path(ta, tb, return_U=return_U)
            return tuple(x.float() for x in out) if return_U else out.float()

        for y0, bm in ((y32, path32 if path else None), (y64, path)):
            # dt = 2^-7 keeps every step time exact in float32, so both solves query one path
            sol = sk.solve(problem, y0, 0.0, 1.0, solver=self.solver, dt=2.0**-7, brownian=bm)
            for what, got in (("ys", sol.ys), ("ts", sol.ts)):
                assert got.dtype == y0.dtype, f"{what} is {got.dtype} for y0 of {y0.dtype}"
                assert got.device == y0.device, f"{what} is on {got.device}, y0 on {y0.device}"
            if y0.dtype == torch.float32:
                low = sol.ys[-1]
            else:
                high = sol.ys[-1]
        gap = _max_relative(low, high)
        assert gap <= 1e-4, f"float32 and float64 solves on one path differ by {gap:.3g} (relative)"
        return f"float32 agrees with float64 to {gap:.1e}"

    def gradients(self):
        problem = self.problems[0]
        y0 = self._initial(problem, 2).requires_grad_(True)
        scale = torch.tensor([1.0, 1.0], dtype=F64, requires_grad=True)
        path = None
        if problem.noise is not None:
            path = brownian_path(problem.noise_shape(y0), 0.0, 1.0, seed=self.seed)

        def final(y0, scale):
            if problem.noise is None:
                scaled = sk.ODE(lambda t, y: scale[0] * problem.f(t, y))
            else:
                scaled = sk.SDE(
                    lambda t, y: scale[0] * problem.f(t, y),
                    lambda t, y: scale[1] * problem.g(t, y),
                    noise=problem.noise,
                    calculus=problem.calculus,
                    noise_dim=problem.noise_dim,
                )
            return sk.solve(scaled, y0, 0.0, 1.0, solver=self.solver, dt=0.125, brownian=path).ys

        gen = torch.Generator().manual_seed(self.seed)
        weights = torch.randn(final(y0, scale).shape, generator=gen, dtype=F64)
        loss = (final(y0, scale) * weights).sum()
        grads = torch.autograd.grad(loss, (y0, scale), allow_unused=True)
        names = ("y0", "the drift's scale", "the diffusion's scale")[: 2 if path is None else 3]
        flat = [grads[0], grads[1][0]] + ([grads[1][1]] if path is not None else [])
        for name, g in zip(names, flat, strict=True):
            assert g is not None and torch.isfinite(g).all(), f"no finite gradient reaches {name}"
            assert bool((g != 0).any()), f"the gradient with respect to {name} is zero"
        direction = [torch.randn(x.shape, generator=gen, dtype=F64) for x in (y0, scale)]
        if path is None:
            direction[1][1] = 0.0
        analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction, strict=True))
        eps = 1e-6
        with torch.no_grad():
            plus = final(y0 + eps * direction[0], scale + eps * direction[1])
            minus = final(y0 - eps * direction[0], scale - eps * direction[1])
        numeric = float(((plus - minus) * weights).sum()) / (2 * eps)
        gap = abs(analytic - numeric) / max(abs(numeric), 1e-12)
        assert gap <= 1e-5, (
            f"directional derivative {analytic:.8g} by autograd, {numeric:.8g} by central "
            f"difference: off by {gap:.3g} (relative)"
        )
        return f"autograd matches a central difference to {gap:.1e}"

    def error_estimate(self):
        problem = self.problems[0]
        solver = resolve_solver(self.solver, problem)
        if solver.error_order is None:
            return skipped("error_estimate", "the solver has no embedded error estimate")
        n = 1 if self.ode else 4000
        y0 = self._initial(problem, n)
        steps = [2.0**-k for k in range(3, 13)] if self.ode else [2.0**-k for k in range(5, 12)]
        t = torch.full((), 0.3, dtype=F64, device=y0.device)
        gen = torch.Generator(device=y0.device).manual_seed(self.seed)
        source = None
        if problem.noise is not None:
            source = GaussianIncrements(
                problem.noise_shape(y0),
                dtype=F64,
                device=y0.device,
                generator=gen,
                levy_area=solver.levy_area,
            )
        per_path = []
        for h in steps:
            inc = source.increment(t, h) if source is not None else None
            _, error, _ = solver.step(problem, t, y0, h, inc, solver.init(problem, t, y0))
            per_path.append(error.to(F64).reshape(n, -1).square().mean(1))
        if self.ode:  # the five smallest steps whose estimate stands above round-off (1e-10)
            kept = [k for k, e in enumerate(per_path) if float(e.max()) > 1e-20][-5:]
            steps, per_path = [steps[k] for k in kept], [per_path[k] for k in kept]
        fit = fit_order(
            steps,
            torch.stack(per_path, 1),
            kind="error estimate",
            finish=torch.sqrt,
            seed=self.seed,
            deterministic=self.ode,
        )
        # At least the declared order: a faster estimate only makes the controller cautious.
        failure = fit.failure(solver.error_order, tolerance=self.tolerance + 0.1, at_least=True)
        assert failure is None, f"on {problem.name}: {failure}"
        return f"declared {solver.error_order:g}; measured {fit.slope:.3f}"

    def stops(self):
        problem = self.problems[0]
        if not self._adaptive(problem):
            return skipped("stops", "the solver has no error estimate (fixed steps only)")
        saveat = [0.13, 0.5, 0.77, 1.0]
        for per_sample in (False, True):
            log = _StepLog(3)
            controller = sk.PIController(rtol=1e-2, atol=1e-2, per_sample=per_sample)
            sol = sk.solve(
                problem,
                self._initial(problem, 3),
                0.0,
                1.0,
                solver=self.solver,
                controller=controller,
                saveat=saveat,
                generator=self.seed,
                max_steps=20_000,
                callback=log,
            )
            failure = log.landing_failure(0.0, 1.0, saveat)
            assert failure is None, f"per_sample={per_sample}: {failure}"
            assert sol.ts.tolist() == saveat, f"ts {sol.ts.tolist()} != saveat {saveat}"
        return f"on {problem.name}, shared and per-sample steps"


def _check_solver(solver) -> None:
    """Refuse what cannot be a solver to test, saying what to pass instead."""
    if isinstance(solver, type):
        raise InputTypeError(
            f"pass a solver instance, {solver.__name__}(), not the class {solver.__name__}"
        )
    if isinstance(solver, AbstractSolver) and not solver.noise and solver.strong_order is not None:
        raise InputValueError(
            f"{_name(solver)} declares strong_order={solver.strong_order} but no noise types, "
            f"which makes it an ODE solver: declare the noise it supports, e.g. "
            f"noise = frozenset({{'diagonal', 'scalar'}})"
        )


def _is_ode_solver(solver) -> bool:
    if isinstance(solver, str):
        return solver in sk.solvers.ODE_SOLVERS and solver not in sk.solvers.SDE_SOLVERS
    return isinstance(solver, AbstractSolver) and not solver.noise


def solver_properties(
    solver,
    *,
    only=None,
    skip=(),
    problems=None,
    n_paths: int = 500,
    seed: int = 0,
    weak_order: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    device: torch.device | str | None = None,
) -> Report:
    """Run ``solver`` through :data:`SOLVER_PROPERTIES` (module docstring) and report.

    Args:
        solver: a solver instance (or a name of a built-in one).
        only, skip: property names to run / to leave out.
        problems: exact problems to use instead of the defaults (each an
            :class:`~sdekit.testing.problems.ExactSDE`); those the solver refuses are left out.
        n_paths: paths of each strong order fit (the weak order is fitted over 10 000 paths,
            the error estimate over 4000: fixed, as their checks need them).
        seed: of every path and generator used.
        weak_order: the declared weak order (else the solver's ``weak_order`` attribute, if any).
        tolerance: allowance of the order checks (:data:`~sdekit.testing.measure.DEFAULT_TOLERANCE`).
        device: where the states live (default CPU).
    """
    _check_solver(solver)
    names = select(SOLVER_PROPERTIES, only, skip)
    battery = _SolverBattery(solver, problems, n_paths, seed, weak_order, tolerance, device)
    subject = f"solver {_name(solver)}"
    if not battery.problems:
        why = "no problem it accepts (pass problems=[...] with ExactSDE problems it solves)"
        return Report(subject, tuple(skipped(n, why) for n in names))
    return Report(subject, tuple(run_property(n, getattr(battery, n)) for n in names))


def assert_solver_properties(solver, **options) -> Report:
    """:func:`solver_properties`, raising an ``AssertionError`` that lists every failure."""
    return solver_properties(solver, **options).raise_if_failed()


# --------------------------------------------------------------------------- controllers


class _ControllerBattery:
    def __init__(self, controller, solver, batch, seed):
        self.controller = controller
        self.solver = resolve_solver(solver, P.smooth_ode())
        self.batch = batch
        self.gen = torch.Generator().manual_seed(seed)
        self.y = torch.randn(batch, 4, generator=self.gen, dtype=F64)
        self.y_next = self.y + 0.01 * torch.randn(batch, 4, generator=self.gen, dtype=F64)
        self.shape = torch.randn(batch, 4, generator=self.gen, dtype=F64).abs()
        # A shared-time solve decides through init_host/adapt_host where the controller declares
        # host decisions: both paths are checked, each decision on each.
        host = getattr(controller, "host_decisions", False) and not controller.per_sample
        self.paths = (False, True) if host else (False,)

    @staticmethod
    def _where(host: bool) -> str:
        return " (adapt_host)" if host else ""

    def _fresh(self, host: bool = False):
        if host:
            h, state = self.controller.init_host(self.solver, self.y, 0.0, 1.0, 0.1)
            return torch.tensor(float(h), dtype=F64), state
        return self.controller.init(self.solver, self.y, 0.0, 1.0, 0.1)

    def _decide(self, scale: float, h, state, host: bool):
        """One decision on an error of ``scale`` times the base: ``(accept, h_next, state)``."""
        error = scale * self.shape
        if host:
            accept, h_next, state = self.controller.adapt_host(
                self.y, self.y_next, error, float(h), state
            )
            return torch.tensor(bool(accept)), torch.tensor(float(h_next), dtype=F64), state
        return self.controller.adapt(self.y, self.y_next, error, h, state)

    def _attempt(self, scale: float, host: bool = False):
        h, state = self._fresh(host)
        accept, h_next, _ = self._decide(scale, h, state, host)
        return h, accept, h_next, state

    def accept_iff_error_at_most_one(self):
        error = getattr(self.controller, "error", None)
        for host in self.paths:
            if error is None:  # no scale to compare with: only the extremes
                for scale, want in ((1e-12, True), (1e12, False)):
                    accept = torch.as_tensor(self._attempt(scale, host)[1])
                    assert bool(accept.all() if want else ~accept.any()), (
                        f"error scale {scale:g}{self._where(host)}: accept {accept.tolist()}"
                    )
                continue
            for scale in torch.logspace(-4, 4, 41, dtype=F64).tolist():
                h, accept, _, state = self._attempt(scale, host)
                err = error(self.y, self.y_next, scale * self.shape, state)
                if not self.controller.per_sample:
                    err = err.max()
                assert torch.equal(accept, err <= 1), (
                    f"error scale {scale:.3g}{self._where(host)}: scaled errors {err.tolist()} "
                    f"but accept {accept.tolist()}"
                )
        if error is None:
            return (
                "the controller has no error(): only that errors 1e-12 times the base are "
                "accepted and 1e12 times rejected (define error() for the threshold itself)"
            )
        return "over errors from 1e-4 to 1e4 of the base"

    def monotone_in_the_error(self):
        scales = torch.logspace(-4, 4, 81, dtype=F64).tolist()
        for host in self.paths:
            rows = [self._attempt(s, host) for s in scales]
            accept = torch.stack([torch.as_tensor(r[1]).expand(self.batch) for r in rows])
            h_next = torch.stack([torch.as_tensor(r[2]).expand(self.batch) for r in rows])
            for i in range(self.batch):
                a = accept[:, i]
                if a.any() and (~a).any():
                    first_reject = int((~a).nonzero()[0])
                    assert not a[first_reject:].any(), (
                        f"sample {i}{self._where(host)}: accepted again at error scale "
                        f"{scales[first_reject + int(a[first_reject:].nonzero()[0])]:.3g} after "
                        f"rejecting at {scales[first_reject]:.3g}"
                    )
                for mask, what in ((a, "accepted"), (~a, "rejected")):
                    hs = h_next[mask, i]
                    rises = (hs[1:] > hs[:-1] * (1 + 1e-12)).nonzero()
                    assert not len(rises), (
                        f"sample {i}{self._where(host)}: among {what} attempts the next step "
                        f"grows from {float(hs[rises[0, 0]]):.4g} to "
                        f"{float(hs[rises[0, 0] + 1]):.4g} as the error grows"
                    )
        return "accept is a lower set of errors; the next step falls with the error"

    def factor_bounds(self):
        low = getattr(self.controller, "factor_min", None)
        high = getattr(self.controller, "factor_max", None)
        inner = getattr(self.controller, "controller", None)
        low = low if low is not None else getattr(inner, "factor_min", 0.0)
        high = high if high is not None else getattr(inner, "factor_max", math.inf)
        dt_max = getattr(self.controller, "dt_max", math.inf)
        for host in self.paths:
            where = self._where(host)
            h0 = self._fresh(host)[0]
            assert (torch.as_tensor(h0) <= dt_max * (1 + 1e-12)).all(), (
                f"the first step{where} {torch.as_tensor(h0).max().item():.4g} is above dt_max "
                f"{dt_max:g}"
            )
            for scale in torch.logspace(-12, 12, 49, dtype=F64).tolist():
                h, accept, h_next, _ = self._attempt(scale, host)
                ratio = torch.as_tensor(h_next / h).expand(self.batch)
                accept = torch.as_tensor(accept).expand(self.batch)
                bad = accept & ((ratio < low * (1 - 1e-12)) | (ratio > high * (1 + 1e-12)))
                bad &= torch.as_tensor(h_next).expand(self.batch) < dt_max * (1 - 1e-12)
                assert not bad.any(), (
                    f"error scale {scale:.3g}{where}: accepted step factor {ratio[bad].tolist()} "
                    f"outside [{low}, {high}]"
                )
                # a rejected step must shrink, and stay positive: kept, it is retried with the
                # same noise for ever; at 0 the solve ends
                stuck = ~accept & ~((ratio > 0) & (ratio < 1 - 1e-12))
                assert not stuck.any(), (
                    f"error scale {scale:.3g}{where}: a rejected step is scaled by "
                    f"{ratio[stuck].tolist()}, not shrunk to a positive step"
                )
                assert (torch.as_tensor(h_next) <= dt_max * (1 + 1e-12)).all(), (
                    f"next step{where} above dt_max"
                )
            # with memory: rejections in a row keep shrinking the step
            h, state = self._fresh(host)
            for k in range(3):
                accept, h_next, state = self._decide(1e3, h, state, host)
                ratio = torch.as_tensor(h_next / h)
                assert not torch.as_tensor(accept).any() and (ratio < 1 - 1e-12).all(), (
                    f"rejection {k + 1} in a row{where}: the step is scaled by {ratio.tolist()}"
                )
                h = h_next
        return f"factors within [{low:g}, {high:g}]; a rejected step shrinks, also in a row"

    def non_finite_error(self):
        for host in self.paths:
            h, state = self._fresh(host)
            error = self.shape.clone() * 1e-6
            error[0, 1] = math.nan
            y_next = self.y_next.clone()
            y_next[-1, 0] = math.inf
            if host:
                accept, h_next, _ = self.controller.adapt_host(
                    self.y, y_next, error, float(h), state
                )
            else:
                accept, h_next, _ = self.controller.adapt(self.y, y_next, error, h, state)
            accept, h_next = torch.as_tensor(accept), torch.as_tensor(h_next)
            if self.controller.per_sample:
                assert not accept[0] and not accept[-1], (
                    f"non-finite samples accepted: {accept.tolist()}"
                )
                assert (h_next[[0, -1]] < h[[0, -1]]).all(), "a non-finite error does not shrink h"
            else:
                where = self._where(host)
                assert not accept, f"a batch with a non-finite error is accepted{where}"
                assert h_next < h, f"a non-finite error does not shrink h{where}"
        return "rejected, with a smaller step"

    def decision_shape(self):
        h, accept, h_next, _ = self._attempt(0.5)
        want = (self.batch,) if self.controller.per_sample else ()
        for name, x in (("h", h), ("accept", accept), ("h_next", h_next)):
            assert tuple(x.shape) == want, f"{name} has shape {tuple(x.shape)}, expected {want}"
        return f"decisions of shape {want}"

    def stops(self):
        problem = P.smooth_ode()
        log = _StepLog(3)
        saveat = [0.13, 0.5, 0.77, 1.0]
        y0 = problem.initial(3) * torch.tensor([[1.0], [0.8], [1.2]], dtype=F64)
        sol = sk.solve(
            problem,
            y0,
            0.0,
            1.0,
            solver=self.solver,
            controller=self.controller,
            saveat=saveat,
            max_steps=50_000,
            callback=log,
        )
        failure = log.landing_failure(0.0, 1.0, saveat)
        assert failure is None, failure
        assert sol.ts.tolist() == saveat, f"ts {sol.ts.tolist()} != saveat {saveat}"
        return "steps land on every save time and never pass one"


def controller_properties(
    controller, *, only=None, skip=(), solver="dopri5", batch: int = 3, seed: int = 0
) -> Report:
    """Run an adaptive ``controller`` through :data:`CONTROLLER_PROPERTIES` (module docstring).

    ``solver`` (an ODE solver with an error estimate) sets the error order the controller's
    exponents are derived from.
    """
    names = select(CONTROLLER_PROPERTIES, only, skip)
    battery = _ControllerBattery(controller, solver, batch, seed)
    return Report(
        f"controller {controller!r}", tuple(run_property(n, getattr(battery, n)) for n in names)
    )


def assert_controller_properties(controller, **options) -> Report:
    """:func:`controller_properties`, raising an ``AssertionError`` that lists every failure."""
    return controller_properties(controller, **options).raise_if_failed()


__all__ = [
    "CONTROLLER_PROPERTIES",
    "PropertyResult",
    "Report",
    "SOLVER_PROPERTIES",
    "assert_controller_properties",
    "assert_solver_properties",
    "batch_invariance_gap",
    "controller_properties",
    "solver_properties",
]

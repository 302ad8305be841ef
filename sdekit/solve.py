"""The solve loop: one loop for every controller, shared or per-sample time.

Each iteration asks the Brownian source for the increment over ``[t, t + h]``, lets the solver
step, and lets the step policy settle the attempt: with a non-adaptive controller
(:class:`~sdekit.ConstantStepSize`, :class:`~sdekit.StepTo`) every step is accepted and the times
come from a grid computed once; with an adaptive one the controller accepts or rejects and proposes
the next ``h``, and the source is told what was accepted, so that a source that keeps one path
bridges a rejected interval instead of re-drawing it. Steps land exactly on ``saveat`` times, on
the controller's ``stops`` and on ``t1``. Everything the loop carries between iterations is one
:class:`LoopState`.

The fixed-step policy runs on Python floats for the step size and precomputed 0-d time tensors,
so the loop adds nothing per step beyond the solver's own work. A shared-time adaptive solve whose
controller can decide on the host (:class:`_HostSteps`) keeps its times and decisions in Python
floats and reads the batch's error once per attempt; any other adaptive solve (per-sample time)
keeps them in tensors and reads a few flags per attempt (whether any sample is still running),
on CUDA one attempt late.
"""

from __future__ import annotations

import bisect
import functools
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .batching import bcast, tree_flatten, tree_take, tree_unflatten, tree_where
from .brownian import (
    BrownianBridge,
    BrownianSource,
    CallableBrownian,
    GaussianIncrements,
    SharedTimeBridge,
)
from .brownian.bridge import _Points, advance
from .brownian.bridge import commit as commit_points
from .brownian.bridge import draw as draw_increment
from .brownian.bridge import store as store_point
from .brownian.gaussian import increment_from_normals
from .checks import flag, one_of
from .controllers import AbstractStepSizeController, ConstantStepSize
from .controllers.base import merge_grid, snap
from .errors import InputTypeError, InputValueError
from .problems import as_problem
from .random import as_generator
from .solution import Solution, SolveError, Status
from .solvers import resolve_solver

BROWNIAN_NAMES = ("bridge", "redraw")
CHUNK_STEPS = 128  # steps per compiled call, their noise drawn at once ...
CHUNK_ELEMENTS = 2**17  # ... as long as that noise stays this small ...
CHUNK_EVALUATIONS = 256  # ... and its steps evaluate the drift and diffusion this often at most
MIN_COMPILED_CHUNK = 16  # fewer steps fit that noise: the state is large, eager steps are as fast
MAX_STEPS = 100_000  # an adaptive solve's default budget of attempted steps (max_steps)
# With one generator per sample, each generator's block of normals must not depend on the batch
# (CPU randn's numbers depend on how many are drawn at once): steps per block from a sample's
# noise alone, this many elements of it at most.
SAMPLE_CHUNK_ELEMENTS = 2**10
PADDED_CHUNK_FRACTION = 4  # fewer steps left than a chunk over this: step them eagerly
LAGGED_FLAGS = False  # read adaptive solves' flags one attempt late on every device (tests)
LOOP_ATTEMPTS = 16  # per-sample attempts per compiled loop at most (as the bridge packs) ...
LOOP_BYTES = 2**20  # ... while what the loop carries, copied once per attempt, stays this small
# A step ending within this many units of y0's dtype's epsilon times max(|t0|, |t1|) of a stop
# lands on it (rounding errors of t + h); more would stretch steps beyond what the error allows
# where float32 times are coarse (64 units were 0.76 at t = 1e5: steps of 0.01 skipped time).
LANDING_ULPS = 4
# ... and by at most this fraction of the step: a step of 16/17 of the way or less is not
# stretched, and every controller here retries a rejected step at 0.93 of it at most, so a
# rejected landing is not stretched onto the stop again (on one Brownian path, forever).
LANDING_STRETCH = 1 / 16


def solve(
    problem,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    *,
    solver,
    dt: float | None = None,
    controller: AbstractStepSizeController | None = None,
    saveat: Sequence[float] | torch.Tensor | None = None,
    brownian=None,
    generator=None,
    max_steps: int | None = MAX_STEPS,
    callback: Callable[[dict], None] | None = None,
    compile: bool = False,
    compact: bool = False,
    progress: bool = False,
    check_finite: bool = True,
    throw: bool = True,
) -> Solution:
    """Solve ``problem`` from ``(t0, y0)`` to ``t1``.

    Args:
        problem: an :class:`~sdekit.SDE`, an :class:`~sdekit.ODE` or a torchsde-style module.
        y0: initial state, shape ``(batch, *event_shape)``, float32 or float64 (a 16-bit state
            is refused: its times and small increments round away).
        t0, t1: start and end times (numbers, or one-element tensors that do not require
            grad); ``t1 < t0`` integrates backward in time.
        solver: a solver name (``sdekit.solvers.SDE_SOLVERS`` / ``ODE_SOLVERS``) or instance.
        dt: the step size ``|dt|`` (its sign follows the direction): the fixed step of
            :class:`~sdekit.ConstantStepSize` (the default controller), or an adaptive
            controller's first step (default ``|t1 − t0|/100``). The only place a step is given.
        controller: where the steps go (:mod:`sdekit.controllers`): ``ConstantStepSize()``
            (default), ``StepTo(ts)``, an adaptive ``IController``/``PIController``/
            ``PIDController``, or a ``ClipStepSize`` around one. Gradients flow through the
            steps taken, not through an adaptive controller's choice of step sizes.
        saveat: times in ``[t0, t1]``, ordered in the direction of integration, that steps land
            on exactly; the solution holds the state at each of them.
        brownian: ``None`` (default: one Brownian path per sample; fresh Gaussian increments for
            steps known in advance, a bridge that keeps the path under rejection for adaptive
            steps), ``"bridge"``, ``"redraw"`` (fresh Gaussian increments even when a step is
            rejected: cheaper, but **biased** whenever rejection depends on the noise, e.g. −80%
            on a double well's stationary variance; for reproducing code that does this), a
            :class:`~sdekit.brownian.BrownianSource`, or any object called as
            ``bm(ta, tb, return_U=False, return_A=False)`` such as ``torchsde.BrownianInterval``.
        generator: ``None``, an int seed, a ``torch.Generator`` or one generator per sample.
        max_steps: bound on attempted steps of an adaptive solve (per sample, for per-sample
            steps); exceeding it is an error (or, with ``throw=False``, a status). Default
            100000: far more than a solve whose tolerance its problem can meet takes, so that one
            that cannot (a tolerance below the dtype's precision, a blow-up) stops with an error
            instead of running for hours. ``None``: no limit.
        callback: called after every attempted step with a dict: ``i`` (step index), ``t`` (time
            at the start of the step), ``h`` (the step), ``y`` (the state after it: accepted
            samples moved) and ``accept`` (``True``, or the adaptive decision).
        compile: run steps known in advance through ``torch.compile``, several steps per
            compiled call with their noise drawn in one go; the results equal the eager path's
            for the same generator up to floating-point rounding. Pays where Python dispatch
            dominates (states of up to 8192 elements: 16 or more steps per call; larger states
            step eagerly, which is as fast). The first call compiles, and each new problem
            recompiles: about 10 s for Euler's chunk of 128 steps on one CPU core, about a
            minute for SOSRI's of 32 (a chunk holds up to 256 drift and diffusion evaluations);
            while recording a graph for backpropagation the backward compiles too (SOSRI's and
            SOSRA's chunks took about 5 minutes each on a shared 2-core machine).
            An adaptive solve that shares one step size compiles each attempt's step together
            with the batch's error norm (a few seconds; a new problem or tolerance recompiles),
            same steps and decisions as eager ones up to rounding. A per-sample adaptive solve
            compiles each attempt whole: the proposal, the Brownian bridge's draw and commit,
            the step, the controller and the bookkeeping, one fused call (about 3–4x cheaper
            per attempt on small states, ``bench/adaptive_overhead.py``; each new shape
            compiles its own graph, kernels that know their sizes, but a ``compact`` solve,
            whose batch shrinks, compiles one for every size); the same attempts
            per sample, the states equal up to rounding, which the loop amplifies (a last-bit
            change in a step moves the point where the path is sampled: 1e-8 after 3000
            float64 attempts; in float32 about 1e-3 after 60 attempts at tolerance 1e-3, the
            order of the solve's own error). On CPU, a per-sample solve of a small state (what
            an attempt carries, the bridge's buffers and the saved outputs included, up to
            1 MiB) without jump times or ``compact``, and recording no autograd graph, runs up
            to 16 attempts per compiled call, a loop whose flags the host reads once (about
            twice as cheap per attempt again at 64x8; the first call compiles about 10 s
            longer). It runs eagerly, with a warning, on a Brownian source other than sdekit's
            bridge. Falls back to eager steps, with one warning, where compilation fails. Not
            with ``callback`` (compiled steps have no per-step state to report).
        compact: in a per-sample adaptive solve, evaluate only the samples still running: when
            fewer than half the rows of the batch being stepped are running, the finished ones
            are set aside and the rest re-packed, carrying everything that is per sample (state,
            time, step size, controller, solver and Brownian state, saved outputs, generators).
            **Only for independent rows**: the drift and diffusion then receive fewer rows than
            ``y0`` has, so a function that closes over a ``(batch, ...)`` tensor, mixes rows
            (batch statistics) or a tolerance tensor with a batch axis breaks. With one generator
            per sample (or no noise) each sample's result is the uncompacted one (bitwise where
            the functions compute each row alike whatever the batch: torch's vectorised ``pow``,
            in the controllers, may round differently by batch size and so turn a decision at
            the tolerance's edge); with one shared generator
            later noise is drawn for fewer rows (same law, other numbers). No effect on fixed
            steps, shared-time solves or Brownian sources that cannot drop rows (a user's
            :class:`~sdekit.brownian.BrownianSource` without ``select``, torchsde objects).
            ``stats["nfe_rows"]`` counts the rows evaluated. With ``callback``, finished samples
            are scattered back into the batch for every call (a cost).
        progress: show a tqdm progress bar.
        check_finite: raise if the state becomes NaN/Inf (the saved states and the final one,
            read once at the end; the error names the save times around the first non-finite one).
        throw: with ``False`` an adaptive solve that cannot finish returns with ``status`` set
            instead of raising.
    """
    problem = as_problem(problem)
    y0 = _check_y0(y0)
    t0, t1 = _as_time(t0, "t0"), _as_time(t1, "t1")
    solver = resolve_solver(solver, problem)
    save_times = _check_saveat(saveat, t0, t1)
    if dt is not None:
        dt = _step_size(dt)
    controller = _check_controller(controller, dt)
    if max_steps is not None and not (isinstance(max_steps, int) and max_steps > 0):
        raise InputValueError(f"max_steps={max_steps!r}: must be a positive int")
    if callback is not None and not callable(callback):
        raise InputTypeError(f"callback must be None or callable(info: dict), got {callback!r}")
    flag(compile, "compile")
    flag(compact, "compact")
    if compile and callback is not None:
        raise InputValueError(
            "callback needs the state after every step, which compiled steps do not keep: "
            "pass compile=False to use a callback"
        )
    generator = as_generator(generator, y0.device)
    source = None
    # general noise without noise_dim: the Brownian source's shape costs one evaluation of g
    shape_probe = problem.noise is not None and getattr(problem, "noise_dim", 0) is None
    if shape_probe:
        problem.noise_shape(y0, t0)  # at the solve's first time: g may not be defined before it
    if isinstance(brownian, str):
        one_of("brownian", brownian, BROWNIAN_NAMES)
    if problem.noise is not None:
        source = _brownian_source(brownian, problem, y0, generator, solver.levy_area, controller)
    general = source is not None and problem.layout == "general"
    # Fixed steps cannot step around a NaN: one at the first evaluation is the function's.
    checked = _CheckedProblem(problem, y0, general, finite=check_finite and not controller.adaptive)
    if general and shape_probe and problem.noise_dim is not None:
        checked.extra_diffusion_calls += 1
    stops = _stops(t0, t1, save_times, tuple(controller.stops) + tuple(controller.step_ts))
    _check_stage_span(solver, t0, t1, controller.stops)
    like = dict(dtype=y0.dtype, device=y0.device)
    if t0 == t1:
        n = len(save_times) if save_times is not None else 1
        ts = torch.tensor(save_times if save_times is not None else [t1], **like)
        stats = {key: 0 for key in _stats(solver, 0, 0, 0)}
        if controller.adaptive and controller.per_sample:
            stats.update(nfe_batch=0, nfe_rows=0)
        return Solution(ts, y0.unsqueeze(0).expand(n, *y0.shape).clone(), stats)
    if controller.adaptive:
        if solver.error_order is None:
            adaptive = "'sosri', 'sosra' or 'improved_euler'" if problem.noise else "'dopri5'"
            raise InputValueError(
                f"{solver.name} has no embedded error estimate, so it cannot be used with an "
                f"adaptive controller; use fixed steps (dt=...) or an adaptive solver such as "
                f"{adaptive}"
            )
        if solver.fixed_steps_only:
            raise InputValueError(
                f"{solver.name} cannot be used with an adaptive controller "
                f"here: {solver.fixed_steps_only}"
            )
        host = _decides_on_host(controller)
        if host:
            policy = _HostSteps(
                controller, y0, t0, t1, dt, stops, save_times, max_steps, source, compile
            )
        else:
            compact = compact and controller.per_sample and (source is None or source.selectable)
            policy = _AdaptiveSteps(
                controller, solver, y0, t0, t1, dt, stops, save_times, max_steps, source, compact
            )
            if compile and not policy.compilable:
                warnings.warn(
                    "compile=True: this per-sample solve runs eagerly: its Brownian source is "
                    "not sdekit's BrownianBridge (brownian='bridge', the default, is)",
                    stacklevel=2,
                )
    else:
        solver = solver.for_fixed_steps()  # no controller reads its error estimate
        grid = controller.grid(t0, t1, dt, stops)
        # Times closer than the precision they came in are one time (a float32 linspace of save
        # times against the float64 grid t0 + k·dt): no step of a few ulps between them.
        grid = merge_grid(grid, stops, t1, _time_resolution(t0, t1, saveat, controller))
        nfe_per_step = solver.nfe_drift + solver.nfe_diffusion
        policy = _FixedSteps(grid, save_times, controller.stops, source, y0, nfe_per_step)
        if isinstance(source, GaussianIncrements) and (brownian is None or brownian == "redraw"):
            # one generator call per chunk of steps; per sample, a chunk the batch does not set
            per_sample = isinstance(generator, list)
            source.block = policy.sample_chunk if per_sample else policy.chunk
    state = policy.init_state(checked, solver, y0)
    bar = tqdm(total=policy.progress_total, disable=not progress, desc=solver.name)
    try:
        if compile and not controller.adaptive and policy.compilable:
            policy.run_compiled(state, checked, solver, source, bar, check_finite)
        elif compile and isinstance(policy, _AdaptiveSteps) and policy.compilable:
            policy.run_compiled(state, checked, solver, source, bar, throw, check_finite)
        else:
            _integrate(checked, solver, policy, source, state, callback, bar, throw, check_finite)
    finally:
        bar.close()
    solution = policy.solution(state, solver, save_times, t1, like)
    if checked.extra_diffusion_calls:
        _count_extra_diffusion_calls(solution.stats, checked.extra_diffusion_calls, y0.shape[0])
    return solution


@dataclass
class LoopState:
    """What the loop carries from one attempted step to the next.

    ``t`` is 0-d (shared time) or ``(batch,)`` (per-sample); the counters and masks have ``t``'s
    shape in adaptive solves. ``saved`` is a preallocated ``(len(saveat), *y0.shape)`` buffer of
    the states at save times (fixed steps: its first ``saves`` rows written so far).
    """

    t: torch.Tensor
    y: torch.Tensor
    solver_state: Any
    controller_state: Any = None
    h: torch.Tensor | None = None
    i: int = 0
    stop_index: torch.Tensor | None = None
    active: torch.Tensor | None = None
    status: torch.Tensor | None = None
    attempts: torch.Tensor | int = 0
    accepted: torch.Tensor | int = 0
    restarts: torch.Tensor | int = 0
    saved: Any = None
    saves: int = 0
    # fixed steps: (finite, time) of each saved state, on the device until the end of the solve
    save_checks: list = field(default_factory=list)
    running: bool = True
    attempt: Any = field(default=None, repr=False)


def _solver_step(problem, solver, t, h, inc, state):
    """The solver's step from the loop's state (a policy's ``step``)."""
    return solver.step(problem, t, state.y, h, inc, state.solver_state)


def _integrate(problem, solver, policy, source, state, callback, bar, throw, check_finite):
    """The one loop: propose a step, take it, settle it."""
    while state.running:
        t, h, accept = _attempt_eagerly(problem, solver, policy, source, state, check_finite)
        if callback is not None:
            callback(policy.callback_info(state, t, h, accept))
        policy.report(state, bar, throw)
    if check_finite:
        _check_states(state, policy.t0, policy.t1)


def _attempt_eagerly(problem, solver, policy, source, state, check_finite):
    """Propose a step, take it, settle it: ``(t, h, accept)``."""
    t, h = policy.propose(state)
    inc = policy.increment(state, source, t, h)
    y_next, y_error, solver_state = policy.step(problem, solver, t, h, inc, state)
    accept = policy.settle(
        state, problem, solver, source, y_next, y_error, solver_state, check_finite
    )
    return t, h, accept


# --------------------------------------------------------------------------- checks of the inputs


def _check_y0(y0) -> torch.Tensor:
    if not isinstance(y0, torch.Tensor):
        raise InputTypeError(f"y0 must be a torch.Tensor, got {type(y0).__name__}")
    if not y0.is_floating_point():
        raise InputTypeError(f"y0 must be floating point (float32 or float64), got {y0.dtype}")
    if y0.dtype.itemsize < 4:
        raise InputTypeError(
            f"y0 is {y0.dtype}: a 16-bit state rounds away small increments and its times (t "
            f"reaches the problem in y0's dtype: steps of 0.01 near t = 1 are one bfloat16 ulp); "
            f"solve in float32 (y0.float()) and cast the result"
        )
    if y0.dim() == 0:
        raise InputValueError(
            "y0 must have a batch dimension: shape (batch, *event_shape), got a 0-d tensor"
        )
    return y0


def _step_size(dt) -> float:
    """``dt`` as a positive finite float (a Python or numpy number, or a one-element tensor)."""
    value = dt
    if isinstance(dt, torch.Tensor) and dt.numel() == 1:
        if dt.requires_grad:
            raise InputValueError(
                "dt requires grad, but solve does not differentiate with respect to the step "
                "size: pass dt.detach() (or a float)"
            )
        value = dt.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, float) and math.isfinite(value) and value < 0:
        raise InputValueError(
            f"dt={dt!r}: the step size must be positive; the direction comes from t0 and t1 "
            f"(a backward solve has t1 < t0): pass dt={-value!r}"
        )
    if not (isinstance(value, float) and math.isfinite(value) and value > 0):
        raise InputValueError(f"dt={dt!r}: the step size must be a positive finite number")
    return value


def _as_time(t, name: str) -> float:
    if isinstance(t, torch.Tensor):
        if t.numel() != 1:
            raise InputValueError(
                f"{name} must be a scalar, got a tensor of shape {tuple(t.shape)}"
            )
        if t.requires_grad:
            raise InputValueError(
                f"{name} requires grad, but solve does not differentiate with respect to its "
                f"start or end time: pass {name}.detach() (or a float)"
            )
        t = t.item()
    elif isinstance(t, numbers.Real) and not isinstance(t, bool):
        t = float(t)  # numpy scalars
    if not isinstance(t, int | float) or not math.isfinite(t):
        raise InputValueError(f"{name}={t!r}: must be a finite number")
    return float(t)


def _time_resolution(t0: float, t1: float, saveat, controller) -> float:
    """Four ulps, at the larger end's magnitude, of the coarsest dtype that times were given in
    (a tensor of save times, a ``StepTo`` grid); 0 where none was a tensor."""
    dtypes = [getattr(controller, "dtype", None)]
    dtypes.append(saveat.dtype if isinstance(saveat, torch.Tensor) else None)
    eps = [torch.finfo(d).eps for d in dtypes if d is not None and d.is_floating_point]
    return 4 * max(eps) * max(abs(t0), abs(t1)) if eps else 0.0


def _check_saveat(saveat, t0: float, t1: float) -> list[float] | None:
    if saveat is None:
        return None
    if isinstance(saveat, torch.Tensor) and saveat.requires_grad:
        raise InputValueError(
            "saveat requires grad, but solve does not differentiate with respect to the save "
            "times: pass saveat.detach()"
        )
    if isinstance(saveat, torch.Tensor) and saveat.dim() > 1:
        raise InputValueError(
            f"saveat must be a 1-D sequence of times, got a tensor of shape {tuple(saveat.shape)}"
        )
    try:
        times = [
            float(s) for s in (saveat.tolist() if isinstance(saveat, torch.Tensor) else saveat)
        ]
    except (TypeError, ValueError):
        raise InputValueError(f"saveat must be a 1-D sequence of times, got {saveat!r}") from None
    if not times:
        raise InputValueError(
            "saveat is empty: give at least one time, or saveat=None for the final state"
        )
    if isinstance(saveat, torch.Tensor):  # a float32 linspace(t0, t1) ends at t0, t1 rounded
        times = [snap(snap(s, t0, saveat.dtype), t1, saveat.dtype) for s in times]
    direction = 1.0 if t1 >= t0 else -1.0
    lo, hi = min(t0, t1), max(t0, t1)
    outside = [s for s in times if not lo <= s <= hi]
    if outside:
        raise InputValueError(f"saveat times {outside} lie outside [{lo!r}, {hi!r}]")
    if any(direction * (b - a) <= 0 for a, b in zip(times, times[1:], strict=False)):
        order = "increasing" if direction > 0 else "decreasing (backward solve)"
        raise InputValueError(f"saveat must be strictly {order}, got {times}")
    return times


class _CheckedProblem:
    """The problem, with its outputs checked against ``y0`` on the first call of each function
    (with ``finite``, also for NaN/Inf: one host synchronisation per function)."""

    def __init__(self, problem, y0: torch.Tensor, general: bool, finite: bool = False):
        self._problem = problem
        self._finite = finite
        self.noise, self.calculus = problem.noise, problem.calculus
        self.layout, self.additive = problem.layout, problem.additive
        self._y0 = y0
        self.extra_diffusion_calls = 0  # made by the checks, counted in the solve's statistics
        self.f = self._first_call(problem.f, "drift", tuple(y0.shape), "f")
        if problem.noise is not None:
            g_shape = tuple(y0.shape) + ((problem.noise_shape(y0)[-1],) if general else ())
            self.g = self._first_call(problem.g, "diffusion", g_shape, "g")
            self.g_prod = problem.g_prod

    def __getattr__(self, name: str):
        # What else the problem carries (e.g. the structure an exponential integrator steps in).
        if name.startswith("__") or name == "_problem":
            raise AttributeError(name)
        return getattr(self._problem, name)

    def _first_call(self, fn, what: str, expected: tuple[int, ...], attr: str):
        def checked(t, y):
            per_sample = isinstance(t, torch.Tensor) and t.dim() == 1
            try:
                out = fn(t, y)
                _check_output(out, what, expected, self._y0)
            except (RuntimeError, InputValueError) as err:
                if not per_sample or "shape" not in str(err) and "size" not in str(err):
                    raise
                raise InputValueError(
                    f"{err}. In a per-sample solve the {what} gets t of shape (batch,) = "
                    f"{tuple(t.shape)}, one time per sample: broadcast it against y as "
                    f"t.view(-1, {', '.join(['1'] * (y.dim() - 1))}) (t[:, None] * y for a (batch, "
                    f"d) state), or solve with one step size for the batch (per_sample=False)"
                ) from err
            if attr == "g" and self.additive:
                self.extra_diffusion_calls += 1
                _check_additive(fn, t, y, out)
            if self._finite and not bool(torch.isfinite(out).all()):
                where = "at y0, which holds NaN/Inf" if not bool(torch.isfinite(y).all()) else ""
                raise InputValueError(
                    f"the {what} returned non-finite values (NaN/Inf) at its first evaluation, "
                    f"t={float(torch.as_tensor(t).reshape(-1)[0]):g}{where and ', ' + where}: "
                    f"fix the {what} or y0 there (no step size helps), or pass check_finite=False"
                )
            setattr(self, attr, fn)
            return out

        return checked


def _check_additive(g, t, y: torch.Tensor, g_y: torch.Tensor) -> None:
    """Refuse a diffusion declared additive that depends on ``y``: the schemes that rely on the
    declaration (SRA, improved Euler's Itô form, Milstein's single evaluation) would solve another
    SDE without a sign of it. One more evaluation of ``g``, at ``2y + 1``, on the first call."""
    with torch.no_grad():
        g_other = g(t, 2 * y.detach() + 1)
        g_y = g_y.detach()
        scale = float(g_y.abs().max()) if g_y.numel() else 0.0
        same = torch.allclose(g_other, g_y, rtol=1e-5, atol=1e-6 * scale, equal_nan=True)
    if not same:
        raise InputValueError(
            "the problem declares noise='additive' (a diffusion that does not depend on y), but "
            "its diffusion changes with y (g(t, y) and g(t, 2y + 1) differ at the first step): "
            "declare noise='diagonal', 'scalar' or 'general' (with noise_dim) instead"
        )


def _check_output(out, what: str, expected: tuple[int, ...], y0: torch.Tensor) -> None:
    if not isinstance(out, torch.Tensor):
        raise InputTypeError(f"the {what} returned {type(out).__name__}, expected a torch.Tensor")
    if tuple(out.shape) != expected:
        raise InputValueError(
            f"the {what} returned shape {tuple(out.shape)}, expected {expected} for y0 of shape "
            f"{tuple(y0.shape)}"
        )
    if out.dtype != y0.dtype or out.device != y0.device:
        raise InputTypeError(
            f"the {what} returned {out.dtype} on {out.device}, but y0 is {y0.dtype} on "
            f"{y0.device}: make them agree"
        )


def _brownian_source(brownian, problem, y0, generator, levy_area: bool, controller):
    """The Brownian source of a solve; ``brownian``, if a name, is one of ``BROWNIAN_NAMES``."""
    shape = problem.noise_shape(y0)
    kwargs = dict(dtype=y0.dtype, device=y0.device, generator=generator, levy_area=levy_area)
    if brownian is None:  # one path: rejection needs the bridge, fixed steps never reject
        brownian = "bridge" if controller.adaptive else "redraw"
    if brownian == "redraw":
        return GaussianIncrements(shape, **kwargs)
    if brownian == "bridge":
        return _one_path_bridge(controller)(shape, **kwargs)
    if isinstance(brownian, BrownianSource):
        return brownian
    if controller.per_sample:
        raise InputValueError(
            "a torchsde-style Brownian object gives one path for the whole batch and cannot serve "
            "per-sample step sizes; use brownian='bridge' (the default) with a per-sample controller"
        )
    like = torch.empty(shape, dtype=y0.dtype, device=y0.device)
    return CallableBrownian(brownian, levy_area=levy_area, like=like)


def _decides_on_host(controller) -> bool:
    """Whether an adaptive solve keeps its times and decisions on the host (:class:`_HostSteps`):
    one decision for the batch, by a controller that can take it there (fixed-step controllers
    declare no ``host_decisions``)."""
    return not controller.per_sample and controller.host_decisions


def _one_path_bridge(controller) -> type[BrownianSource]:
    """The Brownian bridge a solve with ``controller`` keeps one path with: the host-side
    :class:`~sdekit.brownian.SharedTimeBridge` where decisions are taken on the host, else the
    per-sample :class:`~sdekit.brownian.BrownianBridge`."""
    return SharedTimeBridge if _decides_on_host(controller) else BrownianBridge


def _check_controller(controller, dt):
    if controller is None:
        if dt is None:
            raise InputValueError(
                "give dt=... for fixed steps, or controller=... (an adaptive controller such as "
                "PIController(rtol=1e-3, atol=1e-6), or StepTo(ts) for a given grid)"
            )
        return ConstantStepSize()
    if not isinstance(controller, AbstractStepSizeController):
        raise InputTypeError(
            f"controller must be an sdekit step-size controller (ConstantStepSize, StepTo, "
            f"IController, PIController, PIDController, ClipStepSize), got "
            f"{type(controller).__name__}"
        )
    return controller


def _check_stage_span(solver, t0: float, t1: float, jump_ts) -> None:
    """A step onto a jump time must not evaluate the problem past it."""
    lo, hi = solver.stage_span
    if (lo < 0 or hi > 1) and any(min(t0, t1) < s < max(t0, t1) for s in jump_ts):
        raise InputValueError(
            f"{solver.name} evaluates the problem at times from t + {lo:.3g} h to t + {hi:.3g} h "
            f"within a step from t to t + h (its tableau's c), so a step that ends on a jump "
            f"time sees past it; with jump_ts use a scheme whose stages stay within the step, "
            f"such as 'sosri2' or 'sriw1'"
        )


def _stops(t0: float, t1: float, save_times, controller_stops) -> list[float]:
    """Times every step lands on, in the direction of integration: saves, the controller's stops
    inside (jumps and ``step_ts``), ``t1``."""
    lo, hi = min(t0, t1), max(t0, t1)
    inside = {s for s in controller_stops if lo < s < hi}
    return sorted(set(save_times or ()) | inside | {t1}, reverse=t1 < t0)


def _check_finite(y: torch.Tensor, t_prev: float, t: float) -> None:
    if not torch.isfinite(y).all():
        bad = (~torch.isfinite(y.flatten(1))).any(1).nonzero().flatten().tolist()
        raise SolveError(
            f"the solution became non-finite between t={t_prev:g} and t={t:g} "
            f"(samples {bad[:10]}{'...' if len(bad) > 10 else ''}): the drift or diffusion "
            f"returned NaN/Inf there (a state outside a function's domain, e.g. the square root "
            f"of a variance below 0, which no step size avoids: write it to accept every state, "
            f"e.g. sqrt(v.clamp(min=0))), or the steps were too large for the problem. Check "
            f"them, reduce the step size, use an adaptive controller, or pass check_finite=False "
            f"to return it anyway",
            sample=bad[0],
        )


def _check_states(state, t0: float, t1: float) -> None:
    """At the end of a solve from ``t0`` to ``t1``: raise for the first saved state that is not
    finite, naming the save times around it (``state.save_checks``, one host read for the whole
    solve), else for a final state that is not."""
    t_prev = t0
    if state.save_checks:
        finite = torch.stack([ok for ok, _ in state.save_checks])
        times = [t_prev] + [t for _, t in state.save_checks]
        if not bool(finite.all()):
            k = int((~finite).nonzero()[0])
            _check_finite(state.saved[state.saves - len(times) + 1 + k], times[k], times[k + 1])
        t_prev = times[-1]
    _check_finite(state.y, t_prev, t1)


# --------------------------------------------------------------------------- step policies


class _FixedSteps:
    """Steps on a grid known in advance (Python floats); every step is accepted."""

    step = staticmethod(_solver_step)

    def __init__(self, grid, save_times, jump_ts, source, y0, nfe_per_step):
        # Built with numpy: a solve of many small steps spends little per step on its grid.
        like = dict(dtype=y0.dtype, device=y0.device)
        times = np.asarray(grid, dtype=np.float64)
        self.grid, self.t0, self.t1 = grid, grid[0], grid[-1]
        self.n, self.like = len(grid) - 1, like
        self.time_tensor = torch.from_numpy(times).to(**like)
        restart = np.isin(times, list(jump_ts))
        # A step onto a jump time ends just short of it, so that no stage sees past the jump
        # (schemes with stages outside the step are refused with jump times).
        ends = times[1:].copy()
        for k in np.flatnonzero(restart[1:]).tolist():
            ends[k] = math.nextafter(ends[k], times[k])
        self.h_array = ends - times[:-1]
        self.hs = self.h_array.tolist()
        save = np.isin(times, list(save_times) if save_times is not None else [self.t1])
        self.restart, self.save = restart.tolist(), save.tolist()
        # Grid points a compiled chunk must stop at: saves, jumps and the end.
        self.stops = np.flatnonzero(save[1:] | restart[1:]).tolist() + [self.n - 1]
        self.progress_total = self.n
        numel = math.prod(source.shape) if isinstance(source, GaussianIncrements) else y0.numel()
        by_size = CHUNK_ELEMENTS // max(numel, 1)
        # Compilation time grows with the graph: a chunk of steps that evaluate more has fewer.
        by_cost = CHUNK_EVALUATIONS // max(nfe_per_step, 1)
        self.compilable = by_size >= MIN_COMPILED_CHUNK
        self.chunk = max(1, min(CHUNK_STEPS, by_size, by_cost))
        per_sample = SAMPLE_CHUNK_ELEMENTS // max(numel // max(y0.shape[0], 1), 1)
        self.sample_chunk = max(1, min(CHUNK_STEPS, per_sample, by_cost))

    @functools.cached_property
    def times(self) -> tuple[torch.Tensor, ...]:
        """The grid as 0-d tensors, made for steps taken one by one (compiled chunks slice
        :attr:`time_tensor`): a solve of many small steps does not pay for both."""
        return self.time_tensor.unbind(0)

    @functools.cached_property
    def h_tensor(self) -> torch.Tensor:
        """The step sizes as one tensor, for compiled chunks."""
        return torch.from_numpy(self.h_array).to(**self.like)

    def init_state(self, problem, solver, y0):
        # Written in place as the solve goes: stacking the states at the end held them twice.
        first = self.save[0] and self.n > 0
        saved = y0.new_empty((first + sum(self.save[1:]), *y0.shape))
        if first:
            saved[0] = y0
        t0 = self.time_tensor[0]
        state0 = solver.init(problem, t0, y0)
        return LoopState(t0, y0, state0, saved=saved, saves=int(first), running=self.n > 0)

    def propose(self, state):
        return self.times[state.i], self.hs[state.i]

    def increment(self, state, source, t, h):
        if source is None:
            return None
        if isinstance(source, CallableBrownian):  # exact grid times, not y0's dtype's rounding
            return source.increment(self.grid[state.i], h)
        return source.increment(t, h)

    def settle(self, state, problem, solver, source, y_next, y_error, solver_state, check_finite):
        i = state.i + 1
        self.arrive(state, i, self.times[i], problem, solver, y_next, solver_state, check_finite)
        return True

    def arrive(self, state, i, t, problem, solver, y, solver_state, check_finite):
        """The loop reached grid point ``i`` (time ``t``) with state ``y``: save, restart, stop
        as due."""
        state.i, state.t, state.y, state.solver_state = i, t, y, solver_state
        if self.save[i]:
            if check_finite:  # read once at the end: no host synchronisation per save time
                state.save_checks.append((torch.isfinite(y).all(), self.grid[i]))
            state.saved[state.saves] = y
            state.saves += 1
        if self.restart[i]:
            state.solver_state = solver.init(problem, state.t, y)
            state.restarts += 1
        state.running = i < self.n

    def report(self, state, bar, throw):
        bar.update()

    def callback_info(self, state, t, h, accept):
        return {"i": state.i - 1, "t": t, "h": h, "y": state.y, "accept": accept}

    def run_compiled(self, state, problem, solver, source, bar, check_finite):
        """Chunks of steps with no save or jump inside run as one compiled call on the noise
        eager steps would use (the source hands out its normals in blocks). A chunk cut short by
        a save point or the end is padded with empty steps that leave the state as it is, so
        that every call reuses one graph, unless so few steps are left that eager steps cost
        less. The first step, whose calls check the problem's outputs, runs eagerly."""
        while state.running:
            i, k = state.i, self.chunk
            # Steps up to the next grid point that must be kept (saved, jumped at, the end).
            left = self.stops[bisect.bisect_left(self.stops, i)] + 1 - i
            j = i + min(k, left)
            compiled = (
                i > 0
                and left >= k // PADDED_CHUNK_FRACTION
                and (source is None or isinstance(source, GaussianIncrements))
            )
            result = None
            if compiled:
                z, z_area = source.normals(j - i) if source is not None else (None, None)
                times, hs = self.time_tensor[i:j], self.h_tensor[i:j]
                if j - i < k:
                    pad = k - (j - i)
                    times = torch.cat([times, self.time_tensor[j].expand(pad)])
                    hs = torch.cat([hs, hs.new_zeros(pad)])
                    z, z_area = _padded(z, pad), _padded(z_area, pad)
                args = (solver, problem, times, hs, state.y, state.solver_state, z, z_area)
                # Where compilation fails, the same steps run eagerly on the noise just drawn.
                result = _through_compile(_run_steps, *args) or _run_steps(*args)
            if result is None:
                t, h = self.time_tensor[i], self.hs[i]
                if isinstance(source, GaussianIncrements):  # a slice, not a view per call
                    z, z_area = source.normals(1)
                    inc = increment_from_normals(z[0], None if z_area is None else z_area[0], h)
                else:
                    inc = self.increment(state, source, t, h)
                y, _, solver_state = solver.step(problem, t, state.y, h, inc, state.solver_state)
                j = i + 1
            else:
                y, solver_state = result
            self.arrive(
                state, j, self.time_tensor[j], problem, solver, y, solver_state, check_finite
            )
            bar.update(j - i)
        if check_finite:
            _check_states(state, self.t0, self.t1)

    def solution(self, state, solver, save_times, t1, like):
        stats = _stats(solver, self.n, self.n, state.restarts)
        ts = torch.tensor(save_times if save_times is not None else [t1], **like)
        return Solution(ts, state.saved, stats)


def _padded(normals, pad):
    """``normals`` with ``pad`` calls' worth of zeros after it (``None`` stays ``None``)."""
    if normals is None:
        return None
    return torch.cat([normals, normals.new_zeros(pad, *normals.shape[1:])])


def _run_steps(solver, problem, times, hs, y, solver_state, z, z_area):
    """Steps from ``times[k]`` by ``hs[k]`` (0-d tensors: one graph for every chunk) with the
    standard normals ``z`` (``None`` for an ODE). A step of size 0 pads a chunk: it keeps the
    state as it was (its result, which may divide by the step, is discarded)."""
    for k in range(times.shape[0]):
        inc = None
        if z is not None:
            inc = increment_from_normals(z[k], None if z_area is None else z_area[k], hs[k])
        y_next, _, state_next = solver.step(problem, times[k], y, hs[k], inc, solver_state)
        taken = hs[k] != 0
        y, solver_state = tree_where(taken, y_next, y), tree_where(taken, state_next, solver_state)
    return y, solver_state


def _attempt(solver, controller, problem, t, y, h, inc, solver_state, reference):
    """A step and the batch's error (the largest of the controller's per-sample errors), for
    one compiled call: the stages and the error norm fuse into a few kernels."""
    y_next, y_error, solver_state = solver.step(problem, t, y, h, inc, solver_state)
    err = controller.error(y, y_next, y_error, _ErrorState(reference)).max()
    return y_next, y_error, solver_state, err


def _per_sample_attempt(solver, policy, problem, state, points, z1, z2, slot, shown):
    """One attempt of :class:`_AdaptiveSteps` on tensors only, for one compiled call: propose,
    draw the increment from the bridge's ``points`` (``None`` for an ODE) with the normals
    ``z1``, ``z2``, step, settle, commit the bridge's new point to ``slot``, and the flags
    (progress where a bar is ``shown``)."""
    settled = _step_and_settle(solver, policy, problem, state, points, z1, z2)
    drawn, y_next, y_error, accept, underflow, landed, rows = settled
    bridge = None
    if points is not None:
        store_point(points, drawn.V_end, drawn.I_end, slot)
        bridge = commit_points(points, drawn, accept, slot)
    flags = policy._flags(rows["t"], rows["active"], underflow, shown)
    # The step's result and error only name the sample behind a shared decision's failure;
    # as outputs they would be written out on every attempt.
    step = None if policy.per_sample else (y_next, y_error)
    return flags, underflow, landed, rows, bridge, step


def _per_sample_attempts(
    solver, policy, problem, carried, structure, restarts, rows, z1, z2, slot, most, on_underflow
):
    """Up to ``most`` attempts of :func:`_per_sample_attempt` in one compiled call, a loop
    (torch's ``while_loop``) whose flags the host reads once: a per-sample solve of a small
    state pays the call's own cost once for several attempts. ``carried``: the state's
    ``_LOOPED`` values, the bridge's points but ``rows`` (``None`` for an ODE) and the last
    attempt's underflow, flattened (``structure``); ``z1``, ``z2``: the attempts' normals, one
    per row; ``slot``: where the first attempt's new point goes, the next ones following.
    The loop stops early where the host has work: every sample finished, or an underflow to
    raise (``on_underflow``). Returns the number of attempts taken, then the carried values
    after them."""

    def unpack(values):
        looped, points, underflow = tree_unflatten(structure, iter(values))
        points = None if points is None else _Points(*points, rows)
        state = LoopState(**dict(zip(_LOOPED, looped, strict=True)), restarts=restarts)
        return state, points, underflow

    def go_on(i, *values):
        state, _, underflow = unpack(values)
        running = state.active.sum()
        go = (i < most) & (running > 0)
        if on_underflow:
            go = go & ~underflow.any()
        return go

    def attempt(i, *values):
        state, points, _ = unpack(values)
        z = [None if x is None else x.index_select(0, i.view(1))[0] for x in (z1, z2)]
        settled = _step_and_settle(solver, policy, problem, state, points, *z, in_place=False)
        drawn, _, _, accept, underflow, _, new = settled
        if points is not None:
            points = advance(points, drawn, accept, slot + i)[:5]
        looped = tuple(new[name] for name in _LOOPED)
        return (i + 1, *tree_flatten((looped, points, underflow))[0])

    return torch.while_loop(go_on, attempt, (torch.zeros_like(slot), *carried))


def _step_and_settle(solver, policy, problem, state, points, z1, z2, in_place=True):
    """Propose, draw the increment from the bridge's ``points`` (``None`` for an ODE) with the
    normals ``z1``, ``z2``, step and settle: the draw (what its commit needs), the step's result
    and error, then :meth:`_AdaptiveSteps._settle`'s ``(accept, underflow, landed, rows)``."""
    t, h, proposal = policy._propose(state)
    inc = drawn = None
    if points is not None:
        times = (x.to(points.c.dtype).expand_as(points.c) for x in (t, h))
        inc, drawn = draw_increment(points, *times, z1, z2, torch.finfo(t.dtype).eps)
    y_next, y_error, solver_state = solver.step(problem, t, state.y, h, inc, state.solver_state)
    settled = policy._settle(state, proposal, y_next, y_error, solver_state, in_place)
    return drawn, y_next, y_error, *settled


# What a loop of attempts carries of the state (without jump times ``restarts`` stays fixed).
_LOOPED = (
    "t", "y", "h", "solver_state", "controller_state", "stop_index", "active", "status",
    "attempts", "accepted", "saved",
)  # fmt: skip


class _ErrorState(NamedTuple):
    """What a controller's error norm reads of its state (its step-size memory stays out of the
    compiled call, whose graph would otherwise be specialised to it)."""

    reference: torch.Tensor | None


# (function, solver class, dynamic) -> the function through torch.compile, or None where that
# failed
_compiled: dict = {}


def _through_compile(function, *args, dynamic: bool | None = False, warn: bool = True):
    """``function(*args)`` through ``torch.compile``; ``None`` (after one warning per function,
    solver class and ``dynamic``, unless not to ``warn``) where compilation is unavailable, so
    that the caller runs it eagerly. ``dynamic=False``: one graph per shape, whose kernels know
    their sizes (at 1024x64 a per-sample attempt took about 1.45x as long in the graph for
    every size); ``dynamic=None``: a second shape compiles one graph for every size, for a
    solve whose batch shrinks (rows set aside)."""
    key = (function, type(args[0]), dynamic)
    if key not in _compiled:
        # Dynamo's guards already check every input's sizes and strides; the compiled code's
        # own checks of them cost about a microsecond per input and call.
        _compiled[key] = torch.compile(function, dynamic=dynamic, options={"size_asserts": False})
    if _compiled[key] is None:
        return None
    try:
        return _compiled[key](*args)
    except Exception as err:  # a missing compiler, an unsupported backend, platform or operation
        _compiled[key] = None
        if not warn:
            return None
        warnings.warn(
            f"compile=True: torch.compile is unavailable here for {type(args[0]).__name__} "
            f"({type(err).__name__}: {err}); solving with eager steps",
            stacklevel=4,
        )
        return None


class _Numbers:
    """Rounding to a floating dtype, and its next representable number, on Python floats."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.numpy = {torch.float64: np.float64, torch.float32: np.float32}.get(dtype)
        self.numpy = self.numpy or {torch.float16: np.float16}.get(dtype)

    def round(self, x: float) -> float:
        if self.numpy is np.float64:
            return x
        if self.numpy is not None:
            return float(self.numpy(x))
        return torch.tensor(x, dtype=self.dtype).item()

    def nextafter(self, x: float, towards: float) -> float:
        if self.numpy is not None:
            return float(np.nextafter(self.numpy(x), self.numpy(towards)))
        x, towards = (torch.tensor(v, dtype=self.dtype) for v in (x, towards))
        return torch.nextafter(x, towards).item()


class _HostSteps:
    """One adaptive decision for the whole batch, taken on the host.

    Times, step sizes, decisions and counters are Python floats and ints; the controller reads
    the batch's error once per attempt (:meth:`~sdekit.controllers.PIDController.adapt_host`)
    and that is the attempt's only host synchronisation. Beyond the solver's step, an attempt
    costs the error norm, the Brownian source's draw and one 0-d time tensor for the problem's
    functions. ``state.t`` is the current time as a float.
    """

    def __init__(self, controller, y0, t0, t1, dt, stops, save_times, max_steps, source, compile):
        self.compiled = compile and hasattr(controller, "error")
        self.err = None  # the batch's error, where a compiled attempt computed it
        # Times are numbers of y0's dtype, as the problem's functions see them: a step's end
        # computed here is the one its stages compute.
        self.number = _Numbers(y0.dtype)
        slot = {s: k for k, s in enumerate(save_times or ())}
        self.save_slot = [slot.get(s, -1) for s in stops]
        jumps = set(controller.stops)
        self.is_jump = [s in jumps for s in stops]
        t0, stops = self.number.round(t0), [self.number.round(s) for s in stops]
        self.controller, self.t0, self.t1, self.dt0 = controller, t0, t1, dt
        self.max_steps, self.stops = max_steps, stops
        self.direction = 1.0 if t1 > t0 else -1.0
        self.tiny = LANDING_ULPS * torch.finfo(y0.dtype).eps * max(abs(t0), abs(t1))
        self.h_least = _least_step(controller, y0)
        self.like = dict(dtype=y0.dtype, device=y0.device)
        self.n_save = len(slot)
        self.progress_total = abs(t1 - t0)
        self.done_before = 0.0
        # Sources that keep their times on the host get floats; the rest, tensors.
        self.float_times = isinstance(source, SharedTimeBridge | CallableBrownian)
        self.bool_commit = isinstance(source, SharedTimeBridge)  # others get 0-d tensors
        self.decisions = tuple(torch.tensor(a, device=y0.device) for a in (False, True))

    def init_state(self, problem, solver, y0):
        h, controller_state = self.controller.init_host(solver, y0, self.t0, self.t1, self.dt0)
        t = torch.full((), self.t0, **self.like)
        return LoopState(
            t=self.t0,
            y=y0,
            solver_state=solver.init(problem, t, y0),
            controller_state=controller_state,
            h=h,
            stop_index=0,
            status=Status.OK,
            saved=[None] * self.n_save,
        )

    def propose(self, state):
        t, k, number = state.t, state.stop_index, self.number
        stop = end = self.stops[k]
        remaining = (stop - t) * self.direction
        # A step that would stop a rounding error short of the next stop lands on it instead,
        # and integrates the whole way there: t becomes the stop when it is accepted.
        clipped = state.h >= remaining - min(self.tiny, state.h * LANDING_STRETCH)
        h_try = remaining if clipped else number.round(state.h)  # t and stop are numbers: exact
        h = number.round(h_try * self.direction)
        if self.is_jump[k]:  # a step onto a jump time ends just short of it
            end = number.nextafter(stop, t)
            if clipped:
                h = number.round(end - t)
        # t + h may round past the stop (as the stages compute it, in y0's dtype): step one ulp
        # shorter so that no stage within the step is evaluated beyond it.
        while (number.round(t + h) - end) * self.direction > 0:
            h = number.nextafter(h, 0.0)
        state.attempt = (stop, clipped, h_try, h)
        return torch.full((), t, **self.like), h

    def increment(self, state, source, t, h):
        if source is None:
            return None
        return source.increment(state.t if self.float_times else t, h)

    def step(self, problem, solver, t, h, inc, state):
        """The solver's step; with ``compile``, the step and the batch's error in one compiled
        call (after the first attempt, whose calls check the problem's outputs)."""
        self.err = None
        if self.compiled and state.i > 0:
            reference = getattr(state.controller_state, "reference", None)
            h_tensor = torch.full((), h, **self.like)  # a tensor: one graph for every step size
            args = (solver, self.controller, problem, t, state.y, h_tensor, inc)
            result = _through_compile(_attempt, *args, state.solver_state, reference)
            if result is not None:
                y_next, y_error, solver_state, err = result
                self.err = float(err.detach())
                return y_next, y_error, solver_state
            self.compiled = False
        return _solver_step(problem, solver, t, h, inc, state)

    def settle(self, state, problem, solver, source, y_next, y_error, solver_state, check_finite):
        stop, clipped, h_try, h = state.attempt
        y = state.y
        if h_try == 0:  # landing on a stop at the current time (a save time at t0): no step
            accept, h_next = True, state.h
            y_next, solver_state = y, state.solver_state  # a scheme may divide by h: unread
        else:
            accept, h_next, state.controller_state = self.controller.adapt_host(
                y, y_next, y_error, h_try, state.controller_state, err=self.err
            )
        if source is not None:
            source.commit(accept if self.bool_commit else self.decisions[accept])
        state.attempts += 1
        landed = accept and clipped
        if accept:
            state.accepted += 1
            state.t = stop if clipped else self.number.round(state.t + h)
            state.y, state.solver_state = y_next, solver_state
        if landed:
            # A step shortened to land on a stop says little about the step size the error
            # allows: keep the longer proposal.
            h_next = max(h_next, state.h)
            k = state.stop_index
            if self.save_slot[k] >= 0:
                state.saved[self.save_slot[k]] = state.y
            if self.is_jump[k]:
                t = torch.full((), state.t, **self.like)
                state.solver_state = solver.init(problem, t, state.y)
                state.restarts += 1
            state.stop_index = k + 1
        if h_try > 0:  # a zero-length step (landing on t0) says nothing
            state.h = h_next
        # t is a number of y0's dtype: a step that does not move it there is no step
        still = self.number.round(state.t + state.h * self.direction) == state.t
        stuck = state.h < self.h_least or still
        # an accepted step after which the controller's next cannot move t stalls as surely
        underflow = (not accept and stuck) or (
            accept and still and state.stop_index < len(self.stops)
        )
        if underflow:
            state.status = Status.DT_MIN
        state.running = state.stop_index < len(self.stops) and not underflow
        state.i += 1
        # the worst sample is named from these when the solve fails; else they are not kept
        state.attempt = (y, y_next, y_error, underflow) if underflow else (None,) * 3 + (False,)
        return accept

    def report(self, state, bar, throw):
        if not bar.disable:
            done = min(abs(state.t - self.t0), self.progress_total)
            bar.update(done - self.done_before)
            self.done_before = done
        y, y_next, y_error, underflow = state.attempt
        if underflow and throw:
            error = getattr(self.controller, "error", None)
            sample = torch.ones((), dtype=torch.bool)
            if error is not None:  # name the sample behind the decision
                sample = _worst_sample(error(y, y_next, y_error, state.controller_state))
            _raise_underflow(sample, *self._as_tensors(state), self.controller, None)
        if state.running and self.max_steps is not None and state.i >= self.max_steps:
            state.status = Status.MAX_STEPS
            if throw:
                everyone = torch.ones((), dtype=torch.bool)
                _raise_budget(everyone, *self._as_tensors(state), self.max_steps, None)
            state.running = False

    @staticmethod
    def _as_tensors(state) -> tuple[torch.Tensor, torch.Tensor]:
        """The time and step size, for the messages that name them."""
        return torch.tensor(state.t, dtype=torch.float64), torch.tensor(
            state.h, dtype=torch.float64
        )

    def callback_info(self, state, t, h, accept):
        h, accept = torch.full((), h, **self.like), self.decisions[accept]
        return {"i": state.i - 1, "t": t, "h": h, "y": state.y, "accept": accept}

    def solution(self, state, solver, save_times, t1, like):
        stats = _stats(solver, state.attempts, state.accepted, state.restarts)
        batch = state.y.shape[0]
        status = t_stopped = None
        if state.status != Status.OK:
            status = torch.full(
                (batch,), int(state.status), dtype=torch.int8, device=like["device"]
            )
            t_stopped = torch.full((batch,), state.t, **like)
        if not self.n_save:
            ys = state.y.unsqueeze(0)
            return Solution(torch.tensor([t1], **like), ys, stats, status, t_stopped)
        # Save times a failed solve did not reach hold NaN; the last, its last accepted state.
        saved = [torch.full_like(state.y, math.nan) if y is None else y for y in state.saved]
        if status is not None:
            saved[-1] = state.y
        ts = torch.tensor(save_times, **like)
        return Solution(ts, torch.stack(saved), stats, status, t_stopped)


# What a compacting solve carries per sample (along dim 0; ``saved`` along dim 1), and what of
# it makes the results of the samples it sets aside.
_PER_SAMPLE = (
    "t", "y", "h", "solver_state", "controller_state", "stop_index", "active", "status",
    "attempts", "accepted", "restarts",
)  # fmt: skip
_RESULTS = ("t", "y", "status", "attempts", "accepted", "restarts", "saved")


class _AdaptiveSteps:
    """Steps proposed by an adaptive controller; all bookkeeping on tensors of ``t``'s shape.

    With ``compact``, the state holds only the rows still being stepped: ``index`` maps them to
    the batch, and ``done`` holds the batch's results as of the last compaction; when the solve
    ends the state's results become the whole batch's again.
    """

    def step(self, problem, solver, t, h, inc, state):
        """The solver's step. While a per-sample step records an autograd graph, rows whose
        step came out non-finite (rejected) are stepped again with ``h = 0`` for the graph: the
        zero gradient that reaches a rejected row would meet its NaN/Inf as ``0 · inf = NaN``,
        in every parameter's gradient. The decision keeps the original error."""
        y_next, y_error, solver_state = _solver_step(problem, solver, t, h, inc, state)
        if not (self.per_sample and y_next.requires_grad):
            return y_next, y_error, solver_state
        finite = torch.isfinite(y_next.detach()).flatten(1).all(1)
        if y_error is not None:
            finite &= torch.isfinite(_detached(y_error)).flatten(1).all(1)
        if bool(finite.all()):  # a host read, only while recording a graph
            return y_next, y_error, solver_state
        h = torch.where(finite, h, 0.0)
        y_next, _, solver_state = _solver_step(problem, solver, t, h, inc, state)
        self._count(self.nfe_step, state.y.shape[0])
        return y_next, y_error, solver_state

    def __init__(
        self, controller, solver, y0, t0, t1, dt, stops, save_times, max_steps, source, compact
    ):
        self.controller, self.per_sample = controller, controller.per_sample
        self.t0, self.t1, self.dt0, self.max_steps = t0, t1, dt, max_steps
        self.direction = 1.0 if t1 > t0 else -1.0
        self.forward = t1 > t0
        like = dict(dtype=y0.dtype, device=y0.device)
        index = dict(dtype=torch.long, device=y0.device)
        # A tensor, not a float: a compiled attempt would otherwise compile again for a new t1.
        self.tiny = torch.tensor(
            LANDING_ULPS * torch.finfo(y0.dtype).eps * max(abs(t0), abs(t1)), **like
        )
        self.h_least = _least_step(controller, y0)
        self.stops = torch.tensor(stops, **like)
        save = save_times or []
        self.n_save = len(save)
        self.save_slot = torch.tensor([save.index(s) if s in save else -1 for s in stops], **index)
        jumps = set(controller.stops)
        self.any_jumps = any(s in jumps for s in stops)
        self.is_jump = torch.tensor([s in jumps for s in stops], device=y0.device)
        self.rows = torch.arange(y0.shape[0], device=y0.device)
        self.zero = torch.zeros((), **like)
        self.lagged = y0.device.type != "cpu" or LAGGED_FLAGS
        self.pending = None  # with lagged flags: the last attempt's, on their way to the host
        self.recorded_graph = False  # whether the last eager attempt recorded an autograd graph
        self.progress_total = abs(t1 - t0)
        self.done_before = 0.0
        self.source, self.compact, self.index, self.done = source, compact, None, None
        self.nfe_step = solver.nfe_drift + solver.nfe_diffusion
        self.nfe_batch = self.nfe_rows = 0  # calls of the problem's functions, rows they saw
        # A compiled attempt draws from the bridge's buffers.
        self.compilable = source is None or type(source) is BrownianBridge
        self.loops = (
            hasattr(torch, "while_loop")  # not in older torch
            and self.per_sample
            and not self.lagged
            and not self.any_jumps
            and not compact  # each new batch size would compile the loop again (some fail)
        )
        self.looped_bytes = None  # what a loop of attempts carries of the state
        self.int_tensors: dict[int, torch.Tensor] = {}

    def init_state(self, problem, solver, y0):
        self._count(solver.nfe_init, y0.shape[0])
        shape = (y0.shape[0],) if self.per_sample else ()
        h, controller_state = self.controller.init(solver, y0, self.t0, self.t1, self.dt0)
        t = torch.full(shape, self.t0, dtype=y0.dtype, device=y0.device)
        counter = torch.zeros(shape, dtype=torch.long, device=y0.device)
        return LoopState(
            t=t,
            y=y0,
            solver_state=solver.init(problem, t, y0),
            controller_state=controller_state,
            h=h,
            stop_index=counter,
            active=torch.ones(shape, dtype=torch.bool, device=y0.device),
            status=torch.zeros(shape, dtype=torch.int8, device=y0.device),
            attempts=counter,
            accepted=counter,
            restarts=counter,
            saved=y0.new_zeros((self.n_save, *y0.shape)) if self.n_save else None,
        )

    def propose(self, state):
        t, h, state.attempt = self._propose(state)
        return t, h

    def _propose(self, state):
        """The next step's time and signed size per row, and what settling it needs."""
        forward, t = self.forward, state.t
        index = state.stop_index.clamp(max=len(self.stops) - 1)
        stop = end = self.stops[index]
        remaining = stop - t if forward else t - stop
        # A step that would stop a rounding error short of the next stop lands on it instead,
        # and integrates the whole way there: t becomes the stop when it is accepted.
        clipped = state.h >= remaining - torch.minimum(self.tiny, state.h * LANDING_STRETCH)
        h_try = torch.where(state.active, torch.where(clipped, remaining, state.h), 0.0)
        h = h_try if forward else -h_try
        if self.any_jumps:  # a step onto a jump time ends just short of it: no stage sees past it
            end = torch.where(self.is_jump[index], torch.nextafter(stop, t), stop)
            h = torch.where(clipped & state.active & self.is_jump[index], end - t, h)
        # t + h may round past the stop; one ulp shorter, so no stage within the step is beyond it.
        over = t + h > end if forward else t + h < end
        h = torch.where(over, torch.nextafter(h, self.zero), h)
        return t, h, (stop, clipped, h_try, h)

    def increment(self, state, source, t, h):
        return source.increment(t, h) if source is not None else None

    def settle(self, state, problem, solver, source, y_next, y_error, solver_state, check_finite):
        attempt = state.attempt
        accept, underflow, landed, rows = self._settle(
            state, attempt, y_next, y_error, solver_state
        )
        self._count(self.nfe_step, state.y.shape[0])
        if source is not None:
            source.commit(accept)
        self._restart(state, problem, solver, landed, rows)
        self._finish(state, rows, y_next, y_error, underflow)
        return accept

    def _restart(self, state, problem, solver, landed, rows) -> None:
        """Rows that ``landed`` on a jump time start their solver afresh there (in ``rows``)."""
        if not self.any_jumps:
            return
        restart = landed & self.is_jump[state.stop_index.clamp(max=len(self.stops) - 1)]
        rows["restarts"] = state.restarts + restart
        # A solver whose fresh state costs evaluations (first same as last) starts afresh only
        # where a row landed, which the host reads; one whose fresh state is free (a multistep
        # history of zeros) starts afresh on those rows without the read.
        if solver.nfe_init:
            if not bool(restart.any()):
                return
            self._count(solver.nfe_init, state.y.shape[0])
        fresh = solver.init(problem, rows["t"], rows["y"])
        rows["solver_state"] = tree_where(restart, fresh, rows["solver_state"])

    def _settle(self, state, attempt, y_next, y_error, solver_state, in_place=True):
        """Tensor work only: ``(accept, underflow, landed, rows)`` for the proposal ``attempt``,
        ``rows`` the state's new per-row values by name. The saved outputs are written in place,
        or (not ``in_place``, for a loop whose body may not write to its inputs) to a copy, in
        ``rows["saved"]``."""
        next_stop, clipped, h_try, h = attempt
        y, active = state.y, state.active
        # Step sizes are not differentiated: gradients flow through the steps taken, not through
        # the choice of the next one (nor into the bridge's record of the path's times).
        accept, h_next, controller_state = self.controller.adapt(
            y.detach(), y_next.detach(), _detached(y_error), h_try, state.controller_state
        )
        accept = accept & active
        landed = accept & clipped
        t = torch.where(accept, torch.where(clipped, next_stop, state.t + h), state.t)
        # A step shortened to land on a stop says little about the step size the error allows:
        # keep the longer proposal; a zero-length step (landing on t0) says nothing.
        h_next = torch.where(landed, torch.maximum(h_next, state.h), h_next)
        h_next = torch.where(h_try > 0, h_next, state.h)  # h_try is 0 on finished rows
        saved = state.saved
        if self.n_save:
            stop = state.stop_index.clamp(max=len(self.stops) - 1)
            saved = self._save(state, landed, stop, y_next, in_place)
        stop_index = state.stop_index + landed
        t_next = t + h_next if self.forward else t - h_next
        still = t_next == t
        stuck = (h_next < self.h_least) | still
        # an accepted step after which the controller's next cannot move t stalls as surely
        underflow = active & ((~accept & stuck) | (accept & still & (stop_index < len(self.stops))))
        rows = {
            "t": t,
            "y": tree_where(accept, y_next, y),
            "h": h_next,
            "solver_state": tree_where(accept, solver_state, state.solver_state),
            "controller_state": controller_state,
            "stop_index": stop_index,
            "active": active & (stop_index < len(self.stops)) & ~underflow,
            "status": torch.where(underflow, int(Status.DT_MIN), state.status),
            "attempts": state.attempts + active,
            "accepted": state.accepted + accept,
            "restarts": state.restarts,
        }
        if not in_place:
            rows["saved"] = saved
        return accept, underflow, landed, rows

    def _finish(self, state, rows, y_next, y_error, underflow):
        y = state.y
        for name, value in rows.items():
            setattr(state, name, value)
        state.i += 1
        self.recorded_graph = y_next is not None and y_next.requires_grad
        # A shared decision names its worst sample from these when it fails (read a step late
        # on a GPU); per sample the failed rows say it, and state-sized tensors are not kept.
        keep = not self.per_sample
        state.attempt = (y, y_next, y_error, underflow) if keep else (None, None, None, underflow)

    def run_compiled(self, state, problem, solver, source, bar, throw, check_finite):
        """:func:`_integrate` with every attempt after the first (which checks the problem's
        outputs) one compiled call: the proposal, the Brownian bridge's draw and commit, the
        step, the controller and the bookkeeping fuse into a few kernels. The bridge's packing,
        its normal draws and the loop's flags stay outside. On CPU, small states take several
        attempts per call (:meth:`_compiled_loop`). Falls back to eager attempts, with one
        warning, where compilation is unavailable."""
        shown = not bar.disable
        while state.running:
            flags = False
            if state.i > 0:
                flags = self._compiled_loop(state, problem, solver, source, shown, throw)
                if flags is False:
                    flags = self._compiled_attempt(state, problem, solver, source, shown)
            if flags is False:
                _attempt_eagerly(problem, solver, self, source, state, check_finite)
                flags = None
            self.report(state, bar, throw, flags)
        if check_finite:
            _check_states(state, self.t0, self.t1)

    def _compiled_attempt(self, state, problem, solver, source, shown):
        """One attempt through :func:`_per_sample_attempt`: its flags for :meth:`report`, or
        ``False`` where it did not compile (the state has not changed then)."""
        dynamic = None if self.compact else False
        if _compiled.get((_per_sample_attempt, type(solver), dynamic), True) is None:
            return False
        points = z1 = z2 = slot = slot_tensor = None
        if source is not None:
            z1, z2, slot = source.prepare()
            points = source.points()
            slot_tensor = self._int_tensor(slot, state.y.device)
        args = (solver, self, problem, state, points, z1, z2, slot_tensor, shown)
        result = _through_compile(_per_sample_attempt, *args, dynamic=dynamic)
        if result is None:  # the eager attempt draws afresh: other numbers, the same law
            return False
        flags, underflow, landed, rows, bridge, step = result
        y_next, y_error = (None, None) if step is None else step
        self._count(self.nfe_step, state.y.shape[0])
        if source is not None:
            source.settle(*bridge)
        self._restart(state, problem, solver, landed, rows)
        self._finish(state, rows, y_next, y_error, underflow)
        return flags

    def _compiled_loop(self, state, problem, solver, source, shown, throw):
        """Several attempts through :func:`_per_sample_attempts`: their flags for
        :meth:`report`, or ``False`` where the loop does not serve (the state has not changed
        then). It serves per-sample solves on CPU (where reading the flags each attempt does not
        stall a device) without jump times whose loop state, the saved outputs included, stays
        small (it is copied once per attempt), and that record no graph for backpropagation."""
        key = (_per_sample_attempts, type(solver), False)
        if not self.loops or _compiled.get(key, True) is None:
            return False
        looped = tuple(getattr(state, name) for name in _LOOPED)
        if self.looped_bytes is None:  # right after the first attempt, which ran eagerly
            if self.recorded_graph:  # its step recorded a graph to backpropagate
                self.loops = False  # through: one attempt per call keeps it as eager steps do
                return False
            # the state's shapes stay (no compaction in a loop)
            self.looped_bytes = sum(x.numel() * x.element_size() for x in tree_flatten(looped)[0])
        if self.looped_bytes + (0 if source is None else source.nbytes) > LOOP_BYTES:
            # for the rest of the solve: buffers grown this far by rejections are usually a
            # sign of more to come, and a loop per attempt costs little next to such a state
            self.loops = False
            return False
        most = (
            LOOP_ATTEMPTS
            if self.max_steps is None
            else min(LOOP_ATTEMPTS, self.max_steps - state.i)
        )
        z1 = z2 = points = None
        slot = self._int_tensor(0, state.y.device)
        if source is not None:
            z1, z2, first = source.prepare_attempts(most)
            most, points = len(z1), source.points()[:5]  # prepared: packed, maybe grown
            slot = self._int_tensor(first, state.y.device)
        leaves, structure = tree_flatten((looped, points, torch.zeros_like(state.active)))
        args = (solver, self, problem, leaves, structure, state.restarts, self.rows, z1, z2, slot)
        most_tensor = self._int_tensor(most, state.y.device)
        result = _through_compile(_per_sample_attempts, *args, most_tensor, throw, warn=False)
        if result is None:  # unavailable: one attempt per compiled call instead
            if source is not None:
                source.settle_attempts(source.points(), 0, most)
            return False
        taken, *carried = result
        taken = int(taken)
        looped, points, underflow = tree_unflatten(structure, iter(carried))
        self._count(self.nfe_step * taken, state.y.shape[0])
        if source is not None:
            source.settle_attempts(points, taken, most)
        for name, value in zip(_LOOPED, looped, strict=True):
            setattr(state, name, value)
        state.i += taken
        state.attempt = (None, None, None, underflow)
        return self._flags(state.t, state.active, underflow, shown)

    def _int_tensor(self, value: int, device) -> torch.Tensor:
        """``value`` (a slot, a number of attempts) as a 0-d tensor, made once per value (a copy
        to the device each time)."""
        if value not in self.int_tensors:
            self.int_tensors[value] = torch.tensor(value, device=device)
        return self.int_tensors[value]

    def _save(self, state, landed, stop, y, in_place=True):
        """Rows that landed on a save time write the state they reached, ``y``, to its slot;
        returns the saved outputs (a copy where not ``in_place``: per sample only)."""
        slot = self.save_slot[stop]
        save_now = landed & (slot >= 0)
        slot = slot.clamp(min=0)
        ys = state.saved
        if self.per_sample:
            rows = (slot, self.rows)
            value = torch.where(bcast(save_now, y), y, ys[rows])
            return ys.index_put_(rows, value) if in_place else ys.index_put(rows, value)
        ys[slot] = torch.where(save_now, y, ys[slot])
        return ys

    def _flags(self, t, active, underflow, shown: bool) -> torch.Tensor:
        """What the host reads after an attempt: rows running, any underflow, and the progress
        where a bar is ``shown``."""
        done = ((t - self.t0) * self.direction).min() if shown else t.new_zeros(())
        return torch.stack([active.sum().to(t.dtype), underflow.any().to(t.dtype), done])

    def report(self, state, bar, throw, flags=None):
        """Read the attempt's ``flags`` (:meth:`_flags`, computed here unless given) and act on
        them: progress, failures, the end, compaction."""
        shown = not bar.disable
        if flags is None:
            flags = self._flags(state.t, state.active, state.attempt[-1], shown)
        if self.lagged:
            flags, attempt = self._lagged(flags, state.attempt)
            if flags is None:
                return
        else:
            attempt = state.attempt
        y, y_next, y_error, underflow = attempt
        n_active, any_failed, done = flags.tolist()
        if shown:
            done = min(done, self.progress_total)  # rounding must not push the bar past its end
            bar.update(done - self.done_before)
            self.done_before = done
        if any_failed and throw:
            error = getattr(self.controller, "error", None)
            if not self.per_sample and error is not None:  # name the sample behind the decision
                underflow = _worst_sample(error(y, y_next, y_error, state.controller_state))
            _raise_underflow(underflow, state.t, state.h, self.controller, self.index)
        if not n_active:
            state.running = False
        elif self.max_steps is not None and state.i >= self.max_steps:
            state.status = torch.where(state.active, int(Status.MAX_STEPS), state.status)
            if throw:
                _raise_budget(state.active, state.t, state.h, self.max_steps, self.index)
            state.running = False
        elif self.compact and 2 * n_active <= len(state.active):
            self._set_aside(state)
            self.pending = None  # its rows are those before the re-pack
        if not state.running and self.index is not None:
            for name, value in self._results(state).items():
                setattr(state, name, value)
            self.index = None

    def _lagged(self, flags, attempt):
        """The flags of the previous attempt, and that attempt; ``(None, None)`` after the first.

        Reading the flags of the attempt just taken would make the host wait for the device to
        finish it. Instead they are copied to pinned host memory without waiting, and the host
        waits only for the previous attempt's copy, by which time this attempt is queued behind
        it: the device never runs dry, and at most one attempt is taken after every sample ended
        (on finished rows ``h = 0``: nothing moves). An underflow is raised one attempt late, from
        that attempt's tensors; its rows stopped there, so their time and step are unchanged.
        """
        if flags.device.type == "cuda":
            host = torch.empty(flags.shape, dtype=flags.dtype, pin_memory=True)
            host.copy_(flags, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host, event = flags, None
        previous, self.pending = self.pending, (host, event, attempt)
        if previous is None:
            return None, None
        host, event, attempt = previous
        if event is not None:
            event.synchronize()
        return host, attempt

    def _count(self, nfe: int, rows: int) -> None:
        self.nfe_batch += nfe
        self.nfe_rows += nfe * rows

    def _set_aside(self, state) -> None:
        """Keep stepping only the running rows; the results of the rest go to ``done``."""
        keep = state.active.nonzero().squeeze(1)
        self.done = self._results(state)
        self.index = keep if self.index is None else self.index[keep]
        for name in _PER_SAMPLE:
            setattr(state, name, tree_take(getattr(state, name), keep))
        state.saved = tree_take(state.saved, keep, dim=1)
        if self.source is not None:
            self.source.select(keep)
        self.rows = torch.arange(len(keep), device=keep.device)

    def _results(self, state) -> dict:
        """The batch's results: the rows being stepped written over those set aside."""
        if self.index is None:
            return {name: getattr(state, name) for name in _RESULTS}
        done = dict(self.done)
        rows = state.y.shape[0]
        if rows != len(self.index):
            raise InputValueError(
                f"with compact=True the solve steps only the {len(self.index)} samples not yet "
                f"finished, but the drift or diffusion returned {rows} rows for them: it holds "
                f"something per sample for the whole batch; pass compact=False"
            )
        for name in _RESULTS:
            if done[name] is not None:
                dim = 1 if name == "saved" else 0
                done[name] = done[name].index_copy(dim, self.index, getattr(state, name))
        return done

    def callback_info(self, state, t, h, accept):
        info = {"i": state.i - 1, "t": t, "h": h, "y": state.y, "accept": accept}
        if self.index is not None:  # the whole batch, as without compaction
            done, index = self._results(state), self.index
            info["t"] = self.done["t"].index_copy(0, index, t)
            info["h"] = h.new_zeros(done["t"].shape).index_copy(0, index, h)
            info["y"] = done["y"]
            info["accept"] = accept.new_zeros(done["t"].shape).index_copy(0, index, accept)
        return info

    def solution(self, state, solver, save_times, t1, like):
        stats = _stats(solver, state.attempts, state.accepted, state.restarts)
        if self.per_sample:
            stats.update(nfe_batch=self.nfe_batch, nfe_rows=self.nfe_rows)
        else:
            stats = {k: int(v) for k, v in stats.items()}
        batch = state.y.shape[0]
        failed = bool((state.status != Status.OK).any())
        status = state.status.expand(batch).clone() if failed else None
        t_stopped = state.t.expand(batch).clone() if failed else None
        if state.saved is None:
            ys = state.y.unsqueeze(0)
            return Solution(torch.tensor([t1], **like), ys, stats, status, t_stopped)
        saved = state.saved
        if failed:  # unreached save times hold NaN; the last, the last accepted state
            stopped = state.status.expand(batch) != Status.OK
            t = state.t.expand(batch)
            ts = torch.tensor(save_times, dtype=t.dtype, device=t.device)
            unreached = ((ts[:, None] - t) * self.direction > 0) & stopped
            unreached = unreached.view(*unreached.shape, *(1,) * (saved.dim() - 2))
            saved = torch.where(unreached, math.nan, saved)
            saved[-1] = torch.where(bcast(stopped, state.y), state.y, saved[-1])
        return Solution(torch.tensor(save_times, **like), saved, stats, status, t_stopped)


def _detached(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.detach()


def _count_extra_diffusion_calls(stats: dict, calls: int, batch: int) -> None:
    for key in ("nfe", "nfe_diffusion", "nfe_batch"):
        if key in stats:
            stats[key] = stats[key] + calls
    if "nfe_rows" in stats:
        stats["nfe_rows"] += calls * batch


def _stats(solver, attempts, accepted, restarts) -> dict:
    nfe_drift = solver.nfe_init * (1 + restarts) + attempts * solver.nfe_drift
    nfe_diffusion = attempts * solver.nfe_diffusion
    return {
        "nfe": nfe_drift + nfe_diffusion,
        "nfe_drift": nfe_drift,
        "nfe_diffusion": nfe_diffusion,
        "steps": attempts,
        "accepted": accepted,
        "rejected": attempts - accepted,
    }


# --------------------------------------------------------------------------- errors


def _worst_sample(err: torch.Tensor) -> torch.Tensor:
    """A one-hot mask of the sample with the largest (NaN counted as infinite) error."""
    err = torch.nan_to_num(err, nan=math.inf)
    return torch.arange(len(err), device=err.device) == err.argmax()


def _first_index(mask: torch.Tensor) -> int:
    return int(mask.reshape(-1).nonzero()[0]) if mask.dim() else 0


def _least_step(controller, y0: torch.Tensor) -> float:
    """The step below which a rejected step ends an adaptive solve (as does one too short to move
    ``t`` in ``y0``'s dtype): ``dt_min``, and at least the smallest normal number of the dtype.
    Near ``t = 0`` a step can shrink far below ``t``'s resolution elsewhere; below that bound
    (1.2e-38 in float32) the Brownian sources' arithmetic divides by it and overflows."""
    return max(controller.dt_min, torch.finfo(y0.dtype).tiny)


def _raise_underflow(underflow, t, h_abs, controller, index) -> None:
    i = _first_index(underflow)
    t_i = float(t.reshape(-1)[i] if t.dim() else t)
    h_i = float(h_abs.reshape(-1)[i] if h_abs.dim() else h_abs)
    sample = i if index is None else int(index[i])  # index: the batch's rows, once compacted
    least = "" if controller.dt_min > 0 else ", too short to move t in its dtype"
    raise SolveError(
        f"step size fell below dt_min={controller.dt_min:g} at t={t_i:g} (sample {sample}, last "
        f"|h|={h_i:.3g}{least}): the error estimate stays above tolerance or is non-finite "
        f"there (or the controller shrinks accepted steps). Loosen rtol/atol, lower dt_min, "
        f"check the problem for blow-up, or pass throw=False",
        Status.DT_MIN,
        sample=sample,
    )


def _raise_budget(active, t, h_abs, max_steps, index) -> None:
    i = _first_index(active)
    t_i = float(t.reshape(-1)[i] if t.dim() else t)
    h_i = float(h_abs.reshape(-1)[i] if h_abs.dim() else h_abs)
    sample = i if index is None else int(index[i])
    raise SolveError(
        f"max_steps={max_steps} reached at t={t_i:g} (sample {sample}, last |h|={h_i:.3g}); raise "
        f"max_steps (None: no limit), loosen the tolerances, or pass throw=False",
        Status.MAX_STEPS,
        sample=sample,
    )

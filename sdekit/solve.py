"""The solve loop: one loop for fixed and adaptive steps, shared or per-sample time.

Each iteration asks the Brownian source for the increment over ``[t, t + h]``, lets the solver
step, and (adaptive) lets the controller accept or reject and propose the next ``h``; the source is
told what was accepted, so a source that keeps one path can bridge a rejected interval instead of
re-drawing it. Steps land exactly on ``saveat`` times and on ``t1``.

Fixed steps run on Python floats for the step size and precomputed 0-d time tensors, so the loop
adds nothing per step beyond the solver's own work. Adaptive solves synchronise with the host once
per step (to decide whether any sample is still running).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from sdekit.errors import InputTypeError, InputValueError

from ._util import bcast, tree_where
from .brownian import BrownianSource, CallableBrownian, GaussianIncrements
from .controllers import PIDController
from .problems import as_problem
from .random import as_generator
from .solution import STATUS_DT_MIN, STATUS_MAX_STEPS, STATUS_OK, Solution, SolveError
from .solvers import resolve_solver

BROWNIAN_NAMES = ("gaussian", "redraw", "bridge")


def solve(
    problem,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    *,
    solver,
    dt: float | None = None,
    controller: PIDController | None = None,
    saveat: Sequence[float] | torch.Tensor | None = None,
    brownian=None,
    generator=None,
    max_steps: int | None = None,
    progress: bool = False,
    check_finite: bool = True,
    throw: bool = True,
) -> Solution:
    """Solve ``problem`` from ``(t0, y0)`` to ``t1``.

    Args:
        problem: an :class:`~sdekit.SDE`, an :class:`~sdekit.ODE` or a torchsde-style module.
        y0: initial state, shape ``(batch, *event_shape)``, floating point.
        t0, t1: start and end times; ``t1 < t0`` integrates backward in time.
        solver: a solver name (``sdekit.solvers.SDE_SOLVERS`` / ``ODE_SOLVERS``) or instance.
        dt: fixed step size (``|dt|``; its sign follows the direction). With a controller it is
            the initial step.
        controller: an adaptive step-size controller (e.g. :class:`~sdekit.PIController`).
        saveat: times in ``[t0, t1]``, ordered in the direction of integration, that steps land
            on exactly; the solution holds the state at each of them.
        brownian: ``None``/``"gaussian"``/``"redraw"`` (fresh Gaussian increments; a rejected
            step's retry draws new noise), ``"bridge"`` (one Brownian path per sample, bridged on
            rejection), a :class:`~sdekit.brownian.BrownianSource`, or any object called as
            ``bm(ta, tb, return_U=False, return_A=False)`` such as ``torchsde.BrownianInterval``.
        generator: ``None``, an int seed, a ``torch.Generator`` or one generator per sample.
        max_steps: bound on attempted steps (adaptive); exceeding it is an error.
        progress: show a tqdm progress bar.
        check_finite: raise if the state becomes NaN/Inf (checked at save points and at the end).
        throw: with ``False`` an adaptive solve that cannot finish returns with ``status`` set
            instead of raising.
    """
    problem = as_problem(problem)
    y0 = _check_y0(y0)
    t0, t1 = _as_time(t0, "t0"), _as_time(t1, "t1")
    solver = resolve_solver(solver, problem)
    save_times = _check_saveat(saveat, t0, t1)
    if dt is not None and not (isinstance(dt, int | float) and math.isfinite(dt) and dt > 0):
        raise InputValueError(f"dt={dt!r}: the step size must be a positive finite number")
    if controller is None and dt is None:
        raise InputValueError("give dt=... for fixed steps or controller=... for adaptive steps")
    if max_steps is not None and not (isinstance(max_steps, int) and max_steps > 0):
        raise InputValueError(f"max_steps={max_steps!r}: must be a positive int")
    per_sample = controller is not None and controller.per_sample
    generator = as_generator(generator, y0.device)
    source = None
    if problem.noise is not None:
        source = _brownian_source(brownian, problem, y0, generator, solver.levy_area, per_sample)
    checked = _CheckedProblem(problem, y0, source is not None and problem.layout == "general")
    if t0 == t1:
        ys = (
            y0 if save_times is None else y0.unsqueeze(0).expand(len(save_times), *y0.shape).clone()
        )
        ts = torch.tensor(
            t0 if save_times is None else save_times, dtype=y0.dtype, device=y0.device
        )
        return Solution(ts, ys, {key: 0 for key in _fixed_stats(solver, 0)})
    if controller is None:
        return _solve_fixed(
            checked, y0, t0, t1, solver, dt, save_times, source, progress, check_finite
        )
    return _solve_adaptive(
        checked,
        y0,
        t0,
        t1,
        solver,
        controller,
        dt,
        save_times,
        source,
        max_steps,
        progress,
        check_finite,
        throw,
    )


# --------------------------------------------------------------------------- checks of the inputs


def _check_y0(y0) -> torch.Tensor:
    if not isinstance(y0, torch.Tensor):
        raise InputTypeError(f"y0 must be a torch.Tensor, got {type(y0).__name__}")
    if not y0.is_floating_point():
        raise InputTypeError(f"y0 must be floating point (float32 or float64), got {y0.dtype}")
    if y0.dim() == 0:
        raise InputValueError(
            "y0 must have a batch dimension: shape (batch, *event_shape), got a 0-d tensor"
        )
    return y0


def _as_time(t, name: str) -> float:
    if isinstance(t, torch.Tensor):
        if t.numel() != 1:
            raise InputValueError(
                f"{name} must be a scalar, got a tensor of shape {tuple(t.shape)}"
            )
        t = t.item()
    if not isinstance(t, int | float) or not math.isfinite(t):
        raise InputValueError(f"{name}={t!r}: must be a finite number")
    return float(t)


def _check_saveat(saveat, t0: float, t1: float) -> list[float] | None:
    if saveat is None:
        return None
    times = [float(s) for s in (saveat.tolist() if isinstance(saveat, torch.Tensor) else saveat)]
    if not times:
        raise InputValueError(
            "saveat is empty: give at least one time, or saveat=None for the final state"
        )
    direction = 1.0 if t1 >= t0 else -1.0
    lo, hi = min(t0, t1), max(t0, t1)
    outside = [s for s in times if not lo <= s <= hi]
    if outside:
        raise InputValueError(f"saveat times {outside} lie outside [{lo}, {hi}]")
    if any(direction * (b - a) <= 0 for a, b in zip(times, times[1:], strict=False)):
        order = "increasing" if direction > 0 else "decreasing (backward solve)"
        raise InputValueError(f"saveat must be strictly {order}, got {times}")
    return times


class _CheckedProblem:
    """The problem, with its outputs checked against ``y0`` on the first call of each function."""

    def __init__(self, problem, y0: torch.Tensor, general: bool):
        self._problem = problem
        self.noise, self.calculus = problem.noise, problem.calculus
        self.layout, self.additive = problem.layout, problem.additive
        self._y0 = y0
        self.f = self._first_call(problem.f, "drift", tuple(y0.shape), "f")
        if problem.noise is not None:
            g_shape = tuple(y0.shape) + ((problem.noise_shape(y0)[-1],) if general else ())
            self.g = self._first_call(problem.g, "diffusion", g_shape, "g")
            self.g_prod = problem.g_prod

    def _first_call(self, fn, what: str, expected: tuple[int, ...], attr: str):
        def checked(t, y):
            out = fn(t, y)
            _check_output(out, what, expected, self._y0)
            setattr(self, attr, fn)
            return out

        return checked


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


def _brownian_source(brownian, problem, y0, generator, levy_area: bool, per_sample: bool):
    shape = problem.noise_shape(y0)
    kwargs = dict(dtype=y0.dtype, device=y0.device, generator=generator, levy_area=levy_area)
    if brownian is None or brownian in ("gaussian", "redraw"):
        return GaussianIncrements(shape, **kwargs)
    if brownian == "bridge":
        from .brownian.bridge import BrownianBridge

        return BrownianBridge(shape, **kwargs)
    if isinstance(brownian, BrownianSource):
        return brownian
    if isinstance(brownian, str):
        raise InputValueError(f"brownian={brownian!r}: choose one of {', '.join(BROWNIAN_NAMES)}")
    if per_sample:
        raise InputValueError(
            "a torchsde-style Brownian object gives one path for the whole batch and cannot serve "
            "per-sample step sizes; use brownian='bridge' with a per-sample controller"
        )
    return CallableBrownian(brownian, levy_area=levy_area)


def _check_finite(y: torch.Tensor, t_prev: float, t: float) -> None:
    if not torch.isfinite(y).all():
        bad = (~torch.isfinite(y.flatten(1))).any(1).nonzero().flatten().tolist()
        raise SolveError(
            f"the solution became non-finite between t={t_prev:g} and t={t:g} "
            f"(samples {bad[:10]}{'...' if len(bad) > 10 else ''}); reduce the step size, use an "
            f"adaptive controller, or pass check_finite=False to return it anyway"
        )


# --------------------------------------------------------------------------- fixed steps


def _fixed_grid(t0: float, t1: float, dt: float, save_times: list[float] | None) -> list[float]:
    """Times ``t0 + k dt`` towards ``t1``, merged with the save times; no step shorter than 1e-9·dt."""
    direction = 1.0 if t1 > t0 else -1.0
    n = math.ceil(abs(t1 - t0) / dt - 1e-9)
    grid = [t0 + direction * k * dt for k in range(n)] + [t1]
    if save_times:
        grid = sorted(set(grid) | set(save_times), reverse=direction < 0)
    tiny = 1e-9 * dt
    out = [grid[0]]
    for s in grid[1:]:
        if abs(s - out[-1]) > tiny:
            out.append(s)
        elif s in (save_times or ()) or s == t1:
            out[-1] = s
    return out


def _fixed_stats(solver, steps: int) -> dict:
    nfe_drift = solver.nfe_init + steps * solver.nfe_drift
    nfe_diffusion = steps * solver.nfe_diffusion
    return {
        "nfe": nfe_drift + nfe_diffusion,
        "nfe_drift": nfe_drift,
        "nfe_diffusion": nfe_diffusion,
        "steps": steps,
        "accepted": steps,
        "rejected": 0,
    }


def _solve_fixed(problem, y0, t0, t1, solver, dt, save_times, source, progress, check_finite):
    grid = _fixed_grid(t0, t1, dt, save_times)
    times = torch.tensor(grid, dtype=y0.dtype, device=y0.device).unbind(0)
    save_at = set(save_times) if save_times is not None else {t1}
    saved: list[torch.Tensor] = [y0] if save_times is not None and save_times[0] == t0 else []
    t_checked = t0
    y = y0
    state = solver.init(problem, times[0], y0)
    bar = tqdm(total=len(grid) - 1, disable=not progress, desc=solver.name)
    for i in range(len(grid) - 1):
        h = grid[i + 1] - grid[i]
        inc = source.increment(times[i], h) if source is not None else None
        y, _, state = solver.step(problem, times[i], y, h, inc, state)
        if grid[i + 1] in save_at:
            if check_finite:
                _check_finite(y, t_checked, grid[i + 1])
                t_checked = grid[i + 1]
            saved.append(y)
        bar.update()
    bar.close()
    stats = _fixed_stats(solver, len(grid) - 1)
    if save_times is None:
        return Solution(times[-1], saved[-1], stats)
    ts = torch.tensor(save_times, dtype=y0.dtype, device=y0.device)
    return Solution(ts, torch.stack(saved), stats)


# --------------------------------------------------------------------------- adaptive steps


def _solve_adaptive(
    problem,
    y0,
    t0,
    t1,
    solver,
    controller,
    dt,
    save_times,
    source,
    max_steps,
    progress,
    check_finite,
    throw,
):
    direction = 1.0 if t1 > t0 else -1.0
    batch = y0.shape[0]
    per_sample = controller.per_sample
    tiny = 64 * torch.finfo(y0.dtype).eps * max(abs(t0), abs(t1))
    like = dict(dtype=y0.dtype, device=y0.device)
    stops = torch.tensor(
        (save_times or []) + ([] if save_times and save_times[-1] == t1 else [t1]), **like
    )
    n_save = len(save_times) if save_times is not None else 0
    shape = (batch,) if per_sample else ()
    t = torch.full(shape, t0, **like)
    stop_idx = torch.zeros(shape, dtype=torch.long, device=y0.device)
    active = torch.ones(shape, dtype=torch.bool, device=y0.device)
    status = torch.zeros(shape, dtype=torch.int8, device=y0.device)
    attempts = torch.zeros(shape, dtype=torch.long, device=y0.device)
    accepted = torch.zeros_like(attempts)
    h_abs, cstate = controller.init(solver, y0, t1 - t0, dt)
    y = y0
    state = solver.init(problem, t, y0)
    ys = y0.new_zeros((n_save, *y0.shape)) if n_save else None
    rows = torch.arange(batch, device=y0.device)
    bar = tqdm(total=abs(t1 - t0), disable=not progress, desc=solver.name)
    done_before = 0.0
    n_iter = 0
    while True:
        next_stop = stops[stop_idx.clamp(max=len(stops) - 1)]
        remaining = (next_stop - t) * direction
        # A step that would stop a rounding error short of the next stop lands on it instead.
        clipped = h_abs >= remaining - tiny
        h_try = torch.where(active, torch.minimum(h_abs, remaining), 0.0)
        h = direction * h_try
        # t + h may round past the stop; step one ulp shorter so no stage is evaluated beyond it.
        over = (t + h - next_stop) * direction > 0
        h = torch.where(over, torch.nextafter(h, torch.zeros_like(h)), h)
        inc = source.increment(t, h) if source is not None else None
        y_next, y_err, state_next = solver.step(problem, t, y, h, inc, state)
        accept, h_next, cstate_next = controller.adapt(y, y_next, y_err, h_try, cstate)
        accept = accept & active
        if source is not None:
            source.commit(accept)
        attempts = attempts + active
        accepted = accepted + accept
        landed = accept & clipped
        t = torch.where(accept, torch.where(clipped, next_stop, t + h), t)
        y = tree_where(accept, y_next, y)
        state = tree_where(accept, state_next, state)
        cstate = cstate_next
        # A step shortened to land on a stop says little about the step size the error allows:
        # keep the longer proposal; a zero-length step (landing on t0) says nothing.
        h_next = torch.where(landed, torch.maximum(h_next, h_abs), h_next)
        h_abs = torch.where(active & (h_try > 0), h_next, h_abs)
        if ys is not None:
            slot = stop_idx.clamp(max=n_save - 1)
            save_now = landed & (stop_idx < n_save)
            if per_sample:
                ys.index_put_((slot, rows), torch.where(bcast(save_now, y), y, ys[slot, rows]))
            else:
                ys[slot] = torch.where(save_now, y, ys[slot])
        stop_idx = stop_idx + landed
        finished = stop_idx >= len(stops)
        underflow = ~accept & active & ((h_abs < controller.dt_min) | (t + direction * h_abs == t))
        status = torch.where(underflow, STATUS_DT_MIN, status)
        active = active & ~finished & ~underflow
        n_iter += 1
        progress_now = ((t - t0) * direction).min() if progress else torch.zeros((), **like)
        any_active, any_failed, done = torch.stack(
            [active.any(), underflow.any(), progress_now.to(y0.dtype)]
        ).tolist()
        if progress:
            bar.update(done - done_before)
            done_before = done
        if any_failed and throw:
            if not per_sample:  # name the sample that drove the shared decision
                underflow = _worst_sample(controller.error(y, y_next, y_err, cstate))
            _raise_underflow(underflow, t, h_abs, controller)
        if not any_active:
            break
        if max_steps is not None and n_iter >= max_steps:
            status = torch.where(active, STATUS_MAX_STEPS, status)
            if throw:
                _raise_budget(active, t, h_abs, max_steps)
            break
    bar.close()
    if check_finite:
        _check_finite(y, t0, t1)
    rejected = attempts - accepted
    n_drift = solver.nfe_init + attempts * solver.nfe_drift
    n_diffusion = attempts * solver.nfe_diffusion
    stats = {
        "nfe": n_drift + n_diffusion,
        "nfe_drift": n_drift,
        "nfe_diffusion": n_diffusion,
        "steps": attempts,
        "accepted": accepted,
        "rejected": rejected,
    }
    if not per_sample:
        stats = {k: int(v) for k, v in stats.items()}
    failed = bool((status != STATUS_OK).any())
    status_out = status.expand(batch).clone() if failed else None
    if ys is None:
        return Solution(torch.tensor(t1, **like), y, stats, status_out)
    return Solution(torch.tensor(save_times, **like), ys, stats, status_out)


def _worst_sample(err: torch.Tensor) -> torch.Tensor:
    """A one-hot mask of the sample with the largest (NaN counted as infinite) error."""
    err = torch.nan_to_num(err, nan=math.inf)
    return torch.arange(len(err), device=err.device) == err.argmax()


def _first_index(mask: torch.Tensor) -> int:
    return int(mask.reshape(-1).nonzero()[0]) if mask.dim() else 0


def _raise_underflow(underflow, t, h_abs, controller) -> None:
    i = _first_index(underflow)
    t_i = float(t.reshape(-1)[i] if t.dim() else t)
    h_i = float(h_abs.reshape(-1)[i] if h_abs.dim() else h_abs)
    raise SolveError(
        f"step size fell below dt_min={controller.dt_min:g} at t={t_i:g} (sample {i}, last "
        f"|h|={h_i:.3g}): the error estimate stays above tolerance or is non-finite there. Loosen "
        f"rtol/atol, lower dt_min, check the problem for blow-up, or pass throw=False"
    )


def _raise_budget(active, t, h_abs, max_steps) -> None:
    i = _first_index(active)
    t_i = float(t.reshape(-1)[i] if t.dim() else t)
    h_i = float(h_abs.reshape(-1)[i] if h_abs.dim() else h_abs)
    raise SolveError(
        f"max_steps={max_steps} reached at t={t_i:g} (sample {i}, last |h|={h_i:.3g}); raise "
        f"max_steps, loosen the tolerances, or pass throw=False"
    )

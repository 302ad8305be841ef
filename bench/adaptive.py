"""Adaptive stepping: strong error against evaluations, adaptive versus fixed steps.

For each problem and scheme, a sweep of tolerances (adaptive) and of step counts (fixed) give
(evaluations per sample, strong error) points. Each adaptive point is compared with the
fixed-step runs of the *same scheme* at the same error: the cost ratio is the adaptive
evaluations divided by the fixed-step evaluations interpolated (log-log) at that error. Below 1,
adaptivity pays (the fixed sweep is first made monotone, see ``fixed_nfe_at``). The summary is
the geometric mean over the tolerances whose error lies inside
the fixed-step sweep and whose relative error (mean |error| / mean |Y(T)|) is at most 5%: a
ratio between two runs that both miss the solution says nothing.

Problems:

- ``gbm``: ``dY = a Y dt + b Y dW`` (Itô), ``a = 1``, ``b = 0.8``, ``Y(0) = 1``, ``T = 1``;
  ``Y(T) = exp((a - b²/2) T + b W(T))``.
- ``pulse``: the same with a growth-rate pulse ``a(t) = 1 + A/(1 + ((t - 0.5)/w)²)``,
  ``w = 0.01``, ``A w π = 3``: the solution grows twenty-fold within a few hundredths of the
  horizon. Its exact solution still depends on the path only through ``W(T)``.
- ``spike``: ``dY = -(Y + Y³) dt + s(t) dW`` (additive), ``s(t) = 0.2 + S/(1 + ((t - 0.5)/w)²)``,
  ``w = 0.01``, ``S = 5``: the volatility spikes 25-fold and the solution's spread jumps from
  0.14 to 0.6. No exact solution: scored against a finer ``sosra`` solve on the same path.

Paths: on ``gbm`` and ``pulse`` every run is scored against the exact solution of its own path;
sdekit runs recover ``W(T)`` as the sum of the increments they accepted (per-sample adaptive runs
use the one-path bridge, ``brownian="bridge"``), torchsde runs read it off their
``BrownianInterval``. On ``spike`` shared-time and torchsde runs share one
``torchsde.BrownianInterval`` and are scored against ``sosra`` with ``--fine-steps`` (``2^13``)
steps on it; per-sample sdekit runs (fixed and adaptive alike) record the increments and Lévy
areas they accepted and are scored against ``sosra`` on that path with every accepted step cut
into ``2^REFINE_LEVELS = 16`` pieces by the Brownian bridge (about 64x more accurate).

Schemes: sdekit ``improved_euler`` (Stratonovich form; per-sample control, and shared-time
control), sdekit ``sosri`` and ``sriw1`` (Itô form, per sample), ``sosra`` and ``sra1``
(additive noise, per sample) and ``sosra`` shared time, each when registered in
``sdekit.solvers.SDE_SOLVERS``; torchsde ``euler_heun`` (Stratonovich) and ``srk`` (Itô) in their
adaptive mode (step doubling, one decision for the batch) and fixed. Evaluations are drift plus
diffusion calls per sample (a call evaluates the whole batch); torchsde's are counted by the SDE
module. sdekit's SRI/SRA schemes run with ``--srk-controller`` (default PI: Hairer's
``(0.7, 0.4)/1.5``, as StochasticDiffEq.jl's ``(7/10, 2/5)/order``) and ``--srk-rejection``
(default ``elementary``: after a rejection the step shrinks by ``s·E^(-1/k)``), the others with
``--controller`` (default I); ``--delta`` and ``--noise-error`` set the SRI/SRA error estimate
(``sdekit.solvers.srk``; ``--delta`` for every SRK scheme, else each scheme's default). sdekit's
adaptive runs give ``solve`` no ``dt``: the first step is the controllers' ``|t1 − t0|/100``, a
probe from whose error a PI controller sets the next step (``sdekit.controllers.pid``; for the I
controller that is its ordinary step). torchsde's adaptive runs start at ``dt = T/100``.

    python bench/adaptive.py --out runs/adaptive                  # default sizes, minutes
    python bench/adaptive.py --out /tmp/a --samples 200 --quick   # smoke run

Prints one table and writes ``adaptive.md`` and ``adaptive.json`` into ``--out`` only.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torchsde

import sdekit as sk
from sdekit.brownian import (
    BrownianBridge,
    BrownianSource,
    GaussianIncrements,
    Increment,
    SharedTimeBridge,
)

F64 = torch.float64
USEFUL_RELATIVE_ERROR = 0.05
REFINE_LEVELS = 4


def _column(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, 1) if t.dim() else t


def _lorentzian(t: torch.Tensor, area: float, width: float, centre: float = 0.5):
    return area / (width * math.pi) / (1 + ((t - centre) / width) ** 2)


# --------------------------------------------------------------------------- problems


@dataclass
class Multiplicative:
    """``dY = a(t) Y dt + b Y dW`` (Itô) with ``a(t) = a + pulse``; exact through ``W(T)``."""

    name: str
    a: float = 1.0
    b: float = 0.8
    pulse_area: float = 0.0
    pulse_width: float = 0.01
    horizon: float = 1.0
    exact_path = True
    noise = "diagonal"

    def growth(self, t: torch.Tensor) -> torch.Tensor:
        return self.a + _lorentzian(_column(t), self.pulse_area, self.pulse_width)

    def exact(self, y0: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
        c, w, T = 0.5, self.pulse_width, self.horizon
        integral = self.a * T + self.pulse_area / math.pi * (
            math.atan((T - c) / w) + math.atan(c / w)
        )
        return y0 * torch.exp(integral - self.b**2 / 2 * T + self.b * w_t)

    def drift(self, calculus: str):
        shift = self.b**2 / 2 if calculus == "stratonovich" else 0.0
        return lambda t, y: (self.growth(t) - shift) * y

    def diffusion(self, t, y):
        return self.b * y


@dataclass
class VolatilitySpike:
    """``dY = -(Y + Y³) dt + s(t) dW`` with a 25-fold spike of ``s`` at ``t = 0.5``."""

    name: str
    base: float = 0.2
    spike_area: float = 5.0 * 0.01 * math.pi
    spike_width: float = 0.01
    horizon: float = 1.0
    exact_path = False
    noise = "additive"

    def drift(self, calculus: str):
        return lambda t, y: -(y + y**3)

    def diffusion(self, t, y):
        return (self.base + _lorentzian(_column(t), self.spike_area, self.spike_width)).expand_as(y)


PROBLEMS = {
    "gbm": Multiplicative("gbm"),
    "pulse": Multiplicative("pulse", pulse_area=3.0),
    "spike": VolatilitySpike("spike"),
}


def initial_state(problem, samples: int) -> torch.Tensor:
    if problem.exact_path:
        return torch.ones(samples, 1, dtype=F64)
    return torch.linspace(-1.0, 1.0, samples, dtype=F64).reshape(samples, 1)


def shared_path(problem, samples: int, seed: int, fine_steps: int):
    return torchsde.BrownianInterval(
        0.0,
        problem.horizon,
        size=(samples, 1),
        dtype=F64,
        entropy=seed,
        dt=problem.horizon / fine_steps,
        levy_area_approximation="space-time",
    )


# --------------------------------------------------------------------------- sdekit runs


class PathRecorder(BrownianSource):
    """Passes a source through and records the increments each sample accepted.

    Fixed steps never call ``commit``: an increment not followed by one counts as accepted.
    ``total()`` is ``W(T) - W(0)``; ``reference(...)`` solves again on the same path, finer.
    """

    def __init__(self, source: BrownianSource, shape: tuple[int, ...]):
        self.source = source
        self.levy_area = source.levy_area
        self._shape = shape
        self._steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (h, dW, K)
        self._pending: tuple | None = None

    def increment(self, t, h):
        self._flush()
        inc = self.source.increment(t, h)
        h = torch.as_tensor(h, dtype=F64).abs().expand(self._shape[:1])
        self._pending = (h, inc.dW, None if inc.H is None else inc.H * _column(h))
        return inc

    def commit(self, accept):
        self.source.commit(accept)
        self._flush(accept.expand(self._shape[:1]))

    def _flush(self, accept: torch.Tensor | None = None):
        if self._pending is None:
            return
        h, dW, area = self._pending
        if area is None:  # the solver saw no Lévy area: any consistent one will do
            area = (
                torch.randn(dW.shape, dtype=F64, generator=self._generator())
                * (_column(h) ** 3 / 12).sqrt()
            )
        if accept is not None:
            mask = _column(accept)
            h, dW, area = torch.where(accept, h, 0.0), dW * mask, area * mask
        self._steps.append((h, dW, area))
        self._pending = None

    def _generator(self) -> torch.Generator:
        if not hasattr(self, "_refine"):
            self._refine = torch.Generator().manual_seed(12345)
        return self._refine

    def total(self) -> torch.Tensor:
        self._flush()
        return sum(dW for _, dW, _ in self._steps)

    def reference(self, problem, y0: torch.Tensor) -> torch.Tensor:
        """``Y(T)`` by ``sosra`` on the recorded path, every recorded step cut into
        ``2**REFINE_LEVELS`` pieces by bisection with the Brownian bridge given its increment
        and Lévy area (so about ``2**(1.5 REFINE_LEVELS)`` times more accurate than the run)."""
        self._flush()
        solver = sk.solvers.resolve_solver("sosra", sdekit_problem(problem, "ito"))
        sde = sk.as_problem(sdekit_problem(problem, "ito"))
        t = torch.zeros(y0.shape[0], dtype=F64)
        y = y0
        for h, dW, area in self._steps:
            if not h.any():  # every sample rejected or finished
                continue
            pieces = [(h, dW, area)]
            for _ in range(REFINE_LEVELS):
                pieces = [half for piece in pieces for half in _bisect(*piece, self._generator())]
            for piece_h, piece_dW, piece_area in pieces:
                inc = Increment(piece_dW, piece_area / _column(piece_h).clamp_min(1e-300))
                y, _, _ = solver.step(sde, t, y, piece_h, inc, None)
                t = t + piece_h
        return y


def _bisect(h, dW, area, generator):
    """The two halves' ``(h, dW, K)`` of an interval of length ``h`` with increment ``dW`` and
    area ``K = h·H``, drawn from the Brownian bridge (the split formula of
    ``sdekit.brownian.bridge`` at ``x = 1/2``)."""
    length = _column(h)
    z1, z2 = (torch.randn(dW.shape, dtype=F64, generator=generator) for _ in range(2))
    safe = length.clamp_min(1e-300)
    left_dW = dW / 2 + 1.5 * area / safe + (length / 16).sqrt() * z1
    left_area = area / 8 - length**1.5 / 16 * z1 + (length**3 / 192).sqrt() * z2
    right_dW = dW - left_dW
    right_area = area - left_area - length * (left_dW - right_dW) / 4
    return (h / 2, left_dW, left_area), (h / 2, right_dW, right_area)


@dataclass
class Point:
    problem: str
    method: str
    mode: str  # "fixed" or "adaptive"
    setting: float  # steps (fixed) or tolerance (adaptive)
    nfe: float
    error: float
    relative_error: float
    rejected: float
    seconds: float
    ratio: float | None = None
    extrapolated: bool = False


SDEKIT_METHODS = {
    # name: (solver, calculus, per-sample adaptive)
    "sdekit improved_euler": ("improved_euler", "stratonovich", True),
    "sdekit improved_euler shared": ("improved_euler", "stratonovich", False),
    "sdekit sosri": ("sosri", "ito", True),
    "sdekit sriw1": ("sriw1", "ito", True),
    "sdekit sosra": ("sosra", "ito", True),
    "sdekit sra1": ("sra1", "ito", True),
    "sdekit sosra shared": ("sosra", "ito", False),
}
SRK = ("sosri", "sriw1", "sosra", "sra1")


def sdekit_problem(problem, calculus: str) -> sk.SDE:
    return sk.SDE(problem.drift(calculus), problem.diffusion, problem.noise, calculus)


def run_sdekit(problem, method: str, setting: float, adaptive: bool, args, path) -> Point:
    solver, calculus, per_sample = SDEKIT_METHODS[method]
    sde = sdekit_problem(problem, calculus)
    y0 = initial_state(problem, args.samples)
    if per_sample:  # per-sample paths are the run's own, recorded
        path = None
    if solver in SRK:
        options = {} if args.delta is None else {"delta": args.delta}
        solver = sk.solvers.SDE_SOLVERS[solver](noise_error=args.noise_error, **options)
    if path is None:
        levy_area = sk.solvers.resolve_solver(solver, sde).levy_area
        kind = GaussianIncrements  # fixed steps; adaptive ones keep one path, as solve() does
        if adaptive:
            kind = BrownianBridge if per_sample else SharedTimeBridge
        source = kind(
            y0.shape,
            dtype=F64,
            device=y0.device,
            generator=torch.Generator().manual_seed(args.seed),
            levy_area=levy_area,
        )
        brownian = PathRecorder(source, y0.shape)
    else:
        brownian = path
    if adaptive:
        srk_scheme = isinstance(solver, sk.solvers.SRI | sk.solvers.SRA)
        kind = args.srk_controller if srk_scheme else args.controller
        srk = {"rejection": args.srk_rejection} if srk_scheme else {}
        controller = kind(
            rtol=setting, atol=setting, per_sample=per_sample, factor_max=args.factor_max, **srk
        )
        options = dict(controller=controller)  # no dt: the controller's start-up probe
    else:
        options = dict(dt=problem.horizon / setting, check_finite=False)
    start = time.perf_counter()
    sol = sk.solve(sde, y0, 0.0, problem.horizon, solver=solver, brownian=brownian, **options)
    seconds = time.perf_counter() - start
    if path is not None:
        target = args.reference[problem.name]
    elif problem.exact_path:
        target = problem.exact(y0, brownian.total())
    else:
        target = brownian.reference(problem, y0)
    stats = {k: torch.as_tensor(v, dtype=F64).mean().item() for k, v in sol.stats.items()}
    return _point(problem, method, setting, adaptive, stats, sol.ys[-1], target, seconds)


def _point(problem, method, setting, adaptive, stats, ys, target, seconds) -> Point:
    error = (ys - target).abs().mean().item()
    relative = error / target.abs().mean().item()
    rejected = stats["rejected"] / stats["steps"] if stats.get("steps") else math.nan
    mode = "adaptive" if adaptive else "fixed"
    return Point(
        problem.name, method, mode, setting, stats["nfe"], error, relative, rejected, seconds
    )


# --------------------------------------------------------------------------- torchsde runs

TORCHSDE_METHODS = {
    # name: (torchsde method, calculus)
    "torchsde euler_heun": ("euler_heun", "stratonovich"),
    "torchsde srk": ("srk", "ito"),
}


class CountingSDE(torch.nn.Module):
    """A torchsde module that counts its drift and diffusion calls."""

    def __init__(self, problem, calculus: str):
        super().__init__()
        self.noise_type = "diagonal"
        self.sde_type = calculus
        self._drift = problem.drift(calculus)
        self._diffusion = problem.diffusion
        self.calls = 0

    def f(self, t, y):
        self.calls += 1
        return self._drift(torch.as_tensor(t, dtype=y.dtype), y)

    def g(self, t, y):
        self.calls += 1
        return self._diffusion(torch.as_tensor(t, dtype=y.dtype), y)


def run_torchsde(problem, method: str, setting: float, adaptive: bool, args, path) -> Point:
    name, calculus = TORCHSDE_METHODS[method]
    sde = CountingSDE(problem, calculus)
    y0 = initial_state(problem, args.samples)
    bm = path
    if bm is None:
        bm = torchsde.BrownianInterval(
            0.0,
            problem.horizon,
            size=y0.shape,
            dtype=F64,
            entropy=args.seed,
            dt=None if adaptive else problem.horizon / setting,
            levy_area_approximation="space-time" if name == "srk" else "none",
            halfway_tree=adaptive,
            tol=1e-10 if adaptive else 0.0,
        )
    ts = torch.tensor([0.0, problem.horizon], dtype=F64)
    if adaptive:
        options = dict(
            dt=problem.horizon / 100, adaptive=True, rtol=setting, atol=setting, dt_min=1e-9
        )
    else:
        options = dict(dt=problem.horizon / setting)
    start = time.perf_counter()
    with torch.no_grad():
        ys = torchsde.sdeint(sde, y0, ts, bm=bm, method=name, **options)[-1]
    seconds = time.perf_counter() - start
    if path is None:
        target = problem.exact(y0, bm(0.0, problem.horizon))
    else:
        target = args.reference[problem.name]
    stats = dict(nfe=float(sde.calls))
    return _point(problem, method, setting, adaptive, stats, ys, target, seconds)


# --------------------------------------------------------------------------- equal-error ratios


def fixed_nfe_at(error: float, fixed: list[Point]) -> tuple[float, bool]:
    """Fixed-step evaluations at ``error``: log-log interpolation over the sweep (end segments
    extended outside it; the flag says so).

    The sweep is first made monotone from its finest run down: a coarser run counts only if its
    error exceeds that of every finer one. A coarse grid that happens to straddle a feature
    well (16 steps with the pulse at a grid point) is luck that more steps would lose, not the
    cost of reaching that error with fixed steps."""
    envelope, worst = [], 0.0
    for p in sorted(fixed, key=lambda p: -p.nfe):
        if p.error > worst:
            envelope.append(p)
            worst = p.error
    points = sorted(((math.log(p.error), math.log(p.nfe)) for p in envelope), reverse=True)
    x = math.log(error)
    inside = points[-1][0] <= x <= points[0][0]
    if x >= points[0][0]:
        (x0, y0), (x1, y1) = points[0], points[1]
    elif x <= points[-1][0]:
        (x0, y0), (x1, y1) = points[-2], points[-1]
    else:
        k = next(i for i in range(len(points) - 1) if points[i + 1][0] <= x)
        (x0, y0), (x1, y1) = points[k], points[k + 1]
    y = y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 != x0 else y0
    return math.exp(y), not inside


def add_ratios(points: list[Point]) -> list[dict]:
    summary = []
    for problem, method in dict.fromkeys((p.problem, p.method) for p in points):
        runs = [p for p in points if (p.problem, p.method) == (problem, method)]
        fixed = [p for p in runs if p.mode == "fixed" and math.isfinite(p.error)]
        adaptive = [p for p in runs if p.mode == "adaptive"]
        if len({p.error for p in fixed}) < 2:
            continue
        for p in adaptive:
            if not math.isfinite(p.error):
                continue
            reference, p.extrapolated = fixed_nfe_at(p.error, fixed)
            p.ratio = p.nfe / reference
        used = [
            p.ratio
            for p in adaptive
            if not p.extrapolated and p.relative_error <= USEFUL_RELATIVE_ERROR
        ]
        if used:
            mean = math.exp(sum(math.log(r) for r in used) / len(used))
            summary.append(
                dict(
                    problem=problem,
                    method=method,
                    ratio=mean,
                    low=min(used),
                    high=max(used),
                    points=len(used),
                )
            )
    return summary


# --------------------------------------------------------------------------- main


def table(points: list[Point], summary: list[dict]) -> str:
    lines = [
        "| problem | method | run | nfe/sample | strong error | relative | rejected "
        "| fixed nfe at equal error | ratio | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        run = f"{p.setting:g} steps" if p.mode == "fixed" else f"tol {p.setting:g}"
        rejected = "" if math.isnan(p.rejected) or p.mode == "fixed" else f"{p.rejected:.2f}"
        if p.ratio is None:
            equal = ratio = ""
        else:
            mark = "~" if p.extrapolated else ""
            equal, ratio = f"{mark}{p.nfe / p.ratio:.0f}", f"{mark}{p.ratio:.2f}"
        lines.append(
            f"| {p.problem} | {p.method} | {run} | {p.nfe:.1f} | {p.error:.2e} | "
            f"{p.relative_error:.1e} | {rejected} | {equal} | {ratio} | {p.seconds:.2f} |"
        )
    lines += [
        "",
        "| problem | method | adaptive/fixed evaluations at equal error (geometric mean) "
        "| range | tolerances used |",
        "|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['problem']} | {s['method']} | {s['ratio']:.2f} | "
            f"{s['low']:.2f}–{s['high']:.2f} | {s['points']} |"
        )
    return "\n".join(lines)


def applicable(problem, method: str) -> str | None:
    """``None`` if ``method`` runs on ``problem``, else why not."""
    if method in SDEKIT_METHODS:
        solver, _, per_sample = SDEKIT_METHODS[method]
        if solver not in sk.solvers.SDE_SOLVERS:
            return f"'{solver}' is not registered in sdekit.solvers.SDE_SOLVERS yet"
        if solver in ("sosra", "sra1") and problem.noise != "additive":
            return "SRA schemes need additive noise"
    return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--samples", type=int, default=1000, help="samples (batch) per run")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    methods = list(SDEKIT_METHODS) + list(TORCHSDE_METHODS)
    parser.add_argument("--methods", nargs="+", default=methods, choices=methods)
    parser.add_argument("--tols", nargs="+", type=float, default=[3e-2, 1e-2, 3e-3, 1e-3])
    parser.add_argument(
        "--steps", nargs="+", type=int, default=[8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    )
    parser.add_argument("--fine-steps", type=int, default=2**13, help="reference run on spike")
    parser.add_argument("--controller", choices=["i", "pi"], default="i")
    parser.add_argument(
        "--srk-controller", choices=["i", "pi"], default="pi", help="for SRI/SRA schemes"
    )
    parser.add_argument(
        "--srk-rejection",
        choices=["integral", "elementary"],
        default="elementary",
        help="step after a rejection, SRI/SRA schemes (sdekit.controllers.pid)",
    )
    parser.add_argument("--delta", type=float, help="SRI/SRA error estimate (scheme's default)")
    parser.add_argument("--noise-error", choices=["expected", "path"], default="expected")
    parser.add_argument("--factor-max", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="3 tolerances, 5 step counts")
    args = parser.parse_args(argv)
    if args.quick:
        args.tols, args.steps = [3e-2, 1e-2, 3e-3], [16, 64, 256, 1024, 2048]
    controllers = {"i": sk.IController, "pi": sk.PIController}
    args.controller = controllers[args.controller]
    args.srk_controller = controllers[args.srk_controller]
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    points: list[Point] = []
    notes: list[str] = []
    args.reference = {}
    for name in args.problems:
        problem = PROBLEMS[name]
        path = None
        if not problem.exact_path:
            path = shared_path(problem, args.samples, args.seed, args.fine_steps)
            reference = sdekit_problem(problem, "ito")
            start = time.perf_counter()
            args.reference[name] = sk.solve(
                reference,
                initial_state(problem, args.samples),
                0.0,
                problem.horizon,
                solver="sosra",
                dt=problem.horizon / args.fine_steps,
                brownian=path,
            ).ys[-1]
            notes.append(
                f"{name}: reference = sosra with {args.fine_steps} fixed steps on the shared "
                f"path ({time.perf_counter() - start:.1f} s)"
            )
        for method in args.methods:
            why_not = applicable(problem, method)
            if why_not is not None:
                notes.append(f"{name}, {method}: skipped, {why_not}")
                continue
            run = run_sdekit if method in SDEKIT_METHODS else run_torchsde
            runs = [(steps, False) for steps in args.steps] + [(tol, True) for tol in args.tols]
            for setting, adaptive in runs:
                try:
                    points.append(run(problem, method, setting, adaptive, args, path))
                except sk.SolveError as error:
                    kind = "tol" if adaptive else "steps"
                    notes.append(f"{name}, {method}, {kind} {setting:g}: failed: {error}")
    summary = add_ratios(points)
    text = table(points, summary)
    print(text)
    for note in notes:
        print("note:", note)
    notes_md = "\n".join(f"- {n}" for n in notes)
    (args.out / "adaptive.md").write_text(f"{text}\n\n{notes_md}\n")
    record = dict(points=[p.__dict__ for p in points], summary=summary, notes=notes)
    (args.out / "adaptive.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

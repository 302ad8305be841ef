"""GPU benchmark: what the samplers add to a U-Net's time, and fixed-step solve throughput.

Made for one GPU and an unattended run of under five minutes: ``--budget`` (240 s by default)
is checked before every measurement, part (b) runs first within a quarter of it, and a hard stop
at the budget plus 40 s prints what was measured. ``--quick`` shrinks everything (and leaves out
``torch.compile``, minutes on a CPU; ``--compile yes`` puts it back) so that it smoke-runs on a
CPU in seconds. On a CPU, torch runs on one thread unless ``--threads`` says otherwise.

    python bench/gpu.py [--device cuda] [--out DIR] [--budget 240]
    python bench/gpu.py --quick --device cpu

**(a) Per-step overhead of the samplers** (``em``, ``pc``, ``ode``, ``adaptive``, ``dpmpp_2m``,
``als`` by default) over a 32x32, 3-channel :class:`~sdekit_score.training.nets.UNet` of the
reference architecture (base width 64, widths x1/2/2/2, two residual blocks a level; 8.7 M
parameters, 2.9 GFLOP an image), randomly initialised, at batch 1, 16 and 128::

    overhead = (sampler wall time − Σ_calls t_net(rows of the call)) / Σ_calls t_net(rows)

where ``t_net(b)`` is one score evaluation's time at ``b`` rows, measured alone (back to back,
device synchronised before and after) at every power of two up to the batch and interpolated
linearly in between: the per-sample adaptive samplers set finished samples aside, so their later
calls have fewer rows. With every call at the full batch this is ``(wall − NFE·t_net) /
(NFE·t_net)``. Each cell is the fastest of ``--repeats`` (2) timed runs after an untimed warm-up
run, all with the same seed, so that the warm-up compiles every shape the timed runs meet.

A random network is a poor score (measured at 32x32: as a noise predictor its samples grow to
``|x| ≈ 1000`` and ``pc`` turns non-finite; as a denoiser ``ode`` needs about 700 evaluations
a sample), so the score evaluated is the exact score of ``N(0, 0.5² I)`` under the VP process
plus the U-Net's output as a noise-prediction error of weight 0.1: ``s(x, t) = −(x + 0.1 σ(t)
net(x, 999 t)) / (α(t)² 0.25 + σ(t)²)``. Every evaluation runs the whole U-Net; the samplers take
the steps of a well-behaved score. Sampler options are set for a short run, not for quality
(``SAMPLER_OPTIONS``). Variants of the score evaluation:

- ``eager``: float32 (TF32 convolutions on GPUs that have them, torch's default);
- ``compiled``: the U-Net through ``torch.compile`` (default mode: no CUDA graphs);
- ``bf16``: :class:`~sdekit_score.sampling.precision.AutocastScore` with ``amp="bf16"``;
- ``bf16+cl``: the same with ``channels_last=True``;
- optional (``--variants``): ``compiled+bf16+cl``, ``fp16``, ``fp16+cl`` (fp16: GPU only).

**(b) Fixed-step Euler–Maruyama throughput** of ``sdekit.solve`` on ``dY = −Y dt + 0.5 dW``
(diagonal noise) at states 64x8, 1024x64, 4096x256 (on a GPU also 16384x1024 and 65536x1024),
eager and ``compile=True``: microseconds a step and state elements stepped a second. The first
(compiling) run is not timed; its time is reported. ``compile=True`` compiles chunks of at least
16 steps whose noise fits ``sdekit.solve.CHUNK_ELEMENTS`` (2¹⁷ elements), so for states above
8192 elements it steps eagerly: the table says which rows were compiled.

**Not built: CUDA graphs.** Capturing a whole fixed-step sampler (or ``torch.compile``'s
``mode="reduce-overhead"``, which uses them) would remove the per-step launch cost that part (a)
measures, but nothing here could check such a capture on a GPU, so there is no column for it
rather than a column of numbers nobody measured.

Output: one markdown table per part on stdout; with ``--out DIR``, ``gpu.json`` (every
measurement) and ``gpu.md`` (the tables) in ``DIR``, the benchmark's only files (``torch.compile``
keeps its own cache, as it always does).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import inspect
import json
import math
import platform
import signal
import time
from collections.abc import Callable
from pathlib import Path

import torch

import sdekit as sk
import sdekit_score as ss
from sdekit_score.sampling.precision import AutocastScore
from sdekit_score.sampling.samplers import SAMPLER_INFO
from sdekit_score.sampling.samplers import SAMPLERS as SAMPLER_FUNCTIONS

SAMPLERS = ("em", "pc", "ode", "adaptive", "dpmpp_2m", "als")
SAMPLER_OPTIONS = {
    "em": dict(steps=30),
    "pc": dict(steps=30),  # the predictor needs beta(t) dt < 1: at least 20 steps on VP
    "ode": dict(rtol=1e-3, atol=1e-3),
    "adaptive": dict(tol=0.05),
    "dpmpp_2m": dict(steps=30),
    "als": dict(n_levels=30),
    "ggf": dict(eps_rel=0.05),
    "dpm_adaptive": dict(rtol=1e-2, atol=1e-3),
    "dpmpp_3m": dict(steps=30),
    "unipc": dict(steps=30),
    "cas": dict(n_levels=30),
}
QUICK_SAMPLER_OPTIONS = {
    "em": dict(steps=3),
    "pc": dict(steps=25, corrector_steps=0),  # the predictor needs >= 20 steps on VP
    "ode": dict(rtol=0.1, atol=0.1),
    "adaptive": dict(tol=0.5),
    "dpmpp_2m": dict(steps=3),
    "als": dict(n_levels=3),
    "ggf": dict(eps_rel=0.5),
    "dpm_adaptive": dict(rtol=0.5, atol=0.5),
    "dpmpp_3m": dict(steps=3),
    "unipc": dict(steps=3),
    "cas": dict(n_levels=3),
}
VARIANTS = ("eager", "compiled", "bf16", "bf16+cl", "compiled+bf16+cl", "fp16", "fp16+cl")
DEFAULT_VARIANTS = ("eager", "bf16", "bf16+cl", "compiled")
QUICK_VARIANTS = ("eager", "bf16", "bf16+cl")
SOLVE_SIZES = [(64, 8), (1024, 64), (4096, 256)]
SOLVE_SIZES_GPU = [(16384, 1024), (65536, 1024)]
DATA_STD = 0.5
ERROR_WEIGHT = 0.1
COMPILE_RESERVE_S = 60.0  # left in the budget before a compiled variant starts (GPU compile)
ADAPTIVE_NFE_GUESS = 200  # network calls of an adaptive sampler, until one run has been seen


class OutOfTime(Exception):
    """The hard stop: the budget plus a grace period has passed."""


class Budget:
    """Wall-clock budget: ``left()`` seconds until the deadline."""

    def __init__(self, seconds: float):
        self.start = time.perf_counter()
        self.deadline = self.start + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def used(self) -> float:
        return time.perf_counter() - self.start


# --------------------------------------------------------------------------- the score


class BenchScore(torch.nn.Module):
    """The exact VP score of ``N(0, DATA_STD² I)`` plus ``ERROR_WEIGHT`` times the network's
    output as a noise-prediction error (module docstring); one network call per evaluation."""

    def __init__(self, net: Callable, process: ss.ForwardProcess):
        super().__init__()
        self.net, self.process = net, process

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.ndim - 1)
        alpha = self.process.alpha(t).reshape(shape)
        sigma = self.process.sigma(t).reshape(shape)
        eps = ERROR_WEIGHT * sigma * self.net(x, 999.0 * t)
        return -(x + eps) / (alpha**2 * DATA_STD**2 + sigma**2)


def make_unet(quick: bool, width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if quick:
        return ss.UNet(channels=3, base_width=width, width_mults=(1, 2), num_res_blocks=1)
    return ss.UNet(channels=3, base_width=width, width_mults=(1, 2, 2, 2), num_res_blocks=2)


def make_score(variant: str, net: torch.nn.Module, device: torch.device) -> Callable:
    """The score function of ``variant`` around a fresh copy of ``net`` on ``device``."""
    net = copy.deepcopy(net).to(device).eval()
    parts = set(variant.split("+"))
    channels_last = "cl" in parts
    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # before compiling: strides are guarded
    if "compiled" in parts:
        net = torch.compile(net)
    score = BenchScore(net, ss.VPSDE())
    amp = "bf16" if "bf16" in parts else "fp16" if "fp16" in parts else "none"
    if amp == "none" and not channels_last:
        return score
    return AutocastScore(score, amp, channels_last=channels_last, device=device)


class Counted:
    """A score function that records the rows of each call (no device synchronisation)."""

    def __init__(self, score_fn: Callable):
        self.score_fn, self.rows = score_fn, []

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.shape[0])
        return self.score_fn(x, t)


def nfe_estimate(name: str, options: dict) -> int:
    """Network calls of one run: ``SAMPLER_INFO``'s NFE expression at the sampler's defaults
    updated by ``options`` for the fixed-step samplers, a guess for the adaptive ones."""
    defaults = {
        p.name: p.default
        for p in inspect.signature(SAMPLER_FUNCTIONS[name]).parameters.values()
        if p.default is not inspect.Parameter.empty
    }
    try:
        return int(eval(SAMPLER_INFO[name]["nfe"], {}, {**defaults, **options}))  # noqa: S307
    except Exception:  # noqa: BLE001 (prose: an adaptive sampler's count)
        return ADAPTIVE_NFE_GUESS


# --------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable, device: torch.device):
    """``(seconds, fn())`` with the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def batch_sizes(batch: int) -> list[int]:
    """The powers of two below ``batch``, and ``batch``: where ``t_net`` is measured."""
    sizes = [1 << k for k in range(batch.bit_length()) if (1 << k) < batch]
    return sizes + [batch]


def interpolate(times: dict[int, float], rows: int) -> float:
    """``t_net(rows)`` from the measured sizes: linear between neighbours, proportional beyond."""
    sizes = sorted(times)
    if rows in times:
        return times[rows]
    if rows < sizes[0]:
        return times[sizes[0]]
    if rows > sizes[-1]:
        return times[sizes[-1]] * rows / sizes[-1]
    hi = next(s for s in sizes if s > rows)
    lo = max(s for s in sizes if s < rows)
    w = (rows - lo) / (hi - lo)
    return (1 - w) * times[lo] + w * times[hi]


def overhead(wall: float, rows: list[int], net_times: dict[int, float]) -> tuple[float, float]:
    """``(network seconds, overhead)``: the calls' network time and ``(wall − it) / it``."""
    net = sum(interpolate(net_times, r) for r in rows)
    return net, (wall - net) / net


def net_time(score_fn, rows: int, shape, device, min_seconds: float, repeats: int = 3) -> float:
    """Seconds of one call at ``rows`` rows: calls back to back between synchronisations, the
    fastest of ``repeats`` such loops (as the sampler's time is the fastest of its runs)."""
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn((rows, *shape), generator=gen, device=device)
    t = 0.001 + 0.999 * torch.rand(rows, generator=gen, device=device)
    with torch.no_grad():
        first, _ = timed(lambda: score_fn(x, t), device)  # warm-up (compiles a new shape)
        once, _ = timed(lambda: score_fn(x, t), device)
        calls = max(1, min(50, math.ceil(min_seconds / max(once, 1e-6))))
        samples = []
        for _ in range(repeats):
            seconds, _ = timed(lambda: [score_fn(x, t) for _ in range(calls)], device)
            samples.append(seconds / calls)
    return min(samples)


# --------------------------------------------------------------------------- part (a)


def part_a(args, device, budget: Budget, results: dict) -> None:
    """Sampler overhead over the network, per variant, batch and sampler."""
    net = make_unet(args.quick, args.width)
    shape = (3, args.image_size, args.image_size)
    results["network"] = {
        "architecture": "UNet(channels=3, base_width={}, width_mults={}, num_res_blocks={})".format(
            net.conv_in.out_channels,
            "(1, 2)" if args.quick else "(1, 2, 2, 2)",
            1 if args.quick else 2,
        ),
        "parameters": sum(p.numel() for p in net.parameters()),
        "image": list(shape),
    }
    options = QUICK_SAMPLER_OPTIONS if args.quick else SAMPLER_OPTIONS
    rows = results["overhead"] = []
    nfe_guess = {name: nfe_estimate(name, options[name]) for name in args.samplers}
    min_seconds = 0.005 if args.quick else 0.05
    for variant in args.variants:
        if "compiled" in variant and not args.compile:
            rows.append({"variant": variant, "skipped": "--compile no"})
            continue
        if "compiled" in variant and budget.left() < args.compile_reserve:
            rows.append({"variant": variant, "skipped": "budget (compile reserve)"})
            continue
        try:
            score = make_score(variant, net, device)
        except Exception as err:  # noqa: BLE001 (an unsupported variant on this device)
            rows.append({"variant": variant, "skipped": f"{type(err).__name__}: {err}"})
            continue
        for batch in args.batches:
            row = {"variant": variant, "batch": batch, "samplers": {}}
            rows.append(row)
            if budget.left() <= 0:
                row["skipped"] = "budget"
                continue
            net_times = {}
            try:
                for b in batch_sizes(batch):
                    net_times[b] = net_time(score, b, shape, device, min_seconds)
            except Exception as err:  # noqa: BLE001
                row["skipped"] = f"{type(err).__name__}: {err}"
                continue
            row["net_ms"] = {b: 1e3 * s for b, s in net_times.items()}
            for name in args.samplers:
                guess = nfe_guess[name] * net_times[batch] * (1 + args.repeats)
                if budget.left() < 1.5 * guess:
                    row["samplers"][name] = {"skipped": "budget"}
                    continue
                cell = run_sampler(
                    score, name, options[name], batch, shape, device, net_times, args.repeats
                )
                row["samplers"][name] = cell
                if "calls" in cell:
                    nfe_guess[name] = cell["calls"]
        del score
        torch._dynamo.reset()


def run_sampler(score, name, options, batch, shape, device, net_times, repeats) -> dict:
    """One warm-up run, then the fastest of ``repeats`` timed runs (all with the same seed, so
    with the same calls)."""
    counted = Counted(score)

    def draw():
        return ss.sample(
            counted,
            ss.VPSDE(),
            (batch, *shape),
            sampler=name,
            generator=0,
            device=device,
            dtype=torch.float32,
            **options,
        )

    try:
        warm, _ = timed(draw, device)
        walls = []
        for _ in range(repeats):
            counted.rows = []
            wall, (x, stats) = timed(draw, device)
            walls.append(wall)
    except Exception as err:  # noqa: BLE001 (reported in the table, the run goes on)
        return {"error": f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"}
    rows = counted.rows
    wall = min(walls)
    net, ratio = overhead(wall, rows, net_times)
    return {
        "calls": len(rows),
        "mean_rows": sum(rows) / len(rows),
        "nfe_per_sample": float(stats["nfe"].float().mean()),
        "wall_s": wall,
        "net_s": net,
        "overhead": ratio,
        "warmup_s": warm,
    }


def table_a(results: dict, samplers) -> str:
    lines = [
        "| variant | batch | net ms/call | " + " | ".join(samplers) + " |",
        "|---|---:|---:|" + "---:|" * len(samplers),
    ]
    for row in results.get("overhead", []):
        if "batch" not in row:
            lines.append(f"| {row['variant']} | all | skipped: {row['skipped']} |")
            continue
        if "skipped" in row:
            lines.append(f"| {row['variant']} | {row['batch']} | skipped: {row['skipped']} |")
            continue
        cells = []
        for name in samplers:
            cell = row["samplers"].get(name, {"skipped": "not run"})
            if "overhead" in cell:
                cells.append(f"{100 * cell['overhead']:+.0f}% ({cell['calls']})")
            elif "error" in cell:
                cells.append("error")
            else:
                cells.append(f"skipped ({cell['skipped']})")
        net = row["net_ms"][row["batch"]]
        lines.append(
            f"| {row['variant']} | {row['batch']} | {net:.3f} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    lines.append(
        "Cells: overhead = (wall − network time of the calls) / network time, and the number of "
        "network calls (batched evaluations; the final denoising included)."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- part (b)


def _drift(t, y):
    return -y


def _diffusion(t, y):
    return torch.full_like(y, 0.5)


def compiled_chunk(numel: int) -> int:
    """Steps per compiled call that ``solve(..., compile=True)`` uses for a state of ``numel``
    elements, 0 where it steps eagerly (the rule of ``sdekit.solve``)."""
    module = importlib.import_module("sdekit.solve")
    chunk_steps = getattr(module, "CHUNK_STEPS", 128)
    chunk_elements = getattr(module, "CHUNK_ELEMENTS", 2**17)
    min_chunk = getattr(module, "MIN_COMPILED_CHUNK", 16)
    chunk = max(1, min(chunk_steps, chunk_elements // max(numel, 1)))
    return chunk if chunk >= min_chunk else 0


def part_b(args, device, budget: Budget, results: dict) -> None:
    """Fixed-step Euler–Maruyama through ``sdekit.solve``, eager and ``compile=True``."""
    sde = sk.SDE(_drift, _diffusion, noise="diagonal")
    sizes = [(256, 16), (1024, 16)] if args.quick else list(SOLVE_SIZES)
    if device.type == "cuda" and not args.quick:
        sizes += SOLVE_SIZES_GPU
    rows = results["solve"] = []
    dt = 0.01
    for batch, dim in sizes:
        numel = batch * dim
        chunk = compiled_chunk(numel)
        # Four compiled chunks where there are any (the first chunk always steps eagerly).
        steps = 4 * chunk if chunk else 16 if args.quick else 128 if numel <= 2**20 else 32
        row = {"state": f"{batch}x{dim}", "steps": steps, "compiled_chunk": chunk}
        rows.append(row)
        y0 = torch.ones(batch, dim, device=device)
        for mode in ("eager", "compiled"):
            compile = mode == "compiled"
            if compile and not args.compile:
                row[mode] = {"skipped": "--compile no"}
                continue
            if budget.left() <= (args.compile_reserve / 3 if compile else 0):
                row[mode] = {"skipped": "budget"}
                continue
            if compile:
                torch._dynamo.reset()  # one graph per size: below torch's recompile limit

            def run(y0=y0, steps=steps, compile=compile):
                return sk.solve(
                    sde, y0, 0.0, steps * dt, solver="euler", dt=dt, generator=0, compile=compile
                ).ys[-1]

            try:
                first, _ = timed(run, device)
                walls = [timed(run, device)[0] for _ in range(args.repeats)]
            except Exception as err:  # noqa: BLE001
                row[mode] = {"error": f"{type(err).__name__}: {err}"}
                continue
            wall = min(walls)
            row[mode] = {
                "us_per_step": 1e6 * wall / steps,
                "elements_per_s": numel * steps / wall,
                "first_run_s": first,
            }


def table_b(results: dict) -> str:
    lines = [
        "| state | eager µs/step | compile=True µs/step | speed-up | eager Melem/s | "
        "compiled Melem/s | compiled chunk | first compiled run s |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in results.get("solve", []):
        eager, comp = row.get("eager", {}), row.get("compiled", {})

        def us(cell):
            return f"{cell['us_per_step']:.1f}" if "us_per_step" in cell else _why(cell)

        def rate(cell):
            return f"{cell['elements_per_s'] / 1e6:.1f}" if "elements_per_s" in cell else "—"

        speed = (
            f"{eager['us_per_step'] / comp['us_per_step']:.2f}x"
            if "us_per_step" in eager and "us_per_step" in comp
            else "—"
        )
        chunk = f"{row['compiled_chunk']} steps" if row["compiled_chunk"] else "eager steps"
        first = f"{comp['first_run_s']:.1f}" if "first_run_s" in comp else "—"
        lines.append(
            f"| {row['state']} | {us(eager)} | {us(comp)} | {speed} | {rate(eager)} | "
            f"{rate(comp)} | {chunk} | {first} |"
        )
    lines.append("")
    lines.append(
        "compile=True compiles chunks of steps only where a chunk of at least 16 steps' noise "
        "fits 2^17 elements; larger states step eagerly (column 'compiled chunk')."
    )
    return "\n".join(lines)


def _why(cell: dict) -> str:
    if "skipped" in cell:
        return f"skipped ({cell['skipped']})"
    if "error" in cell:
        return "error"
    return "—"


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, help="default: cuda if available")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few steps (CPU)")
    parser.add_argument("--out", type=Path, default=None, help="write gpu.json and gpu.md here")
    parser.add_argument("--budget", type=float, default=None, help="seconds (240; quick 60)")
    parser.add_argument("--batches", default=None, help="comma-separated (1,16,128; quick 1,4)")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--variants", default=None, help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--width", type=int, default=None, help="U-Net base width (64; quick 8)")
    parser.add_argument("--image-size", type=int, default=None, help="32; quick 8")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs (the fastest counts)")
    parser.add_argument(
        "--compile", choices=("yes", "no"), default=None, help="compiled rows (yes; quick no)"
    )
    parser.add_argument("--parts", default="a,b", help="a, b or a,b")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (CPU device: 1 by default)"
    )
    args = parser.parse_args(argv)
    args.device = torch.device(args.device)
    args.budget = args.budget if args.budget is not None else 60.0 if args.quick else 240.0
    args.batches = [
        int(b) for b in (args.batches or ("1,4" if args.quick else "1,16,128")).split(",")
    ]
    args.samplers = [s for s in args.samplers.split(",") if s]
    variants = args.variants or ",".join(QUICK_VARIANTS if args.quick else DEFAULT_VARIANTS)
    args.variants = [v for v in variants.split(",") if v]
    for v in args.variants:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r}: choose from {', '.join(VARIANTS)}")
    for s in args.samplers:
        if s not in SAMPLER_OPTIONS:
            parser.error(f"unknown sampler {s!r}: choose from {', '.join(SAMPLER_OPTIONS)}")
    args.width = args.width or (8 if args.quick else 64)
    args.image_size = args.image_size or (8 if args.quick else 32)
    args.parts = set(args.parts.split(","))
    args.compile_reserve = 5.0 if args.quick else COMPILE_RESERVE_S
    args.compile = (args.compile or ("no" if args.quick else "yes")) == "yes"
    if args.compile and args.variants == list(QUICK_VARIANTS) and args.quick:
        args.variants.append("compiled")
    return args


@contextlib.contextmanager
def hard_stop(seconds: float):
    """Raise :class:`OutOfTime` after ``seconds`` (where SIGALRM exists, in the main thread)."""
    try:
        previous = signal.signal(signal.SIGALRM, _out_of_time)
    except (AttributeError, ValueError):  # no SIGALRM, or not the main thread
        yield
        return
    signal.alarm(max(1, math.ceil(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _out_of_time(signum, frame):
    raise OutOfTime


def describe(device: torch.device) -> dict:
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cudnn_tf32"] = torch.backends.cudnn.allow_tf32
        info["matmul_tf32"] = torch.backends.cuda.matmul.allow_tf32
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = args.device
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        # One thread by default on a CPU, as bench/overhead.py: with several, a core taken by
        # another process stalls every parallel region (measured 2 ms -> 150 ms a call).
        torch.set_num_threads(threads)
    budget = Budget(args.budget)
    results = {"machine": describe(device), "budget_s": args.budget, "quick": args.quick}
    results["sampler_options"] = {
        s: (QUICK_SAMPLER_OPTIONS if args.quick else SAMPLER_OPTIONS)[s] for s in args.samplers
    }
    try:
        with hard_stop(args.budget + 40):
            # (b) first, with at most a quarter of the budget: it is short, and a compile in (a)
            # that overruns the budget must not cost its table.
            if "b" in args.parts:
                share = 0.25 if "a" in args.parts else 1.0
                part_b(args, device, Budget(budget.left() * share), results)
            if "a" in args.parts:
                part_a(args, device, budget, results)
    except OutOfTime:
        results["stopped"] = f"hard stop at {budget.used():.0f} s: the tables are partial"
    results["elapsed_s"] = budget.used()
    text = report(args, results)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
        (args.out / "gpu.md").write_text(text + "\n")
    return results


def report(args, results: dict) -> str:
    machine = ", ".join(f"{k}={v}" for k, v in results["machine"].items())
    parts = [f"# bench/gpu.py ({'quick' if args.quick else 'full'}): {machine}", ""]
    if "a" in args.parts:
        network = results.get("network", {})
        parts += [
            "## (a) Sampler overhead over the score network",
            "",
            f"Network: {network.get('architecture', '?')}, {network.get('parameters', 0):,} "
            f"parameters, images {network.get('image', '?')}. Sampler options: "
            f"{results['sampler_options']}.",
            "",
            table_a(results, args.samplers),
            "",
        ]
    if "b" in args.parts:
        parts += ["## (b) sdekit.solve Euler–Maruyama throughput", "", table_b(results), ""]
    parts.append(f"Elapsed {results['elapsed_s']:.0f} s of a {args.budget:.0f} s budget.")
    if "stopped" in results:
        parts.append(results["stopped"])
    return "\n".join(parts)


if __name__ == "__main__":
    main()

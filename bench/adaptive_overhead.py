"""Cost per attempted step of adaptive solves, against a fixed step of the same scheme, one thread.

Improved Euler (Stratonovich) on ``dY = -Y dt + 0.5 dW`` with diagonal noise, float32, over
``[0, 10]``: fixed steps (``dt = 0.01``, fresh Gaussian increments), shared-time adaptive steps
(``IController(per_sample=False)``: one step size for the batch) and per-sample adaptive steps
(``per_sample=True``), both adaptive ones on the default one-path Brownian bridge, and both
also with ``compile=True`` (shared time: each attempt's step and error norm in one compiled
call; per sample: the whole attempt, bridge and controller included, in one compiled call,
and on small states up to 16 attempts per call, also timed with one attempt per call;
compiled in the untimed warm-up), at tolerance
``1e-4`` (about 2000–3000 attempts). The figure is the wall time of a whole solve divided by its
attempted steps (for per-sample solves the batch's attempts, the most any sample made), so it
includes everything a solve does per attempt: the bridge's draw and commit, the controller, the
loop's bookkeeping and its host reads. The minimal loop ``y = y + f h + g √h z`` (Euler) and
torchsde's adaptive ``euler_heun`` (step doubling, one decision for the batch) run in the same
process for scale. Methods alternate within each repeat; the table gives medians.

    python bench/adaptive_overhead.py --out DIR [--repeats 5] [--quick]

Prints one table; writes ``adaptive_overhead.md`` and ``.json`` into ``--out`` only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import time
from pathlib import Path

import torch
import torchsde

import sdekit as sk

SOLVE = importlib.import_module("sdekit.solve")

SIZES = [(64, 8), (1024, 64)]
T, TOL, DT_FIXED = 10.0, 1e-4, 0.01


def drift(t, y):
    return -y


def diffusion(t, y):
    return torch.full_like(y, 0.5)


SDE = sk.SDE(drift, diffusion, noise="diagonal", calculus="stratonovich")


class TorchsdeOU(torch.nn.Module):
    noise_type, sde_type = "diagonal", "stratonovich"

    def f(self, t, y):
        return drift(t, y)

    def g(self, t, y):
        return diffusion(t, y)


def minimal_loop(y0, horizon):
    steps = round(horizon / DT_FIXED)
    y, sqrt_dt = y0, math.sqrt(DT_FIXED)
    for _ in range(steps):
        y = y + drift(0.0, y) * DT_FIXED + diffusion(0.0, y) * (sqrt_dt * torch.randn_like(y))
    return steps


def fixed(y0, horizon):
    sol = sk.solve(SDE, y0, 0.0, horizon, solver="improved_euler", dt=DT_FIXED, generator=0)
    return int(sol.stats["steps"])


def adaptive(per_sample, compile=False, loop=True):
    def run(y0, horizon):
        controller = sk.IController(rtol=TOL, atol=TOL, per_sample=per_sample)
        loop_bytes = SOLVE.LOOP_BYTES
        SOLVE.LOOP_BYTES = loop_bytes if loop else 0  # 0: one attempt per compiled call
        try:
            sol = sk.solve(
                SDE,
                y0,
                0.0,
                horizon,
                solver="improved_euler",
                dt=DT_FIXED,
                controller=controller,
                compile=compile,
            )
        finally:
            SOLVE.LOOP_BYTES = loop_bytes
        return int(torch.as_tensor(sol.stats["steps"]).max())

    return run


def torchsde_adaptive(y0, horizon):
    module = TorchsdeOU()
    counted = {"n": 0}
    f = module.f

    def counting_f(t, y):
        counted["n"] += 1
        return f(t, y)

    module.f = counting_f
    ts = torch.tensor([0.0, horizon])
    torchsde.sdeint(module, y0, ts, method="euler_heun", dt=DT_FIXED, adaptive=True, rtol=TOL,
                    atol=TOL)  # fmt: skip
    return counted["n"] // 3  # step doubling: three steps' drifts per attempt (2 halves + 1)


METHODS = {
    "minimal Euler loop": minimal_loop,
    "sdekit improved_euler, fixed": fixed,
    "sdekit improved_euler, adaptive shared time": adaptive(False),
    "sdekit improved_euler, adaptive shared time, compiled": adaptive(False, compile=True),
    "sdekit improved_euler, adaptive per sample": adaptive(True),
    "sdekit improved_euler, adaptive per sample, compiled, one attempt per call": adaptive(
        True, compile=True, loop=False
    ),
    "sdekit improved_euler, adaptive per sample, compiled": adaptive(True, compile=True),
    "torchsde euler_heun, adaptive": torchsde_adaptive,
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="short horizon, one repeat")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    horizon = 0.5 if args.quick else T
    repeats = 1 if args.quick else args.repeats
    results = {}
    for shape in SIZES:
        y0 = torch.ones(shape)
        times = {name: [] for name in METHODS}
        attempts = {}
        for run in METHODS.values():  # warm-up
            run(y0, min(horizon, 0.5))
        for _ in range(repeats):
            for name, run in METHODS.items():
                start = time.perf_counter()
                attempts[name] = run(y0, horizon)
                times[name].append((time.perf_counter() - start) / attempts[name] * 1e6)
        key = f"{shape[0]}x{shape[1]}"
        results[key] = {
            name: dict(us=statistics.median(ts), attempts=attempts[name])
            for name, ts in times.items()
        }
    fixed_name = "sdekit improved_euler, fixed"
    lines = [
        "| method | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for name in METHODS:
        cells = []
        for row in results.values():
            ratio = row[name]["us"] / row[fixed_name]["us"]
            cells.append(f"{row[name]['us']:.1f} ({ratio:.2f}x), {row[name]['attempts']} att.")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print("µs per attempted step (ratio to a fixed improved Euler step), attempts per solve")
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "adaptive_overhead.md").write_text(table + "\n")
    (args.out / "adaptive_overhead.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

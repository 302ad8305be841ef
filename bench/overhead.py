"""Per-step cost of fixed-step solves on dY = -Y dt + 0.5 dW (diagonal noise), one thread.

Compares sdekit's schemes with a minimal hand-written torch loop (the floor) and torchsde's
``sdeint`` with its defaults (Euler and its stochastic Runge–Kutta), all in one run; "compiled"
rows use ``solve(..., compile=True)`` (compilation happens in the warm-up run, not timed). Prints one table of median microseconds per step.

    python bench/overhead.py [--repeats 7] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
import torchsde

import sdekit as sk

SIZES = [(1, 1), (64, 8), (1024, 64), (4096, 256)]


def drift(t, y):
    return -y


def diffusion(t, y):
    return torch.full_like(y, 0.5)


class TorchsdeOU(torch.nn.Module):
    noise_type = "diagonal"
    sde_type = "ito"

    def f(self, t, y):
        return drift(t, y)

    def g(self, t, y):
        return diffusion(t, y)


def minimal_loop(y0, steps, dt, gen):
    y = y0
    sqrt_dt = math.sqrt(dt)
    t = 0.0
    for _ in range(steps):
        y = y + drift(t, y) * dt + diffusion(t, y) * (sqrt_dt * torch.randn(y.shape, generator=gen))
        t += dt
    return y


def sdekit_run(solver, noise="diagonal", compile=False):
    sde = sk.SDE(drift, diffusion, noise=noise)

    def run(y0, steps, dt, gen):
        sol = sk.solve(
            sde, y0, 0.0, steps * dt, solver=solver, dt=dt, generator=gen, compile=compile
        )
        return sol.ys[-1]

    return run


def torchsde_run(method):
    def run(y0, steps, dt, gen):
        ts = torch.tensor([0.0, steps * dt])
        return torchsde.sdeint(TorchsdeOU(), y0, ts, method=method, dt=dt)[-1]

    return run


def time_per_step(fn, y0, steps, dt, repeats):
    gen = torch.Generator().manual_seed(0)
    fn(y0, steps, dt, gen)  # warm-up (and compilation, for the compiled rows)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(y0, steps, dt, gen)
        samples.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = {
        "minimal loop": minimal_loop,
        "sdekit euler": sdekit_run("euler"),
        "sdekit euler compiled": sdekit_run("euler", compile=True),
        "sdekit milstein": sdekit_run("milstein"),
        "sdekit milstein (fd)": sdekit_run(sk.Milstein(derivative="finite_difference")),
        "torchsde euler": torchsde_run("euler"),
        "sdekit sriw1": sdekit_run("sriw1"),
        "sdekit sosri": sdekit_run("sosri"),
        "sdekit sra1 (additive)": sdekit_run("sra1", noise="additive"),
        "sdekit sra1 compiled": sdekit_run("sra1", noise="additive", compile=True),
        "torchsde srk": torchsde_run("srk"),
    }
    rows = {}
    for batch, dim in SIZES:
        y0 = torch.ones(batch, dim)
        torch._dynamo.reset()  # one graph per size and compiled row: below the recompile limit
        steps = 2000 if batch * dim <= 512 else 200 if batch * dim <= 65536 else 20
        for name, fn in methods.items():
            rows.setdefault(name, []).append(time_per_step(fn, y0, steps, 0.01, args.repeats))
    header = f"{'method (µs/step)':<26}" + "".join(f"{f'{b}x{d}':>11}" for b, d in SIZES)
    print(header)
    print("-" * len(header))
    floor = rows["minimal loop"]
    for name, values in rows.items():
        print(f"{name:<26}" + "".join(f"{v:>11.1f}" for v in values))
    print("-" * len(header))
    for name, values in rows.items():
        ratios = "".join(f"{v / f:>10.2f}x" for v, f in zip(values, floor, strict=True))
        print(f"{name + ' / floor':<26}{ratios}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "overhead.json").write_text(
            json.dumps({"sizes": SIZES, "us_per_step": rows}, indent=1)
        )


if __name__ == "__main__":
    main()

"""Per-step cost of fixed-step Euler–Maruyama: sdekit compiled and eager, a hand-written torch
loop, and jitted diffrax, side by side in one run.

dY = -Y dt + 0.5 dW with diagonal noise, float32, one thread, states of shape 1x1 and 64x8,
2000 steps of dt = 0.01 per run. Rows:

- minimal eager loop (the floor): ``y = y + f(t, y)*dt + g(t, y)*(sqrt(dt)*randn)`` in eager torch;
- sdekit euler: ``sdekit.solve(..., solver="euler", dt=dt)``;
- sdekit euler compiled: the same with ``compile=True`` (compilation in the untimed warm-up);
- diffrax euler (jit): ``diffeqsolve`` with ``Euler()``, ``ConstantStepSize()``,
  ``UnsafeBrownianPath`` (a fresh Gaussian increment per step, as the torch rows draw; a
  ``VirtualBrownianTree`` would add a tree search per step that nothing else here pays for) and a
  diagonal ``ControlTerm`` (``lineax.DiagonalLinearOperator``), ``adjoint=ForwardMode()`` (the
  default adjoint refuses ``UnsafeBrownianPath``), the whole solve under ``jax.jit``, timed to
  ``block_until_ready`` with a new key per run; compilation in the untimed warm-up.

Every row runs ``--repeats`` times per size, interleaved (the order rotates every repeat); the
table gives median microseconds per step, the ratio to the floor, and compiled ÷ diffrax.
diffrax runs in a second Python that has jax (this file, ``--diffrax-worker``, which answers
timing requests on stdin, so that its runs interleave with the torch ones); jax is never imported
by the sdekit side, and is no dependency of the project. Without a jax Python the diffrax rows
print as "not run". Both processes are pinned to one CPU (``--cpu``), torch runs one thread and
XLA runs with ``--xla_cpu_multi_thread_eigen=false``.

    python bench/diffrax_euler.py [--repeats 7] [--steps 2000] [--jax-python PATH] [--out DIR]

The jax Python (default ``/work/.jaxenv/bin/python`` where it exists) lives outside the project:

    python -m venv /work/.jaxenv && /work/.jaxenv/bin/pip install jax diffrax

``--quick`` is a smoke run (20 steps, 1 repeat; too few steps for a compiled chunk, so the
compiled row then steps eagerly); ``--no-diffrax`` skips the diffrax rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = [(1, 1), (64, 8)]
DT = 0.01
DEFAULT_JAX_PYTHON = Path("/work/.jaxenv/bin/python")
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"
FLOOR = "minimal eager loop (floor)"
COMPILED = "sdekit euler compiled"
DIFFRAX = "diffrax euler (jit)"


# ---------------------------------------------------------------- diffrax worker (jax Python)


def diffrax_worker():
    """Answer one JSON request per stdin line with one JSON line on stdout.

    ``{"op": "prepare", "shape": [b, d], "steps": n}`` compiles the solve (untimed) and checks its
    step count; ``{"op": "time", "shape": ..., "steps": ..., "seed": s}`` runs it once and answers
    the microseconds per step."""
    os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import diffrax
    import equinox
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import jaxlib
    import lineax

    def drift(t, y, args):
        return -y

    def diffusion(t, y, args):
        return lineax.DiagonalLinearOperator(jnp.full_like(y, 0.5))

    solves = {}

    def solver(shape, steps):
        if (shape, steps) not in solves:

            @jax.jit
            def solve(y0, key):
                bm = diffrax.UnsafeBrownianPath(jax.ShapeDtypeStruct(shape, jnp.float32), key)
                terms = diffrax.MultiTerm(
                    diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm)
                )
                sol = diffrax.diffeqsolve(
                    terms,
                    diffrax.Euler(),
                    0.0,
                    steps * DT,
                    DT,
                    y0,
                    stepsize_controller=diffrax.ConstantStepSize(),
                    adjoint=diffrax.ForwardMode(),
                    max_steps=steps,
                )
                return sol.ys[-1], sol.stats["num_steps"]

            solves[shape, steps] = solve
        return solves[shape, steps]

    def answer(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer(
        {
            "versions": {
                "jax": jax.__version__,
                "jaxlib": jaxlib.__version__,
                "diffrax": diffrax.__version__,
                "equinox": equinox.__version__,
                "lineax": lineax.__version__,
            },
            "devices": [str(d) for d in jax.devices()],
        }
    )
    for line in sys.stdin:
        request = json.loads(line)
        shape, steps = tuple(request["shape"]), request["steps"]
        solve = solver(shape, steps)
        y0 = jnp.ones(shape, jnp.float32)
        if request["op"] == "prepare":
            y, num_steps = solve(y0, jr.key(0))
            y.block_until_ready()
            answer({"num_steps": int(num_steps), "finite": bool(jnp.isfinite(y).all())})
        else:
            key = jr.key(request["seed"])
            start = time.perf_counter()
            y, _ = solve(y0, key)
            y.block_until_ready()
            answer({"us_per_step": (time.perf_counter() - start) / steps * 1e6})


class Diffrax:
    """The worker process, seen from the torch side."""

    def __init__(self, python):
        env = dict(os.environ, XLA_FLAGS=XLA_FLAGS, JAX_PLATFORMS="cpu")
        self.proc = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--diffrax-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.hello = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the diffrax worker exited (status {self.proc.wait()})")
        return json.loads(line)

    def request(self, **kwargs):
        self.proc.stdin.write(json.dumps(kwargs) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ---------------------------------------------------------------- torch side (sdekit Python)


def torch_methods():
    import torch

    import sdekit as sk

    def drift(t, y):
        return -y

    def diffusion(t, y):
        return torch.full_like(y, 0.5)

    def minimal_loop(y0, steps, gen):
        y = y0
        sqrt_dt = math.sqrt(DT)
        t = 0.0
        for _ in range(steps):
            y = (
                y
                + drift(t, y) * DT
                + diffusion(t, y) * (sqrt_dt * torch.randn(y.shape, generator=gen))
            )
            t += DT
        return y

    def sdekit_run(compile):
        sde = sk.SDE(drift, diffusion, noise="diagonal")

        def run(y0, steps, gen):
            sol = sk.solve(
                sde, y0, 0.0, steps * DT, solver="euler", dt=DT, generator=gen, compile=compile
            )
            return sol.ys[-1]

        return run

    return {
        FLOOR: minimal_loop,
        "sdekit euler": sdekit_run(False),
        COMPILED: sdekit_run(True),
    }


def timed(fn, y0, steps, gen):
    start = time.perf_counter()
    fn(y0, steps, gen)
    return (time.perf_counter() - start) / steps * 1e6


def pin(cpu):
    """Pin this process (and the worker it starts) to one CPU, where the platform allows."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return None
    return cpu


def measure(args, diffrax):
    import torch

    methods = torch_methods()
    names = list(methods) + ([DIFFRAX] if diffrax is not None else [])
    samples = {name: [] for name in names}
    for batch, dim in SIZES:
        shape = (batch, dim)
        y0 = torch.ones(shape)
        torch._dynamo.reset()  # one graph per size
        gens = {name: torch.Generator().manual_seed(0) for name in methods}
        for name, fn in methods.items():  # warm-up; compilation for the compiled row
            fn(y0, args.steps, gens[name])
        if diffrax is not None:
            check = diffrax.request(op="prepare", shape=shape, steps=args.steps)
            if check["num_steps"] != args.steps or not check["finite"]:
                raise RuntimeError(f"diffrax took {check} at {shape}, not {args.steps} steps")
        runs = {name: [] for name in names}
        for r in range(args.repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                if name == DIFFRAX:
                    reply = diffrax.request(op="time", shape=shape, steps=args.steps, seed=r + 1)
                    runs[name].append(reply["us_per_step"])
                else:
                    runs[name].append(timed(methods[name], y0, args.steps, gens[name]))
        for name in names:
            samples[name].append(runs[name])
    return samples


def table(medians, diffrax_note):
    sizes = [f"{b}x{d}" for b, d in SIZES]
    floor = medians[FLOOR]
    lines = [
        "| method (µs/step, ratio to the floor) | " + " | ".join(sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for name in [FLOOR, "sdekit euler", COMPILED, DIFFRAX]:
        if name in medians:
            cells = [f"{v:.2f} ({v / f:.2f}x)" for v, f in zip(medians[name], floor, strict=True)]
        else:
            cells = [diffrax_note] * len(sizes)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if DIFFRAX in medians:
        ratios = [f"{c / d:.2f}x" for c, d in zip(medians[COMPILED], medians[DIFFRAX], strict=True)]
    else:
        ratios = ["not run"] * len(sizes)
    lines.append("| compiled ÷ diffrax | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def targets(medians):
    """The two targets, per size: compiled ≥ 2x faster than the floor, ≤ 1.5x diffrax's time."""
    out = []
    for i, (b, d) in enumerate(SIZES):
        speedup = medians[FLOOR][i] / medians[COMPILED][i]
        out.append(
            {
                "size": f"{b}x{d}",
                "target": "compiled >= 2x faster than the floor",
                "value": speedup,
                "hit": speedup >= 2.0,
            }
        )
        if DIFFRAX in medians:
            ratio = medians[COMPILED][i] / medians[DIFFRAX][i]
            out.append(
                {
                    "size": f"{b}x{d}",
                    "target": "compiled <= 1.5x diffrax per step",
                    "value": ratio,
                    "hit": ratio <= 1.5,
                }
            )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 steps, 1 repeat")
    parser.add_argument("--jax-python", type=Path, default=None, help="a Python with jax, diffrax")
    parser.add_argument("--no-diffrax", action="store_true", help="skip the diffrax rows")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU both processes are pinned to")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--diffrax-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.diffrax_worker:
        return diffrax_worker()
    if args.quick:
        args.steps, args.repeats = 20, 1

    cpu = pin(args.cpu)
    import torch

    import sdekit

    torch.set_num_threads(1)
    jax_python = args.jax_python
    if jax_python is None and DEFAULT_JAX_PYTHON.exists():
        jax_python = DEFAULT_JAX_PYTHON
    diffrax = None
    if args.no_diffrax:
        pass
    elif jax_python is None or not jax_python.exists():
        print(f"diffrax: not run (no jax Python{f' at {jax_python}' if jax_python else ''})")
    else:
        try:
            diffrax = Diffrax(jax_python)
        except (OSError, RuntimeError, ValueError) as err:
            print(f"diffrax: not run ({type(err).__name__}: {err})")
    try:
        samples = measure(args, diffrax)
    finally:
        if diffrax is not None:
            diffrax.close()
    medians = {name: [statistics.median(s) for s in per_size] for name, per_size in samples.items()}
    versions = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "sdekit": getattr(sdekit, "__version__", None),
    }
    if diffrax is not None:
        versions.update(diffrax.hello["versions"])
    hits = targets(medians)
    md = table(medians, "not run")
    report = [
        *(["--quick: a smoke run, not a measurement"] if args.quick else []),
        f"{args.steps} steps, median of {args.repeats} interleaved repeats, float32, one thread"
        f"{f', pinned to CPU {cpu}' if cpu is not None else ''}",
        ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None),
        "",
        md,
        "",
        *(
            f"{t['size']}: {t['target']}: {t['value']:.2f}x, {'hit' if t['hit'] else 'missed'}"
            for t in hits
        ),
    ]
    print("\n".join(report))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "diffrax_euler.md").write_text("\n".join(report) + "\n", encoding="utf-8")
        record = {
            "sizes": SIZES,
            "steps": args.steps,
            "repeats": args.repeats,
            "dt": DT,
            "cpu": cpu,
            "xla_flags": XLA_FLAGS if diffrax is not None else None,
            "versions": versions,
            "us_per_step_median": medians,
            "us_per_step_samples": samples,
            "targets": hits,
        }
        (args.out / "diffrax_euler.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()

"""Strong accuracy per function evaluation: sdekit's schemes against torchsde's ``srk``.

Fixed steps on ``[0, 1]``, float64, RMS error at ``t = 1`` over ``--paths`` Brownian paths, every
scheme and every step size on the same ``torchsde.BrownianInterval`` (space-time Lévy area) per
problem. Evaluations (``nfe``: drift plus diffusion calls, each call evaluating the whole batch) are
counted by wrapping the problem, for sdekit and torchsde alike (torchsde's ``srk`` re-evaluates
earlier stages inside its stage loop: 10 drift + 10 diffusion calls per step on diagonal noise).

Problems: geometric Brownian motion (``dX = 0.5 X dt + 0.8 X dW``, exact), the arctan problem
(``dX = -sin X cos³X dt + cos²X dW``, exact ``arctan(W + tan X0)``), and additive noise with a
nonlinear drift (``dX = -(sin 3X + X) dt + (1 + t) dW``, against SRA3 at ``dt/8`` of the finest
step on the same path).

    python bench/accuracy.py [--paths 1000] [--out DIR]

Prints one table (problem, scheme, dt, nfe, strong error) and, per problem, the evaluations each
scheme needs for strong error 1e-4 (log-log interpolation; ``-`` where the runs do not reach it).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import torchsde

import sdekit as sk
from sdekit.solvers.srk import SRK_SOLVERS

F64 = torch.float64
STEPS = [2.0**-k for k in range(2, 11)]
TARGET = 1e-4
TORCHSDE = "torchsde srk"
MU, SIGMA = 0.5, 0.8


def gbm_f(t, y):
    return MU * y


def gbm_g(t, y):
    return SIGMA * y


def arctan_f(t, y):
    return -torch.sin(y) * torch.cos(y) ** 3


def arctan_g(t, y):
    return torch.cos(y) ** 2


def additive_f(t, y):
    return -(torch.sin(3 * y) + y)


def additive_g(t, y):
    return (1 + t) * torch.ones_like(y)


PROBLEMS = {
    "gbm": dict(
        f=gbm_f,
        g=gbm_g,
        noise="diagonal",
        x0=1.0,
        exact=lambda y0, W: y0 * torch.exp((MU - SIGMA**2 / 2) + SIGMA * W),
        schemes=["euler", "milstein", "sriw1", "sriw2", "sosri"],
    ),
    "arctan": dict(
        f=arctan_f,
        g=arctan_g,
        noise="diagonal",
        x0=0.5,
        exact=lambda y0, W: torch.atan(W + torch.tan(y0)),
        schemes=["euler", "milstein", "sriw1", "sriw2", "sosri"],
    ),
    "additive": dict(
        f=additive_f,
        g=additive_g,
        noise="additive",
        x0=0.3,
        exact=None,
        schemes=["euler", "sra1", "sosra"],
    ),
}


class Counter:
    """Counts drift and diffusion calls of one solve."""

    def __init__(self, f, g):
        self._f, self._g, self.calls = f, g, 0

    def f(self, t, y):
        self.calls += 1
        return self._f(t, y)

    def g(self, t, y):
        self.calls += 1
        return self._g(t, y)


class TorchsdeProblem(torch.nn.Module):
    sde_type = "ito"

    def __init__(self, counter: Counter, noise: str):
        super().__init__()
        self.counter, self.noise_type = counter, noise

    def f(self, t, y):
        return self.counter.f(t, y)

    def g(self, t, y):
        g = self.counter.g(t, y)
        return g.unsqueeze(-1) if self.noise_type == "additive" else g


def run_sdekit(spec, scheme, y0, bm, dt):
    counter = Counter(spec["f"], spec["g"])
    sde = sk.SDE(counter.f, counter.g, noise=spec["noise"])
    solver = SRK_SOLVERS[scheme]() if scheme in SRK_SOLVERS else scheme
    y1 = sk.solve(sde, y0, 0.0, 1.0, solver=solver, dt=dt, brownian=bm).ys[-1]
    return y1, counter.calls


def run_torchsde(spec, y0, bm, dt):
    counter = Counter(spec["f"], spec["g"])
    ts = torch.tensor([0.0, 1.0], dtype=F64)
    y1 = torchsde.sdeint(
        TorchsdeProblem(counter, spec["noise"]), y0, ts, bm=bm, method="srk", dt=dt
    )
    return y1[-1], counter.calls


def nfe_at(target: float, nfes: list[int], errors: list[float]) -> float | None:
    """Evaluations for ``error == target`` by log-log interpolation between bracketing runs."""
    points = sorted(zip(nfes, errors, strict=True))
    for (n0, e0), (n1, e1) in zip(points, points[1:], strict=False):
        if e0 >= target >= e1 and e0 > e1:
            w = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e1))
            return math.exp(math.log(n0) + w * (math.log(n1) - math.log(n0)))
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows, needed = [], {}
    for problem, spec in PROBLEMS.items():
        y0 = torch.full((args.paths, 1), spec["x0"], dtype=F64)
        fine = min(STEPS) / 8
        bm = torchsde.BrownianInterval(
            0.0,
            1.0,
            size=(args.paths, 1),
            dtype=F64,
            entropy=args.seed,
            dt=fine,
            levy_area_approximation="space-time",
        )
        if spec["exact"] is not None:
            target = spec["exact"](y0, bm(0.0, 1.0))
        else:
            target = run_sdekit(spec, "sra3", y0, bm, fine)[0]
        for scheme in [*spec["schemes"], TORCHSDE]:
            label = scheme if scheme == TORCHSDE else f"sdekit {scheme}"
            nfes, errors = [], []
            for dt in STEPS:
                if scheme == TORCHSDE:
                    y1, calls = run_torchsde(spec, y0, bm, dt)
                else:
                    y1, calls = run_sdekit(spec, scheme, y0, bm, dt)
                error = float((y1 - target).pow(2).mean().sqrt())
                rows.append(dict(problem=problem, scheme=label, dt=dt, nfe=calls, error=error))
                nfes.append(calls)
                errors.append(error)
            needed.setdefault(problem, {})[label] = nfe_at(TARGET, nfes, errors)

    print(f"{'problem':<10}{'scheme':<18}{'dt':>12}{'nfe':>8}{'strong error':>15}")
    print("-" * 63)
    for r in rows:
        dt = f"2^{round(math.log2(r['dt']))}"
        print(f"{r['problem']:<10}{r['scheme']:<18}{dt:>12}{r['nfe']:>8}{r['error']:>15.3e}")
    print("-" * 63)
    for problem, per_scheme in needed.items():
        cells = ", ".join(f"{k}: {'-' if v is None else round(v)}" for k, v in per_scheme.items())
        print(f"nfe at strong error {TARGET:g} ({problem}): {cells}")
    gbm = needed["gbm"]
    sri = {k: v for k, v in gbm.items() if v is not None and k.split()[-1] in SRK_SOLVERS}
    if sri and gbm.get(TORCHSDE):
        best = min(sri, key=sri.get)
        print(
            f"best sdekit SRI on gbm: {best}, {sri[best] / gbm[TORCHSDE]:.2f}x the "
            f"evaluations of torchsde srk at strong error {TARGET:g}"
        )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result = {"paths": args.paths, "seed": args.seed, "rows": rows, "nfe_at_1e-4": needed}
        (args.out / "accuracy.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

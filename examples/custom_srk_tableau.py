"""Build your own stochastic Runge–Kutta tableau, check its order conditions, and solve with it.

A two-stage SRA method is fixed in its drift part by the strong order 1.5 conditions
(alpha = (1/3, 2/3), A0 = 3/4, B0 = 3/2, as in Rößler's SRA1), but its diffusion nodes ``c1`` are
free. Here we put them at the two ends of the step, c1 = (0, 1); the conditions
beta1·e = 1, beta2·e = 0, beta1·c1 = 1, beta2·c1 = -1 then give beta1 = (0, 1), beta2 = (1, -1).
The script checks the conditions (and shows a typo being caught), measures the scheme's strong
order against a fine solution on the same Brownian path, next to the library's SRA1 and
Euler–Maruyama, and plots the errors.

    python examples/custom_srk_tableau.py runs/examples      # writes custom_srk_tableau.png

``SDEKIT_EXAMPLE_QUICK=1`` uses fewer paths (the smoke test does).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from pathlib import Path

import torch
import torchsde

import sdekit as sk

QUICK = os.environ.get("SDEKIT_EXAMPLE_QUICK") == "1"

ENDPOINT_SRA = sk.SRATableau(
    c0=None,  # computed: the row sums of A0
    c1=(0, 1),
    A0=((), (3 / 4,)),
    B0=((), (3 / 2,)),
    alpha=(1 / 3, 2 / 3),
    beta1=(0, 1),
    beta2=(1, -1),
)


def strong_errors(solvers: dict, paths: int, levels: range) -> dict[str, list[float]]:
    """RMS error at t = 1 against the endpoint scheme at dt = 2^-11, on one Brownian path."""
    # dX = -(sin 3X + X) dt + (1 + t) dW: additive noise, nonlinear drift.
    sde = sk.SDE(
        lambda t, y: -(torch.sin(3 * y) + y),
        lambda t, y: (1 + t) * torch.ones_like(y),
        noise="additive",
    )
    y0 = torch.full((paths, 1), 0.3, dtype=torch.float64)
    bm = torchsde.BrownianInterval(
        0.0,
        1.0,
        size=(paths, 1),
        dtype=torch.float64,
        entropy=0,
        dt=2**-11,
        levy_area_approximation="space-time",
    )
    reference = sk.solve(sde, y0, 0.0, 1.0, solver=solvers["endpoint SRA"], dt=2**-11, brownian=bm)
    errors: dict[str, list[float]] = {}
    for name, solver in solvers.items():
        errors[name] = []
        for k in levels:
            y1 = sk.solve(sde, y0, 0.0, 1.0, solver=solver, dt=2**-k, brownian=bm).ys[-1]
            errors[name].append(float((y1 - reference.ys[-1]).pow(2).mean().sqrt()))
    return errors


def plot(hs, errors, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, errs in errors.items():
        order = math.log2(errs[0] / errs[-1]) / math.log2(hs[0] / hs[-1])
        ax.loglog(hs, errs, "o-", label=f"{name} (order ≈ {order:.2f})")
    ax.set_xlabel("step size h")
    ax.set_ylabel("RMS error at t = 1")
    ax.set_title("A custom SRA tableau, c1 = (0, 1)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/examples", help="folder for the figure")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    conditions = sk.sra_order_conditions(ENDPOINT_SRA)
    print(conditions)
    assert conditions.all_hold

    typo = dataclasses.replace(ENDPOINT_SRA, beta2=(1, 1))
    print("\nwith a sign typo in beta2:", [c.name for c in sk.sra_order_conditions(typo).failed])

    solver = sk.SRA(ENDPOINT_SRA)
    print(
        f"\n{solver.name}: {solver.nfe_drift} drift + {solver.nfe_diffusion} diffusion calls/step"
    )
    solvers = {"endpoint SRA": solver, "library sra1": "sra1", "euler": "euler"}
    levels = range(3, 8)
    errors = strong_errors(solvers, 100 if QUICK else 500, levels)
    hs = [2.0**-k for k in levels]
    print(f"{'dt':>8}" + "".join(f"{name:>15}" for name in solvers))
    for i, k in enumerate(levels):
        print(f"{f'2^-{k}':>8}" + "".join(f"{errors[name][i]:>15.3e}" for name in solvers))
    plot(hs, errors, out / "custom_srk_tableau.png")
    print("figure:", out / "custom_srk_tableau.png")


if __name__ == "__main__":
    main()

"""Geometric Brownian motion: measure each scheme's strong order of convergence, and plot it.

``dY = μY dt + σY dW`` has the exact solution ``Y(T) = Y(0) exp((μ − σ²/2) T + σ W(T))``, so the
strong error ``E|Y_h(T) − Y(T)|`` of a scheme with step ``h`` is measured against the truth on
the same Brownian path (a ``torchsde.BrownianInterval``, with the space-time Lévy area that the
stochastic Runge–Kutta schemes need). Its slope against ``h`` on a log-log plot is the strong
order: 0.5 for Euler–Maruyama, 1 for Milstein, 1.5 for SRIW1.

    python examples/gbm_strong_order.py runs/examples      # writes gbm_strong_order.png

``SDEKIT_EXAMPLE_QUICK=1`` uses fewer paths and step sizes (the smoke test does).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import torchsde

import sdekit as sk

QUICK = os.environ.get("SDEKIT_EXAMPLE_QUICK") == "1"
MU, SIGMA, T = 0.5, 0.8, 1.0
SCHEMES = {"euler": 0.5, "milstein": 1.0, "sriw1": 1.5}  # name: expected strong order


def strong_errors(paths: int, levels: range, seed: int) -> dict[str, list[float]]:
    """``E|Y_h(T) − Y(T)|`` per scheme, for ``h = 2^-k``, ``k`` in ``levels``."""
    gbm = sk.SDE(lambda t, y: MU * y, lambda t, y: SIGMA * y, noise="diagonal")
    y0 = torch.ones(paths, 1, dtype=torch.float64)
    bm = torchsde.BrownianInterval(
        0.0,
        T,
        size=(paths, 1),
        dtype=torch.float64,
        entropy=seed,
        dt=2.0 ** -levels[-1],
        levy_area_approximation="space-time",
    )
    exact = y0 * torch.exp(torch.tensor((MU - SIGMA**2 / 2) * T) + SIGMA * bm(0.0, T))
    errors: dict[str, list[float]] = {name: [] for name in SCHEMES}
    for name in SCHEMES:
        for k in levels:
            y = sk.solve(gbm, y0, 0.0, T, solver=name, dt=2.0**-k, brownian=bm).ys[-1]
            errors[name].append((y - exact).abs().mean().item())
    return errors


def slope(hs: list[float], errors: list[float]) -> float:
    """Least-squares slope of log(error) against log(h)."""
    x = torch.log(torch.tensor(hs))
    y = torch.log(torch.tensor(errors))
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def plot(hs, errors, orders, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, errs in errors.items():
        ax.loglog(hs, errs, "o-", label=f"{name}: measured order {orders[name]:.2f}")
        expected = SCHEMES[name]
        ref = [errs[0] * (h / hs[0]) ** expected for h in hs]
        ax.loglog(hs, ref, ":", color=ax.lines[-1].get_color(), alpha=0.6)
    ax.set_xlabel("step size h")
    ax.set_ylabel("strong error  E|Y_h(1) − Y(1)|")
    ax.set_title("Geometric Brownian motion (dotted: slopes 0.5, 1, 1.5)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/examples", help="folder for the figure")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    levels = range(2, 7) if QUICK else range(2, 10)
    paths = 200 if QUICK else 2000
    errors = strong_errors(paths, levels, seed=0)
    hs = [2.0**-k for k in levels]
    orders = {name: slope(hs, errs) for name, errs in errors.items()}

    print(f"{'h':>9}" + "".join(f"{name:>12}" for name in SCHEMES))
    for i, h in enumerate(hs):
        print(f"{h:>9.5f}" + "".join(f"{errors[name][i]:>12.3e}" for name in SCHEMES))
    print("measured:", ", ".join(f"{n} {o:.2f} (expected {SCHEMES[n]})" for n, o in orders.items()))
    plot(hs, errors, orders, out / "gbm_strong_order.png")
    print("figure:", out / "gbm_strong_order.png")


if __name__ == "__main__":
    main()

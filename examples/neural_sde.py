"""Fit a neural SDE by backpropagation through ``sdekit.solve``.

Data: paths of the double-well SDE ``dY = (Y − Y³) dt + 0.5 dW``, observed at 50 times on
``[0, 2]`` from 16 initial points. Model: ``dY = f_θ(Y) dt + 0.5 dW`` with ``f_θ`` a small MLP.
Loss: the squared difference between the model's and the data's mean and standard deviation at
every observation time, per initial point; the gradient flows through every step of the solve
(Euler–Maruyama, fresh noise at every iteration). The figure shows the learned drift against
the true one, the fitted means and spreads against the data's, and the loss.

    python examples/neural_sde.py runs/examples      # writes neural_sde.png

``SDEKIT_EXAMPLE_QUICK=1`` trains for fewer iterations (the smoke test does).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn

import sdekit as sk

QUICK = os.environ.get("SDEKIT_EXAMPLE_QUICK") == "1"
SIGMA, T, DT = 0.5, 2.0, 0.02
TIMES = [0.04 * k for k in range(1, 51)]  # every other step, up to T


def true_drift(t, y):
    return y - y**3


def moments(problem, y0, paths: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over ``paths`` paths per initial point, shape ``(len(TIMES), points)``."""
    start = y0.repeat_interleave(paths).unsqueeze(1)
    ys = sk.solve(problem, start, 0.0, T, solver="euler", dt=DT, saveat=TIMES, generator=generator)
    ys = ys.ys.reshape(len(TIMES), len(y0), paths)
    return ys.mean(-1), ys.std(-1)


def plot(drift, y0, data, model_moments, losses, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 4))
    grid = torch.linspace(-1.8, 1.8, 200).unsqueeze(1)
    with torch.no_grad():
        a.plot(grid, true_drift(None, grid), "k--", label="true  y − y³")
        a.plot(grid, drift(grid), label="learned  f_θ(y)")
    a.axvspan(-1.2, 1.2, color="grey", alpha=0.1, label="where the data spend their time")
    a.set_xlabel("y")
    a.set_title("Drift")
    a.legend()
    mean, (model_mean, model_std) = data[0], model_moments
    for j in range(0, len(y0), 3):
        line = b.plot(TIMES, mean[:, j], "o", markersize=3)[0]
        b.plot(TIMES, model_mean[:, j], "-", color=line.get_color())
        b.fill_between(
            TIMES,
            model_mean[:, j] - model_std[:, j],
            model_mean[:, j] + model_std[:, j],
            color=line.get_color(),
            alpha=0.15,
        )
    b.set_xlabel("t")
    b.set_title("Data means (dots); model mean ± std")
    c.semilogy(losses)
    c.set_xlabel("iteration")
    c.set_title("Loss")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/examples", help="folder for the figure")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)

    y0 = torch.linspace(-1.5, 1.5, 16)
    diffusion = lambda t, y: torch.full_like(y, SIGMA)  # noqa: E731
    with torch.no_grad():
        data = moments(sk.SDE(true_drift, diffusion, noise="additive"), y0, 2000, 0)

    drift = nn.Sequential(
        nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)
    )
    model = sk.SDE(lambda t, y: drift(y), diffusion, noise="additive")
    iterations = 30 if QUICK else 300
    optimiser = torch.optim.Adam(drift.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, iterations, eta_min=1e-3)
    generator = torch.Generator().manual_seed(1)
    losses = []
    for i in range(iterations):
        # 128 paths per start (64 in quick mode); the graph runs through every step.
        mean, std = moments(model, y0, 64 if QUICK else 128, generator)
        loss = (mean - data[0]).square().mean() + (std - data[1]).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if i % 50 == 0 or i == iterations - 1:
            print(f"iteration {i:4d}: loss {loss.item():.5f}")

    with torch.no_grad():
        fitted = moments(model, y0, 2000, 2)
        grid = torch.linspace(-1.2, 1.2, 25).unsqueeze(1)  # where the data spends its time
        error = (drift(grid) - true_drift(None, grid)).abs().max().item()
        scale = true_drift(None, grid).abs().max().item()
    print(f"max |f_θ − f| on [-1.2, 1.2]: {error:.3f} (max |f| there: {scale:.3f})")
    plot(drift, y0, data, fitted, losses, out / "neural_sde.png")
    print("figure:", out / "neural_sde.png")


if __name__ == "__main__":
    main()

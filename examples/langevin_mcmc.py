"""MALA and underdamped Langevin on a 2-D Gaussian mixture, with trace plots.

The target has two modes, at (−1.2, 0) with weight 0.3 and at (1.2, 0) with weight 0.7 (isotropic
std 0.6), so a chain has to cross a low-density valley to visit both. Each kernel runs 1000
chains from a wide start (``sdekit.mcmc``: one chain per row, one generator for the run); the
figure shows the first coordinate of three chains against the step (the trace: mode hopping is
visible), and where all chains are at the end over the target's density. The fraction of chains
in the right-hand mode, averaged over the second half of the run, estimates its weight 0.7.

    python examples/langevin_mcmc.py runs/examples      # writes langevin_mcmc.png

``SDEKIT_EXAMPLE_QUICK=1`` runs fewer steps (the smoke test does).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

from sdekit.mcmc import MALA, Target, UnderdampedLangevin

QUICK = os.environ.get("SDEKIT_EXAMPLE_QUICK") == "1"
MEANS = torch.tensor([[-1.2, 0.0], [1.2, 0.0]])
WEIGHTS = torch.tensor([0.3, 0.7])
STD = 0.6


def _logits(x: torch.Tensor) -> torch.Tensor:
    """``log(w_k N(x; m_k, STD² I))`` up to a constant, shape ``(batch, K)``."""
    d2 = (x[:, None, :] - MEANS).square().sum(-1)
    return WEIGHTS.log() - d2 / (2 * STD**2)


def log_prob(x: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(_logits(x), dim=1)


def score(x: torch.Tensor) -> torch.Tensor:
    """``∇ log π = Σ_k r_k (m_k − x)/STD²`` with the responsibilities ``r_k``."""
    r = torch.softmax(_logits(x), dim=1)
    return (r @ MEANS - x) / STD**2


def run(kernel, step_size: float, steps: int, chains: int, seed: int):
    """Run ``kernel``; return the traces of three chains, the final states, the right-mode
    fraction over the second half, and the mean acceptance (MALA) or None."""
    generator = torch.Generator().manual_seed(seed)
    target = Target(score=score, log_prob=log_prob)
    x = 2.0 * torch.randn(chains, 2, generator=generator)
    state, traces, right, acceptance = None, [], [], []
    for k in range(steps):
        x, info, state = kernel(x, target, step_size, generator, state)
        traces.append(x[:3, 0].clone())
        if k >= steps // 2:
            right.append((x[:, 0] > 0).float().mean().item())
        if info.acceptance is not None:
            acceptance.append(info.acceptance.mean().item())
    mean_acceptance = sum(acceptance) / len(acceptance) if acceptance else None
    return torch.stack(traces), x, sum(right) / len(right), mean_acceptance


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(11, 7.5))
    grid = torch.linspace(-3, 3, 200)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    density = log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp().reshape(gx.shape)
    for col, (name, (traces, final, right, acceptance)) in enumerate(results.items()):
        top, bottom = axes[0, col], axes[1, col]
        shown = traces[:1000]
        top.plot(shown.numpy(), linewidth=0.6)
        top.axhline(MEANS[0, 0], color="grey", linestyle=":")
        top.axhline(MEANS[1, 0], color="grey", linestyle=":")
        note = "" if acceptance is None else f", acceptance {acceptance:.2f}"
        top.set_title(f"{name}\nx₁ of three chains, first {len(shown)} steps{note}", fontsize=10)
        top.set_xlabel("step")
        bottom.contour(gx, gy, density, levels=8, colors="grey", linewidths=0.6)
        bottom.scatter(final[:, 0], final[:, 1], s=2, alpha=0.4)
        bottom.set_title(
            f"all {len(final)} chains at the end\nright-mode fraction {right:.3f} (true 0.7)",
            fontsize=10,
        )
        bottom.set_aspect("equal")
        bottom.set_xlim(-3, 3)
        bottom.set_ylim(-3, 3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/examples", help="folder for the figure")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    steps, chains = (400, 500) if QUICK else (4000, 1000)
    kernels = {
        "MALA, h = 0.15": (MALA(), 0.15),
        "underdamped Langevin (BAOAB), h = 0.3, γ = 1": (UnderdampedLangevin(friction=1.0), 0.3),
    }
    results = {}
    for seed, (name, (kernel, h)) in enumerate(kernels.items()):
        results[name] = run(kernel, h, steps, chains, seed)
        _, _, right, acceptance = results[name]
        # Chains are independent but correlated in time: the SE below is a floor, not a bound.
        se = math.sqrt(0.7 * 0.3 / chains)
        extra = "" if acceptance is None else f", mean acceptance {acceptance:.2f}"
        print(f"{name}: right-mode fraction {right:.3f} (true 0.7, one-time SE {se:.3f}){extra}")
    plot(results, out / "langevin_mcmc.png")
    print("figure:", out / "langevin_mcmc.png")


if __name__ == "__main__":
    main()

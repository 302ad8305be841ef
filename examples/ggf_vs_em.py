"""Gotta Go Fast against Euler–Maruyama on an analytic 2-D Gaussian mixture.

The target is a ring of eight Gaussians (std 0.05, radius 0.8, weights 1 : 2 : … : 8) under the
VP process; its score is exact at every time, so every difference between the panels is the
sampler's. Gotta Go Fast (GGF) picks each sample's steps from its embedded error estimate
(``eps_rel = 0.1``), with the paper's re-drawn noise and with one Brownian path per sample;
Euler–Maruyama (EM) takes 1000 equal steps, and as many as GGF spends. Samples are compared,
without the final denoising, with exact draws of the same time ``eps``: ΔNLL is the mean negative
log-density under ``p_eps`` minus that of exact draws (0 is perfect; positive: too spread), and
mode TV is the total-variation distance of the eight mode weights (the exact draws' value is
the noise floor). Each panel gives the score evaluations per sample (NFE).

    python examples/ggf_vs_em.py runs/examples      # writes ggf_vs_em.png

``SDEKIT_EXAMPLE_QUICK=1`` draws fewer samples (the smoke test does).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

import sdekit_score as ss

QUICK = os.environ.get("SDEKIT_EXAMPLE_QUICK") == "1"


class Scores:
    """ΔNLL (with its standard error) and mode TV against exact draws of ``p_eps``."""

    def __init__(self, target, process, n: int):
        self.target, self.process = target, process
        self.eps = torch.tensor(process.eps, dtype=torch.float64)
        exact = target.sample_perturbed(n, self.eps, process, generator=100)
        self.nll_exact = -target.perturbed_log_prob(exact.double(), self.eps, process)

    def __call__(self, x: torch.Tensor) -> tuple[float, float, float]:
        x = x.double()
        nll = -self.target.perturbed_log_prob(x, self.eps, self.process)
        delta = (nll.mean() - self.nll_exact.mean()).item()
        se = math.sqrt(nll.var().item() / len(nll) + self.nll_exact.var().item() / len(nll))
        centres = self.target.means * self.process.alpha(self.eps)
        nearest = torch.cdist(x, centres).argmin(1)
        weights = torch.bincount(nearest, minlength=len(centres)).double() / len(x)
        return delta, se, 0.5 * (weights - self.target.weights).abs().sum().item()


def plot(panels: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 4.0), layout="constrained")
    for ax, (name, (x, nfe, (delta, se, tv))) in zip(axes, panels.items(), strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3)
        cost = "" if nfe is None else f"NFE {nfe:.0f}\n"
        ax.set_title(f"{name}\n{cost}ΔNLL {delta:.2f} ± {se:.2f}, mode TV {tv:.3f}", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.1, 1.1)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/examples", help="folder for the figure")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    n = 1500 if QUICK else 5000
    process = ss.VPSDE()
    target = ss.GaussianMixture.ring2d(weights=torch.arange(1.0, 9.0))
    score = target.score(process)
    scores = Scores(target, process, n)
    exact = target.sample_perturbed(n, scores.eps, process, generator=101).float()
    panels = {"exact draws of p_eps": (exact, None, scores(exact))}

    def run(name: str, sampler: str, **options) -> float:
        x, stats = ss.sample(
            score, process, (n, 2), sampler=sampler, generator=1, denoise=False, **options
        )
        nfe = stats["nfe"].float().mean().item()
        panels[name] = (x, nfe, scores(x))
        return nfe

    nfe = run("GGF, eps_rel 0.1", "ggf", eps_rel=0.1, brownian="redraw")
    run("GGF, eps_rel 0.1, bridge", "ggf", eps_rel=0.1, brownian="bridge")
    run(f"EM, {round(nfe)} steps (GGF's NFE)", "em", steps=round(nfe))
    run("EM, 1000 steps", "em", steps=1000)

    print(f"{'sampler':>26} {'NFE':>6} {'ΔNLL':>7} {'± SE':>6} {'mode TV':>8}")
    for name, (_, cost, (delta, se, tv)) in panels.items():
        print(
            f"{name:>26} {'' if cost is None else f'{cost:6.0f}':>6} {delta:>7.3f} {se:>6.3f} "
            f"{tv:>8.4f}"
        )
    plot(panels, out / "ggf_vs_em.png")
    print("figure:", out / "ggf_vs_em.png")


if __name__ == "__main__":
    main()

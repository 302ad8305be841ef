"""An Ornstein–Uhlenbeck ensemble with per-sample adaptive steps, and the histogram of its steps.

Each sample relaxes at its own rate: ``dY = −θᵢ Y dt + σ dW`` with ``θᵢ`` from 0.5 to 50 across
the batch. With ``per_sample=True`` every sample gets its own step sizes, accept decisions and
time, so the slow samples take long steps and the fast ones short steps, in the same solve. The
callback records every accepted step; the figure shows their sizes by relaxation rate, and one
path of each kind with its step points. The stationary variance σ²/(2θ) of each group checks the
solution.

    python examples/ou_per_sample_steps.py runs/examples      # writes ou_per_sample_steps.png

``SDEKIT_EXAMPLE_QUICK=1`` uses a smaller ensemble over ``[0, 1]`` (the smoke test does).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

import sdekit as sk

QUICK = os.environ.get("SDEKIT_EXAMPLE_QUICK") == "1"
SIGMA = 1.0
T = 1.0 if QUICK else 4.0
GROUPS = {"slow, θ = 0.5": 0.5, "medium, θ = 5": 5.0, "fast, θ = 50": 50.0}


def run(per_group: int, seed: int):
    """Solve the ensemble; return the solution, every accepted step ``(sample, h)`` and the
    path ``(t, y)`` of the first sample of each group at its step points."""
    theta = torch.cat([torch.full((per_group, 1), v, dtype=torch.float64) for v in GROUPS.values()])
    ou = sk.SDE(lambda t, y: -theta * y, lambda t, y: torch.full_like(y, SIGMA), noise="additive")
    y0 = torch.ones_like(theta)
    steps: list[tuple[torch.Tensor, torch.Tensor]] = []
    shown = [i * per_group for i in range(len(GROUPS))]
    paths: dict[int, list[tuple[float, float]]] = {i: [(0.0, 1.0)] for i in shown}

    def record(info: dict) -> None:
        taken = info["accept"] & (info["h"] != 0)
        idx = taken.nonzero().flatten()
        steps.append((idx, info["h"][idx]))
        for i in shown:
            if taken[i]:
                paths[i].append((float(info["t"][i] + info["h"][i]), float(info["y"][i, 0])))

    sol = sk.solve(
        ou,
        y0,
        0.0,
        T,
        solver="sosra",
        controller=sk.PIController(rtol=1e-2, atol=1e-2, per_sample=True),
        generator=seed,
        callback=record,
    )
    sample = torch.cat([s for s, _ in steps])
    h = torch.cat([h for _, h in steps])
    return sol, sample, h, paths


def plot(sample, h, paths, per_group, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = torch.logspace(math.log10(h.min()), math.log10(h.max()), 40).numpy()
    for i, (name, points) in enumerate(zip(GROUPS, paths.values(), strict=True)):
        mine = (sample >= i * per_group) & (sample < (i + 1) * per_group)
        weights = torch.full((int(mine.sum()),), 1 / int(mine.sum()))
        left.hist(h[mine].numpy(), bins=bins, weights=weights.numpy(), alpha=0.6, label=name)
        ts, ys = zip(*[(t, y) for t, y in points if t <= 1.0], strict=True)
        right.plot(
            ts,
            ys,
            ".-",
            markersize=4,
            linewidth=0.8,
            label=f"{name}: {len(points) - 1} steps on [0, {T:g}]",
        )
    left.set_xscale("log")
    left.set_xlabel("accepted step size h")
    left.set_ylabel("fraction of the group's steps")
    left.set_title("Per-sample step sizes (sosra, PI control, tol 1e-2)")
    left.legend()
    right.set_xlabel("t")
    right.set_ylabel("Y(t)")
    right.set_title("One path per group on [0, 1], a dot per accepted step")
    right.legend(fontsize=8)
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

    per_group = 200 if QUICK else 2000
    sol, sample, h, paths = run(per_group, seed=0)
    accepted = sol.stats["accepted"]
    final = sol.ys[-1].flatten()
    print(f"{'group':>16} {'steps/sample':>13} {'Var Y(T)':>10} {'σ²/2θ':>8} {'± (2 SE)':>9}")
    for i, (name, rate) in enumerate(GROUPS.items()):
        rows = slice(i * per_group, (i + 1) * per_group)
        # From a fixed start, Var Y(T) = σ²/(2θ)(1 − e^(−2θT)).
        exact = SIGMA**2 / (2 * rate) * (1 - math.exp(-2 * rate * T))
        var = final[rows].var().item()
        two_se = 2 * exact * math.sqrt(2 / (per_group - 1))
        print(
            f"{name:>16} {accepted[rows].float().mean():>13.1f} {var:>10.4f} {exact:>8.4f} "
            f"{two_se:>9.4f}"
        )
    plot(sample, h, paths, per_group, out / "ou_per_sample_steps.png")
    print("figure:", out / "ou_per_sample_steps.png")


if __name__ == "__main__":
    main()

"""Train a small score model on a 2-D toy and sample it with Gotta Go Fast, through the library API.

    python examples/train_and_sample.py runs/examples      # about a minute on a laptop CPU;
                                                           # writes train_and_sample.png

The model's checkpoints go to ``OUT/moons-model`` (running again resumes from them). The same
steps on the command line: ``sdekit-score train --data moons --out runs/moons`` then
``sdekit-score sample --checkpoint runs/moons --sampler ggf --n 2000 --out runs/moons-ggf``.
``SDEKIT_EXAMPLE_QUICK=1`` trains for 300 steps instead of 3000 and draws 500 samples (the smoke
test does): the samples are then rough, but every step runs.
"""

import argparse
import os
from pathlib import Path

import torch

import sdekit_score as ss
from sdekit_score.app.plotting import save_scatter

QUICK = os.environ.get("SDEKIT_EXAMPLE_QUICK") == "1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/examples", help="folder for the figure")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    data = ss.toy2d("moons", 20_000, generator=0).tensors[0]  # (N, 2) in about [-1, 1]^2
    config = ss.TrainConfig(
        net="mlp",
        net_kwargs={"dim": 2, "hidden": 128, "depth": 3},
        process="vp",
        steps=300 if QUICK else 3000,
        batch_size=256,
        lr=2e-3 if QUICK else 1e-3,
        ema_decay=0.99 if QUICK else 0.999,  # an EMA must be shorter than the run
    )
    result = ss.train(config, data, out / "moons-model", progress=not QUICK)

    process = result.score_fn.process
    n = 500 if QUICK else 2000
    x, stats = ss.sample(result.score_fn, process, (n, 2), sampler="ggf", generator=1)
    reference = data[:n]
    print(f"GGF: {stats['nfe'].float().mean():.0f} score evaluations per sample")
    print(f"sliced Wasserstein distance to the data: {ss.sliced_wasserstein(x, reference):.4f}")
    print("figure:", save_scatter(x, out / "train_and_sample.png", reference=reference))


if __name__ == "__main__":
    main()

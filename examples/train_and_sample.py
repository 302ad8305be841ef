"""Train a small score model on a 2-D toy and sample it with Gotta Go Fast, through the library API.

    python examples/train_and_sample.py            # about a minute on a laptop CPU

The same steps on the command line: ``sdekit-score train --data moons --out runs/moons`` then
``sdekit-score sample --checkpoint runs/moons --sampler ggf --n 2000 --out runs/moons-ggf``.
"""

import torch

import sdekit_score as ss
from sdekit_score.app.plotting import save_scatter


def main() -> None:
    torch.set_num_threads(2)
    data = ss.toy2d("moons", 20_000, generator=0).tensors[0]  # (N, 2) in about [-1, 1]^2
    config = ss.TrainConfig(
        net="mlp",
        net_kwargs={"dim": 2, "hidden": 128, "depth": 3},
        process="vp",
        steps=3000,
        batch_size=256,
        lr=1e-3,
    )
    result = ss.train(config, data, "runs/example-moons")  # resumes if run again

    process = result.score_fn.process
    x, stats = ss.sample(result.score_fn, process, (2000, 2), sampler="ggf", generator=1)
    reference = data[:2000]
    print(f"GGF: {stats['nfe'].float().mean():.0f} score evaluations per sample")
    print(f"sliced Wasserstein distance to the data: {ss.sliced_wasserstein(x, reference):.4f}")
    print("scatter plot:", save_scatter(x, "runs/example-moons/ggf.png", reference=reference))


if __name__ == "__main__":
    main()

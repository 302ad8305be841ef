"""Replace a diffusers pipeline's sampling loop with ``sdekit_score.sample``.

    python examples/diffusers_sampling.py runs/diffusers      # about 10 s on a laptop CPU

A small ``UNet2DModel``, randomly initialised (nothing is downloaded, so the pictures are noise:
put your trained model and its scheduler in its place), is sampled three ways from the same
model and scheduler:

1. diffusers' own loop (what ``DDIMPipeline.__call__`` does): ``scheduler.step`` over 50
   timesteps;
2. ``from_diffusers(unet, scheduler)`` and ``sdekit_score.sample`` with the adaptive samplers
   ``ggf`` (reverse SDE) and ``ode`` (probability flow), and ``em`` on 50 steps.

It checks the two things that make the swap exact, on this model: the process's ``alpha²`` at every
training timestep is the scheduler's ``alphas_cumprod``, and the clean-image estimate sdekit
computes from the score is DDIM's ``pred_original_sample`` at the same input and timestep. It
writes ``summary.txt`` (and ``samples.png`` with the ``plot`` extra) into OUT. Needs the
``diffusers`` extra: ``pip install 'sdekit[diffusers]'``.
"""

import argparse
import time
from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DModel

import sdekit_score as ss
from sdekit_score.adapters import from_diffusers
from sdekit_score.app.plotting import available, save_image_grid

SHAPE = (8, 1, 16, 16)  # 8 grayscale 16x16 images


def diffusers_loop(unet, scheduler, x, steps):
    """What ``DDIMPipeline.__call__`` does (eta = 0), written out."""
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/diffusers", help="folder for the output")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)

    unet = UNet2DModel(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ).eval()
    # DDPM's training schedule (linear betas, epsilon prediction); any beta_schedule and
    # prediction_type ("v_prediction", "sample") work the same way.
    scheduler = DDIMScheduler(clip_sample=False)
    lines = [f"UNet2DModel with {sum(p.numel() for p in unet.parameters())} parameters (random)"]

    # The swap: one line.
    score_fn, process = from_diffusers(unet, scheduler)

    # 1. The schedule: alpha(t_n)² = alphas_cumprod[n] at t_n = (n + 1)/N.
    n = torch.arange(scheduler.config.num_train_timesteps, dtype=torch.float64)
    alpha2 = process.alpha(process.timestep_to_t(n)) ** 2
    gap = (alpha2 - scheduler.alphas_cumprod.double()).abs().max().item()
    lines.append(f"max |alpha(t_n)^2 - alphas_cumprod[n]| over all timesteps: {gap:.1e}")

    # 2. The clean-image estimate: Tweedie's (x + sigma² score)/alpha vs DDIM's pred_original_sample.
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    scheduler.set_timesteps(50)
    with torch.no_grad():
        worst = 0.0
        for t in scheduler.timesteps[::10]:
            theirs = scheduler.step(unet(x, t).sample, t, x).pred_original_sample
            tt = process.timestep_to_t(t.float()).expand(SHAPE[0])
            sigma, alpha = process.sigma(tt).view(-1, 1, 1, 1), process.alpha(tt).view(-1, 1, 1, 1)
            ours = (x + sigma**2 * score_fn(x, tt)) / alpha
            worst = max(worst, ((ours - theirs).abs().max() / theirs.abs().max()).item())
    lines.append(f"max relative gap to DDIM's pred_original_sample: {worst:.1e}")

    # 3. Sampling: diffusers' loop, then sdekit samplers on the same model.
    runs = {}
    start = time.perf_counter()
    with torch.no_grad():
        runs["diffusers DDIM loop, 50 steps"] = (diffusers_loop(unet, scheduler, x, 50), 50)
    seconds = {"diffusers DDIM loop, 50 steps": time.perf_counter() - start}
    for label, sampler, options in (
        ("sdekit unipc, 20 steps", "unipc", {"steps": 20}),
        ("sdekit em, 50 steps", "em", {"steps": 50}),
        ("sdekit ggf (adaptive reverse SDE)", "ggf", {"eps_rel": 0.05}),
        ("sdekit ode (adaptive probability flow)", "ode", {"rtol": 1e-3, "atol": 1e-3}),
    ):
        start = time.perf_counter()
        samples, stats = ss.sample(
            score_fn, process, SHAPE, sampler=sampler, generator=2, **options
        )
        seconds[label] = time.perf_counter() - start
        runs[label] = (samples, stats["nfe"].float().mean().item())
    lines.append("")
    lines.append(f"{'sampler':40s} {'NFE/sample':>10s} {'seconds':>8s}")
    for label, (samples, nfe) in runs.items():
        assert torch.isfinite(samples).all(), label
        lines.append(f"{label:40s} {nfe:10.0f} {seconds[label]:8.2f}")

    summary = "\n".join(lines)
    (out / "summary.txt").write_text(summary + "\n")
    print(summary)
    if available():
        grid = torch.cat([s[:8] for s, _ in runs.values()])
        path = save_image_grid(
            grid,
            out / "samples.png",
            data_range=process.data_range,
            columns=8,
            title="rows: DDIM loop, em, ggf, ode (random model: noise)",
        )
        print("figure:", path)
    print("summary:", out / "summary.txt")


if __name__ == "__main__":
    main()

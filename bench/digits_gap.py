"""Why the reverse SDE plateaus on the demo's digits model: one measurement per hypothesis.

On the demo's model every reverse-SDE solve (Euler–Maruyama at any step count, GGF) scores a
digits FD of about 40 while the probability-flow ODE, annealed Langevin and PC reach 23–26. Each
row below changes one thing against Euler–Maruyama at 250 steps (which the demo finds within noise
of 1000 steps) or against the ODE:

- final denoising on/off (every run is scored both ways from the same samples);
- the corrector's role: PC with 0 and 1 Langevin corrector steps, at 1000 and at 250 steps;
- float64 instead of float32 (model and state);
- the process's ``eps``: stopping (and denoising) at ``t = 1e-2`` or ``3e-2`` instead of ``1e-3``;
- where in time the gap arises: the reverse SDE on ``[T, t_s]`` then the probability-flow ODE on
  ``[t_s, eps]``, and the other way round;
- the score at high noise: the model's score replaced, for ``t >= t_c``, by the exact score of
  the Gaussian with the digits' mean and covariance (at high noise ``p_t`` is close to it);
- ``sampler="adaptive"`` with noise injected everywhere and only below a level
  (``noise_below``, a noise level σ/α), the probability flow above it;
- ``dpmpp_3m`` on the uniform log-SNR grid and on ``"logsnr_power"`` at 25 and 50 NFE, next to
  399 steps (the converged flow) on the same four prior draws;
- the score error near ``t = eps`` and above: the model's noise-prediction error
  ``E‖ε_θ(α x_0 + σ z, t) − z‖² / d`` on the digits at several ``t``, next to the same error of
  the exact score of the 1797 digits' empirical distribution (its minimum over all functions) and
  of ``ε = 0`` (no denoising at all) and of the Gaussian approximation.

The FD is the demo's (classifier features, samples clamped to the data range, against all 1797
digits); its noise is stated by repeating the key rows with a second seed. "class TV" is the total
variation between the classifier's predicted classes of the samples and of the 1797 digits: how
far the digit proportions are off.

    python bench/digits_gap.py --checkpoint runs/demo/model_main --out DIR [--n 2000] [--quick]
                               [--only LABEL ...] [--tols T ...] [--seeds S ...]

``--tols`` adds rows of ``sampler="adaptive"`` at those tolerances for ``--seeds`` (the
tolerance study of docs/benchmarks.md: ``--only "adaptive tol 0.02" ... --tols 0.02 0.05``).

Prints one table; writes ``digits_gap.json`` and ``digits_gap.md`` into ``--out`` only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

import sdekit
import sdekit_score as ss
from sdekit_score.evaluation.data import digits
from sdekit_score.sampling.processes import probability_flow, reverse_sde

sys.path.insert(0, str(Path(__file__).resolve().parent))
import samplers as bench  # noqa: E402  (bench/samplers.py: the digits' metrics)

ODE_TOL = 1e-5


def tweedie(model, process, x: torch.Tensor) -> torch.Tensor:
    """The final denoising at ``t = process.eps``: ``(x + σ² s(x, eps)) / α``."""
    t = torch.full(x.shape[:1], process.eps, dtype=x.dtype)
    sigma, alpha = process.sigma(t)[:, None], process.alpha(t)[:, None]
    return (x + sigma**2 * model(x, t)) / alpha


class GaussianAbove:
    """The model's score below ``t_c``, the exact score of ``p_t`` for Gaussian data
    ``N(μ, Σ)`` (the digits' moments) from ``t_c`` on: ``s = −(α²Σ + σ²I)⁻¹(x − αμ)``."""

    def __init__(self, model, images: torch.Tensor, t_c: float):
        x0 = images.flatten(1).double()
        self.model, self.process, self.t_c = model, model.process, t_c
        self.mean = x0.mean(0)
        self.eigenvalues, self.basis = torch.linalg.eigh(torch.cov(x0.T))

    def gaussian(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.double()
        alpha, sigma = self.process.alpha(t)[:, None], self.process.sigma(t)[:, None]
        scale = alpha**2 * self.eigenvalues + sigma**2
        centred = (x.double() - alpha * self.mean) @ self.basis
        return (-(centred / scale) @ self.basis.T).to(x.dtype)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        above = (t >= self.t_c)[:, None]
        return torch.where(above, self.gaussian(x, t), self.model(x, t))


def sampled(model, process, n, seed, sampler, dtype, **options):
    """``n`` raw samples (no final denoising) of a named sampler, and the NFE per sample."""
    x, stats = ss.sample(
        model,
        process,
        (n, 64),
        sampler=sampler,
        generator=seed,
        denoise=False,
        dtype=dtype,
        **options,
    )
    return x, float(stats["nfe"].double().mean())


def split(model, process, n, seed, dtype, t_switch, sde_first, steps):
    """The reverse SDE (Euler–Maruyama, ``steps`` over ``[T, eps]``) on one side of ``t_switch``
    and the probability-flow ODE (Dormand–Prince, per sample) on the other."""
    gen = torch.Generator().manual_seed(seed)
    x = process.prior_sample((n, 64), generator=gen, dtype=dtype)
    dt = (process.T - process.eps) / steps
    nfe = 0.0
    pieces = [(process.T, t_switch), (t_switch, process.eps)]
    for k, (t0, t1) in enumerate(pieces):
        if (k == 0) == sde_first:
            sol = sdekit.solve(
                reverse_sde(process, model), x, t0, t1, solver="euler", dt=dt, generator=gen
            )
        else:
            controller = sdekit.IController(rtol=ODE_TOL, atol=ODE_TOL, per_sample=True)
            sol = sdekit.solve(
                probability_flow(process, model), x, t0, t1, solver="dopri5", controller=controller
            )
        x = sol.ys[-1]
        nfe += float(torch.as_tensor(sol.stats["nfe_drift"]).double().mean())
    return x, nfe


def runs(quick: bool) -> list[tuple[str, str, dict, tuple[int, ...]]]:
    """(label, kind, options, seeds): the rows, each a change of one thing."""
    both = (0,) if quick else (0, 1)
    rows = [
        ("em-250", "em", dict(steps=250), both),
        ("em-1000", "em", dict(steps=1000), (0,)),
        ("pc-1000, 1 corrector", "pc", dict(steps=1000, corrector_steps=1), both),
        ("pc-1000, 0 correctors", "pc", dict(steps=1000, corrector_steps=0), (0,)),
        ("pc-250, 1 corrector", "pc", dict(steps=250, corrector_steps=1), (0,)),
        ("ode", "ode", {}, both),
        ("em-250, float64", "em", dict(steps=250, dtype=torch.float64), (0,)),
        ("ode, float64", "ode", dict(dtype=torch.float64), (0,)),
        ("em-250, eps 1e-2", "em", dict(steps=250, eps=1e-2), (0,)),
        ("em-250, eps 3e-2", "em", dict(steps=250, eps=3e-2), (0,)),
        ("ode, eps 1e-2", "ode", dict(eps=1e-2), (0,)),
    ]
    for t_c in (0.5, 0.3):
        rows.append(
            (f"em-250, Gaussian score for t >= {t_c}", "em", dict(steps=250, t_c=t_c), (0,))
        )
    rows.append(("ode, Gaussian score for t >= 0.3", "ode", dict(t_c=0.3), (0,)))
    for t_switch in (0.3, 0.1, 0.03):
        rows.append((f"sde to t={t_switch}, then ode", "split", dict(t_switch=t_switch), (0,)))
    for t_switch in (0.1, 0.03):
        rows.append(
            (f"ode to t={t_switch}, then sde", "split", dict(t_switch=t_switch, ode_first=1), (0,))
        )
    rows.append(("adaptive, noise everywhere", "adaptive", dict(noise_below=None), both))
    rows.append(("adaptive (defaults)", "adaptive", {}, both))
    for level in (1.0, 0.3, 0.1):  # σ/α; on this VP model t = 0.26, 0.09, 0.03
        rows.append(
            (f"adaptive, noise at levels <= {level}", "adaptive", dict(noise_below=level), both)
        )
    rows.append(
        (
            "adaptive tol 0.05, noise at levels <= 0.3",
            "adaptive",
            dict(tol=0.05, noise_below=0.3),
            both,
        )
    )
    # The flow's own discretisation error on each grid: against 399 steps, same prior draws.
    four = (0,) if quick else (0, 1, 2, 3)
    for steps, schedule in [(399, "logsnr"), (49, "logsnr"), (49, "logsnr_power"), (24, "logsnr"),
                            (24, "logsnr_power")]:  # fmt: skip
        options = dict(steps=steps, schedule=schedule)
        rows.append((f"dpmpp_3m {steps} steps, {schedule}", "dpmpp_3m", options, four))
    return rows


def draw(model, kind, options, n, seed):
    options = dict(options)
    dtype = options.pop("dtype", torch.float32)
    process = model.process
    if "eps" in options:
        process = dataclasses.replace(process, eps=options.pop("eps"))
    model = model.to(dtype)
    if "t_c" in options:
        model = GaussianAbove(model, digits(process.data_range).tensors[0], options.pop("t_c"))
    with torch.no_grad():
        if kind == "split":
            sde_first = not options.pop("ode_first", 0)
            x, nfe = split(model, process, n, seed, dtype, options["t_switch"], sde_first, 250)
        else:
            x, nfe = sampled(model, process, n, seed, kind, dtype, **options)
        den = tweedie(model, process, x)
    return x, den, nfe + 1


def noise_prediction_error(model, images: torch.Tensor, times, seed: int) -> list[dict]:
    """Per-dimension ``E‖ε̂ − z‖²`` at each ``t`` for the model, the exact empirical score and 0."""
    process = model.process
    x0 = images.flatten(1).double()
    gaussian = GaussianAbove(model, images, 0.0)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t_value in times:
        t = torch.full((len(x0),), t_value, dtype=torch.float64)
        alpha, sigma = float(process.alpha(t[0])), float(process.sigma(t[0]))
        z = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        xt = alpha * x0 + sigma * z
        with torch.no_grad():
            eps_model = -sigma * model.double()(xt, t)
        # the exact posterior mean over the training set: a softmax over the 1797 digits
        logits = -torch.cdist(xt, alpha * x0).square() / (2 * sigma**2)
        mean = torch.softmax(logits, dim=1) @ x0
        eps_exact = (xt - alpha * mean) / sigma
        eps_gaussian = -sigma * gaussian.gaussian(xt, t)
        out.append(
            dict(
                t=t_value,
                sigma=sigma,
                model=float((eps_model - z).square().mean()),
                exact_empirical=float((eps_exact - z).square().mean()),
                zero=float(z.square().mean()),
                gaussian=float((eps_gaussian - z).square().mean()),
            )
        )
    model.float()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="file or training dir")
    parser.add_argument("--out", type=Path, required=True, help="folder for the outputs")
    parser.add_argument("--n", type=int, default=2000, help="samples per run")
    parser.add_argument("--quick", action="store_true", help="one seed per row")
    parser.add_argument("--only", nargs="+", help="run only the rows so labelled")
    parser.add_argument(
        "--tols",
        type=float,
        nargs="+",
        default=[],
        help="also run sampler='adaptive' at these tolerances (rows 'adaptive tol T')",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the --tols rows"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    scores = bench.DigitsScore(args.checkpoint, args.n)  # the model and the digits' metrics
    model, reference = scores.model, scores.reference
    fd, class_tv = scores.fd, scores.class_tv

    started = time.perf_counter()
    results = []
    extra = [(f"adaptive tol {t:g}", "adaptive", dict(tol=t), args.seeds) for t in args.tols]
    for label, kind, options, seeds in runs(args.quick) + extra:
        if args.only and label not in args.only:
            continue
        for seed in seeds:
            start = time.perf_counter()
            raw, den, nfe = draw(model, kind, options, args.n, seed)
            row = dict(label=label, seed=seed, nfe=nfe, fd_raw=fd(raw), fd=fd(den))
            row["class_tv"] = class_tv(den)
            row["wall_s"] = time.perf_counter() - start
            results.append(row)
            print(
                f"  {label} seed {seed}: NFE {nfe:.0f}, FD {row['fd']:.2f} "
                f"(raw {row['fd_raw']:.2f}), class TV {row['class_tv']:.3f}, {row['wall_s']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    errors = noise_prediction_error(model, reference, (1e-3, 1e-2, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0), 0)
    elapsed = time.perf_counter() - started

    lines = [
        "| run | seed | NFE | FD denoised | FD raw | class TV |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['label']} | {r['seed']} | {r['nfe']:.0f} | {r['fd']:.2f} | {r['fd_raw']:.2f} "
        f"| {r['class_tv']:.3f} |"
        for r in results
    ]
    lines += [
        "",
        "| t | σ(t) | model E‖ε̂−z‖²/d | exact empirical | Gaussian | ε̂ = 0 |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {e['t']:g} | {e['sigma']:.4f} | {e['model']:.4f} | {e['exact_empirical']:.4f} "
        f"| {e['gaussian']:.4f} | {e['zero']:.3f} |"
        for e in errors
    ]
    table = "\n".join(lines)
    print(table)
    command = "python bench/digits_gap.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"total {elapsed / 60:.1f} min, one thread; {command}")
    (args.out / "digits_gap.md").write_text(table + "\n")
    (args.out / "digits_gap.json").write_text(
        json.dumps(dict(command=command, elapsed_s=elapsed, runs=results, errors=errors), indent=1)
    )


if __name__ == "__main__":
    main()

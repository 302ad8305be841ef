"""Score samplers on an exact-score Gaussian mixture: quality against score evaluations, one thread.

Targets (ten components each): in 2-D a ring of ten modes with weights 1 : 2 : ... : 10, in the
other dimensions ``GaussianMixture.random(dim, 10)``, both placed in the process's data range
([-1, 1] for VP, [0, 1] for VE). The score is exact, so every difference is the sampler's.

Distance (the main one): the mean negative log-likelihood under the true clean mixture of the
denoised samples, minus that of exact samples of ``p_eps`` (``GaussianMixture.sample_perturbed`` at
``t = eps``) denoised the same way (Tweedie, ``(x + σ² s(x, eps))/α``). Both means are stratified
by mixture component (each sample is assigned to its most probable component under the clean
mixture, and the per-component means are weighted with the true weights): the components' typical
log-likelihoods differ by thousands of nats in 3072-D, so an unstratified mean is dominated by how
many samples each component happened to get (the mode weights are reported separately, as the
total variation between the true weights and the assigned fractions). The table gives ΔNLL with
its sign (negative: samples more concentrated than ``p_eps``, too sharp); the distance is its
absolute value. "raw" is the same difference without denoising, against exact ``p_eps``
samples. Also reported: the Fréchet distance of the denoised samples' means and covariances to
the denoised exact reference (computed through the samples' cross Gram matrix, which gives the
exact value without ``D x D`` square roots).

Settings (``CONFIGS``): every sampler of ``sdekit_score.sampling.samplers.SAMPLERS`` that has a
configuration here runs, so a sampler appears as soon as it is registered: Euler–Maruyama at
50–2000 steps; Gotta Go Fast at eps_rel 0.01/0.02/0.05/0.1 (noise re-drawn on rejection as in the
paper, and in 2-D also with one Brownian path per sample); predictor–corrector (1000 steps, one
corrector step; not in ``--quick``); the probability-flow ODE (Dormand–Prince, rtol = atol =
1e-5); DPM-Solver++(2M) and (3M), UniPC, adaptive DPM-Solver++ and SDE-DPM-Solver++(2M);
``adaptive``; annealed Langevin and consistent annealed sampling (VE
only, the paper's CIFAR-10 ladder and steps). A configured option that a sampler does not take
skips that row (with a note on stderr). Then k-diffusion's samplers (``KDIFFUSION``; see
``bench/kdiffusion.py`` for how its denoiser is built from the exact score, and how to get its
source without making it a dependency), the fixed-step ones on the Karras schedule (ρ = 7) as
k-diffusion recommends. NFE is per sample and includes the denoising evaluation (none for
ALS/CAS). Every setting runs once per seed (``--seeds``); the table and plots give the mean over
seeds, "±" the standard error of that mean, and "spread" the standard deviation between seeds.
The last rows of each block give the NFE at which GGF's |ΔNLL| first falls to that of EM at
500/1000/2000 steps (linear in log NFE between the two GGF settings that bracket it).

**The digits model** (``--digits CHECKPOINT``, e.g. the demo's ``runs/demo/model_main``): the same
samplers (``DIGITS_CONFIGS``, k-diffusion's as above) on a trained score network of the 8x8 digits,
2000 samples per run (``--digits-n``). Every run of a seed starts from the same prior draw (moved to
match ``p_T``'s moments where a sampler starts centred, ``init``). Quality is the demo's digits FD
(classifier features, samples denoised and clamped to the data range, against all 1797 digits) and
the class TV (total variation between the classifier's class proportions of the samples and of the
digits); the table gives the mean over seeds with the standard error of that mean, and for each run
its FD minus that of ``unipc`` with 399 steps on the same prior draw, uncentred (``init="prior"``:
the converged probability flow of the papers' start; paired, so the prior draws' noise cancels).
``--dims`` with no value runs the digits block alone.

    python bench/samplers.py --out DIR [--dims 2 3072] [--processes vp ve] [--seeds 0 1]
                             [--batch-2d 10000] [--batch-hd 1000] [--quick]
                             [--kdiffusion PATH | --no-kdiffusion]
                             [--only SAMPLER ...] [--adaptive-tols T ...]
                             [--digits CHECKPOINT] [--digits-n 2000]

Prints one table (and one for the digits); writes ``samplers.json``, ``samplers.md``,
``samplers_quality_vs_nfe.png`` (all settings) and one ``samplers_<dim>d_<process>.png`` per
setting (with ``--digits``: ``samplers_digits.md``, ``.json`` and ``.png``) into ``--out`` and
nothing elsewhere.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

import sdekit_score as ss
from sdekit_score.evaluation.metrics import gaussian_frechet
from sdekit_score.sampling.samplers import SAMPLERS

sys.path.insert(0, str(Path(__file__).parent))
import kdiffusion  # noqa: E402  (a sibling script of this benchmark, not a package)

MATCH_EM_STEPS = (500, 1000, 2000)


# --------------------------------------------------------------------------- targets and metrics


def make_target(dim: int, process) -> ss.GaussianMixture:
    low, high = process.data_range
    if dim != 2:
        return ss.GaussianMixture.random(dim, 10, seed=0, data_range=process.data_range)
    centre, half = (low + high) / 2, (high - low) / 2
    angles = 2 * math.pi * torch.arange(10, dtype=torch.float64) / 10
    means = centre + 0.8 * half * torch.stack([angles.cos(), angles.sin()], dim=1)
    return ss.GaussianMixture(means, 0.04 * half, torch.arange(1, 11, dtype=torch.float64))


def denoise(process, score_fn, x: torch.Tensor) -> torch.Tensor:
    """Tweedie's denoising at ``t = eps``, as ``sdekit_score.sample(..., denoise=True)`` does it."""
    t = torch.full(x.shape[:1], process.eps, dtype=x.dtype)
    sigma = process.sigma(t).to(x.dtype)[:, None]
    alpha = process.alpha(t).to(x.dtype)[:, None]
    return (x + sigma**2 * score_fn(x, t)) / alpha


class Reference:
    """Exact samples of ``p_eps`` (raw or denoised) and what the distances need of them."""

    def __init__(self, mixture: ss.GaussianMixture, x: torch.Tensor):
        self.mixture = mixture
        x = x.double()
        self.mean = x.mean(0)
        self.centred = x - self.mean
        self.trace = float(self.centred.square().sum()) / (len(x) - 1)
        self.strata = stratified_nll(mixture, x)


def component(mixture: ss.GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """The most probable component of each sample under the clean mixture (isotropic components)."""
    var = mixture.variances[:, 0]  # (K,)
    sq = torch.cdist(x, mixture.means).square()  # (N, K)
    logits = mixture.weights.log() - 0.5 * mixture.dim * var.log() - 0.5 * sq / var
    return logits.argmax(1)


def stratified_nll(mixture: ss.GaussianMixture, x: torch.Tensor) -> dict:
    """Per-component count, mean and variance of the clean-mixture NLL, and the plain mean."""
    nll = -mixture.log_prob(x)
    k = component(mixture, x)
    counts = torch.bincount(k, minlength=mixture.n_components).double()
    sums = torch.zeros(mixture.n_components, dtype=torch.float64).index_add_(0, k, nll)
    squares = torch.zeros(mixture.n_components, dtype=torch.float64).index_add_(0, k, nll**2)
    means = sums / counts.clamp_min(1)
    variances = (squares / counts.clamp_min(1) - means**2).clamp_min(0)
    return dict(counts=counts, means=means, variances=variances, mean=float(nll.mean()))


def delta_nll(samples: dict, reference: dict, weights: torch.Tensor) -> tuple[float, float, bool]:
    """(stratified ΔNLL, its standard error, whether stratification was possible)."""
    if bool((samples["counts"] == 0).any()):
        return samples["mean"] - reference["mean"], math.nan, False
    diff = (weights * (samples["means"] - reference["means"])).sum()
    var = (
        weights**2
        * (
            samples["variances"] / samples["counts"]
            + reference["variances"] / reference["counts"].clamp_min(1)
        )
    ).sum()
    return float(diff), float(var.sqrt()), True


def frechet(x: torch.Tensor, reference: Reference) -> float:
    """Fréchet distance of Gaussians fitted to ``x`` and to the reference, exactly.

    With centred samples ``A`` (n x D) and ``B`` (m x D), ``S_a = AᵀA/(n−1)``, ``S_b = BᵀB/(m−1)``
    and the non-zero eigenvalues of ``S_a S_b`` are the squared singular values of ``A Bᵀ`` over
    ``(n−1)(m−1)``, so ``tr (S_a^½ S_b S_a^½)^½ = ‖A Bᵀ‖_* / √((n−1)(m−1))``: when ``D`` exceeds
    the sample sizes, an ``n x m`` SVD replaces two ``D x D`` eigendecompositions.
    """
    x = x.double()
    if x.shape[1] < len(x):
        return gaussian_frechet(x, reference.centred + reference.mean)
    mean = x.mean(0)
    centred = x - mean
    n, m = len(x), len(reference.centred)
    trace = float(centred.square().sum()) / (n - 1)
    nuclear = float(torch.linalg.svdvals(centred @ reference.centred.T).sum())
    cross = nuclear / math.sqrt((n - 1) * (m - 1))
    distance = float((mean - reference.mean).square().sum()) + trace + reference.trace - 2 * cross
    return max(distance, 0.0)


def mode_weight_tv(mixture: ss.GaussianMixture, x: torch.Tensor) -> float:
    counts = torch.bincount(component(mixture, x.double()), minlength=mixture.n_components)
    return 0.5 * float((counts.double() / len(x) - mixture.weights).abs().sum())


# --------------------------------------------------------------------------- runs


def _steps(name: str, counts, **extra) -> list[tuple[str, dict]]:
    return [(f"{n} {name}", {"steps": n, **extra}) for n in counts]


def _config_em(kind, dim, quick):
    return _steps("steps", (50, 200, 1000) if quick else (50, 100, 200, 500, 1000, 2000))


def _config_ggf(kind, dim, quick):
    eps_rels = (0.02, 0.1) if quick else (0.01, 0.02, 0.05, 0.1)
    rows = [(f"eps_rel {e}", {"eps_rel": e, "brownian": "redraw"}) for e in eps_rels]
    if dim == 2:
        rows += [(f"eps_rel {e}, bridge", {"eps_rel": e, "brownian": "bridge"}) for e in eps_rels]
    return rows


def _config_dpmpp_2m(kind, dim, quick):
    return _steps("steps, logsnr", (24, 99) if quick else (14, 24, 49, 99, 199), schedule="logsnr")


def _config_dpm_adaptive(kind, dim, quick):
    tolerances = [(0.05, 0.0078), (0.01, 1e-3)] + ([] if quick else [(0.02, 0.0078)])
    return [(f"rtol {r}, atol {a}", {"rtol": r, "atol": a}) for r, a in tolerances]


def _config_adaptive(kind, dim, quick):
    return [(f"tol {t}", {"tol": t}) for t in ((0.1, 0.02) if quick else (0.1, 0.05, 0.02, 0.01))]


CONFIGS = {
    "em": _config_em,
    "ggf": _config_ggf,
    "adaptive": _config_adaptive,
    "dpmpp_2m": _config_dpmpp_2m,
    "dpmpp_3m": _config_dpmpp_2m,
    "unipc": _config_dpmpp_2m,
    "dpm_adaptive": _config_dpm_adaptive,
    "dpmpp_2m_sde": _config_dpmpp_2m,
    "pc": lambda kind, dim, quick: [] if quick else [("1000 steps, 1 corrector", {})],
    "ode": lambda kind, dim, quick: [("dopri5, tol 1e-5", {})],
    "als": lambda kind, dim, quick: [("232 levels, paper step", {})] if kind == "ve" else [],
    "cas": lambda kind, dim, quick: [("232 levels, paper step", {})] if kind == "ve" else [],
}
"""Settings per sampler name: ``(process kind, dim, quick) -> [(setting, options)]``."""


def _kd_fixed(quick: bool, evaluations_per_step: int) -> list[tuple[str, dict]]:
    nfes = (50, 200) if quick else (25, 50, 100, 200, 500)
    steps = [max(1, round((n + evaluations_per_step - 1) / evaluations_per_step)) for n in nfes]
    return _steps("steps, karras", steps)


KDIFFUSION = {
    "sample_euler": lambda quick: _kd_fixed(quick, 1),
    "sample_heun": lambda quick: _kd_fixed(quick, 2),
    "sample_dpmpp_2m": lambda quick: _kd_fixed(quick, 1),
    "sample_dpmpp_sde": lambda quick: _kd_fixed(quick, 2),
    "sample_dpmpp_2m_sde": lambda quick: _kd_fixed(quick, 1),
    "sample_euler_ancestral": lambda quick: _kd_fixed(quick, 1),
    "sample_dpm_adaptive": lambda quick: _config_dpm_adaptive(None, None, quick),
}
"""k-diffusion's samplers: ``quick -> [(setting, options)]`` (``steps`` on the Karras schedule;
the step counts put heun and dpmpp_sde, two evaluations per step, at the same NFE)."""


def settings(kind: str, dim: int, quick: bool) -> list[tuple[str, str, dict]]:
    """(sampler, setting, options) of every configured sampler that is registered."""
    runs = []
    for name, config in CONFIGS.items():
        if name not in SAMPLERS:
            continue
        accepted = set(inspect.signature(SAMPLERS[name]).parameters)
        for setting, options in config(kind, dim, quick):
            unknown = sorted(set(options) - accepted)
            if unknown:
                print(f"  skipping {name} {setting}: no option {unknown}", file=sys.stderr)
                continue
            runs.append((name, setting, options))
    return runs


def run_one(mixture, process, sampler, options, batch, seed, refs) -> dict:
    score_fn = mixture.score(process)
    shape = (batch, mixture.dim)
    start = time.perf_counter()
    if sampler in ("als", "cas"):  # denoising reuses the last evaluation: run both ways
        den, stats = ss.sample(score_fn, process, shape, sampler=sampler, generator=seed, **options)
        wall = time.perf_counter() - start
        raw, _ = ss.sample(
            score_fn, process, shape, sampler=sampler, generator=seed, denoise=False, **options
        )
        nfe = stats["nfe"]
    else:  # the same run as denoise=True, with the state before denoising kept
        raw, stats = ss.sample(
            score_fn, process, shape, sampler=sampler, generator=seed, denoise=False, **options
        )
        den = denoise(process, score_fn, raw)
        wall = time.perf_counter() - start
        nfe = stats["nfe"] + 1
    row = dict(nfe=float(nfe.double().mean()), wall_s=wall)
    row.update(measure(mixture, raw, den, refs))
    if "rejected" in stats:
        attempts = (stats["accepted"] + stats["rejected"]).double()
        row["rejected_fraction"] = float((stats["rejected"].double() / attempts).mean())
    return row


def run_kdiffusion(mixture, process, kd, name, options, batch, seed, refs) -> dict:
    """One k-diffusion sampler from a prior draw of the process, measured as ``run_one``."""
    denoiser = kdiffusion.Denoiser(process, mixture.score(process))
    x_T = process.prior_sample((batch, mixture.dim), generator=seed, dtype=torch.float32)
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        # torchsde's Brownian tree warns when float32 levels round just outside its span
        warnings.filterwarnings("ignore", message="Should have t")
        raw, den, nfe = kdiffusion.run(kd, name, denoiser, x_T, seed, **options)
    row = dict(nfe=float(nfe), wall_s=time.perf_counter() - start)
    row.update(measure(mixture, raw, den, refs))
    return row


def measure(mixture, raw, den, refs) -> dict:
    raw, den = raw.double(), den.double()
    d_raw, se_raw, _ = delta_nll(stratified_nll(mixture, raw), refs["raw"].strata, mixture.weights)
    d_den, se_den, stratified = delta_nll(
        stratified_nll(mixture, den), refs["den"].strata, mixture.weights
    )
    return dict(
        dnll_raw=d_raw,
        dnll=d_den,
        dnll_se=se_den,
        dnll_raw_se=se_raw,
        stratified=stratified,
        fd=frechet(den, refs["den"]),
        tv=mode_weight_tv(mixture, den),
    )


def matching_nfe(ggf_rows: list[dict], target: float) -> tuple[float, str]:
    """NFE at which GGF's distance |ΔNLL| first falls to ``target``, going up in NFE.

    Linear in log NFE between the two settings that bracket it; ``"<="`` when the cheapest
    setting is already as good, ``">"`` when none is.
    """
    points = sorted((r["nfe"], abs(r["dnll"])) for r in ggf_rows)
    if points[0][1] <= target:
        return points[0][0], "<="
    for (n0, d0), (n1, d1) in zip(points, points[1:], strict=False):
        if d0 > target >= d1:
            w = (d0 - target) / (d0 - d1)
            return math.exp((1 - w) * math.log(n0) + w * math.log(n1)), "="
    return points[-1][0], ">"


def ggf_matches(block: list[dict]) -> list[dict]:
    """Rows giving the NFE at which each GGF family matches EM at 500/1000/2000 steps."""
    ems = {r["setting"]: r for r in block if r["sampler"] == "em"}
    families = {
        "ggf": [r for r in block if r["sampler"] == "ggf" and "bridge" not in r["setting"]],
        "ggf, bridge": [r for r in block if r["sampler"] == "ggf" and "bridge" in r["setting"]],
    }
    rows = []
    for family, ggfs in families.items():
        for steps in MATCH_EM_STEPS:
            em = ems.get(f"{steps} steps")
            if em is None or not ggfs:
                continue
            target = abs(em["dnll"])
            nfe, sign = matching_nfe(ggfs, target)
            ratio = em["nfe"] / nfe
            note = {
                "=": f"EM needs {ratio:.1f}x the NFE",
                "<=": f"EM needs >= {ratio:.1f}x the NFE",
                ">": f"not reached; EM needs < {ratio:.1f}x the NFE",
            }[sign]
            if target < 2 * em["dnll_se"]:
                note += "; EM within 2 SE of exact"
            rows.append(
                dict(
                    sampler=f"{family} = em",
                    setting=f"|ΔNLL| of EM {steps} steps",
                    nfe=nfe,
                    sign="" if sign == "=" else sign,
                    ratio=ratio,
                    dnll=target,
                    note=note,
                )
            )
    return rows


def exact_samples(mixture, process, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` exact draws of ``p_eps`` (float32, as the samplers') and their denoised versions."""
    t_eps = torch.tensor(process.eps)
    x = mixture.sample_perturbed(n, t_eps, process, generator=seed, dtype=torch.float32)
    return x, denoise(process, mixture.score(process), x)


def run_block(dim: int, kind: str, batch: int, args, kd) -> list[dict]:
    """Every setting on one target for every seed, averaged over seeds: the exact floor first,
    then ours, then k-diffusion's, GGF-vs-EM matches last."""
    process = ss.VPSDE() if kind == "vp" else ss.VESDE()
    mixture = make_target(dim, process)
    ref_raw, ref_den = exact_samples(
        mixture, process, args.reference_factor * batch, 10_000 + args.seeds[0]
    )
    refs = {"raw": Reference(mixture, ref_raw), "den": Reference(mixture, ref_den)}
    runs = [("exact", f"p_eps, {batch} samples", None)]
    runs += [
        (name, setting, ("ours", options))
        for name, setting, options in settings(kind, dim, args.quick)
    ]
    if kd is not None:
        runs += [
            (f"kd {name.removeprefix('sample_')}", setting, ("kd", name, options))
            for name, config in KDIFFUSION.items()
            for setting, options in config(args.quick)
        ]
    if args.adaptive_tols:
        runs = [r for r in runs if r[0] != "adaptive"] + [
            ("adaptive", f"tol {t:g}", ("ours", {"tol": t})) for t in args.adaptive_tols
        ]
    if args.only:
        runs = [r for r in runs if r[2] is None or r[0] in args.only]
    block = []
    for sampler, setting, how in runs:
        rows = []
        for seed in args.seeds:
            if how is None:
                raw, den = exact_samples(mixture, process, batch, 20_000 + seed)
                row = dict(nfe=0.0, wall_s=0.0, **measure(mixture, raw, den, refs))
            elif how[0] == "ours":
                row = run_one(mixture, process, sampler, dict(how[1]), batch, seed, refs)
            else:
                row = run_kdiffusion(mixture, process, kd, how[1], dict(how[2]), batch, seed, refs)
            rows.append(row)
        block.append(dict(sampler=sampler, setting=setting, **average(rows)))
        row = block[-1]
        print(
            f"  {dim}-D {kind} {sampler} {setting}: NFE {row['nfe']:.0f}, "
            f"{row['wall_s']:.1f} s, ΔNLL {row['dnll']:.2f} (spread {row['spread']:.2f})",
            file=sys.stderr,
            flush=True,
        )
    block += ggf_matches(block)
    for r in block:
        r.update(dim=dim, process=kind, batch=batch)
    return block


def average(rows: list[dict]) -> dict:
    """The mean over seeds of each figure; ``dnll_se`` becomes the standard error of the mean,
    ``spread`` is the standard deviation of ΔNLL between seeds, ``per_seed`` keeps the rows."""
    k = len(rows)
    out = {
        key: sum(r[key] for r in rows) / k
        for key in rows[0]
        if isinstance(rows[0][key], float) and key not in ("dnll_se", "dnll_raw_se")
    }
    for key in ("dnll_se", "dnll_raw_se"):
        out[key] = math.sqrt(sum(r[key] ** 2 for r in rows)) / k
    out["stratified"] = all(r["stratified"] for r in rows)
    out["spread"] = statistics.stdev(r["dnll"] for r in rows) if k > 1 else math.nan
    out["per_seed"] = rows
    return out


# --------------------------------------------------------------------------- the digits model


def _digits_em(kind, dim, quick):
    return _steps("steps", (250,) if quick else (100, 250, 1000))


def _digits_multistep(kind, dim, quick):
    return _steps("steps, logsnr", (24, 49) if quick else (14, 24, 49, 99), schedule="logsnr")


DIGITS_CONFIGS = {
    "em": _digits_em,
    "pc": lambda kind, dim, quick: [] if quick else [("1000 steps, 1 corrector", {})],
    "ode": lambda kind, dim, quick: [("dopri5, tol 1e-5", {})],
    "ggf": lambda kind, dim, quick: [(f"eps_rel {e}", {"eps_rel": e}) for e in (0.01, 0.05)],
    "adaptive": lambda kind, dim, quick: [(f"tol {t}", {"tol": t}) for t in (0.1, 0.05, 0.02)],
    "dpmpp_2m": _digits_multistep,
    "dpmpp_3m": _digits_multistep,
    "unipc": _digits_multistep,
    "dpm_adaptive": _config_dpm_adaptive,
    "dpmpp_2m_sde": _digits_multistep,
    "cas": lambda kind, dim, quick: [("232 levels, paper step", {})],
}
"""Our samplers' settings on the digits model (same signature as ``CONFIGS``)."""

DIGITS_CONVERGED = ("unipc", {"steps": 399, "schedule": "logsnr", "init": "prior"})


class DigitsScore:
    """What every digits run is measured with: the model, its prior draws, the classifier."""

    def __init__(self, checkpoint: Path, n: int):
        from sdekit_score.evaluation.data import digits
        from sdekit_score.evaluation.metrics import digits_classifier
        from sdekit_score.training.trainer import load_checkpoint

        self.model = load_checkpoint(checkpoint)
        self.process, self.n = self.model.process, n
        self.classifier = digits_classifier()
        self.reference = digits(self.process.data_range).tensors[0]
        self.reference_classes = self.classes(self.reference)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().reshape(-1, 1, 8, 8).clamp(*self.process.data_range)

    def classes(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.process.data_range  # the classifier reads [-1, 1]
        with torch.no_grad():
            predicted = self.classifier(2 * (self.images(x) - low) / (high - low) - 1).argmax(1)
        return torch.bincount(predicted, minlength=10).double() / len(x)

    def fd(self, x: torch.Tensor) -> float:
        """The demo's digits FD of samples ``x`` against all the digits."""
        from sdekit_score.evaluation.metrics import digits_fd

        data_range = self.process.data_range
        return digits_fd(self.images(x), self.reference, self.classifier, data_range=data_range)

    def class_tv(self, x: torch.Tensor) -> float:
        """Total variation between the predicted classes of ``x`` and of the digits."""
        return 0.5 * float((self.classes(x) - self.reference_classes).abs().sum())

    def measure(self, den: torch.Tensor) -> dict:
        return dict(fd=self.fd(den), class_tv=self.class_tv(den))

    def run(self, sampler: str, options: dict, seed: int, kd=None) -> dict:
        """One run from the prior draw of ``seed``: ours by name, k-diffusion's (``kd``) by its
        function name."""
        start = time.perf_counter()
        with torch.no_grad():
            if kd is None:
                raw, stats = ss.sample(
                    self.model, self.process, (self.n, 64), sampler=sampler, generator=seed,
                    denoise=False, **options,
                )  # fmt: skip
                den = denoise(self.process, self.model, raw)
                nfe = float(stats["nfe"].double().mean()) + 1
            else:
                denoiser = kdiffusion.Denoiser(self.process, self.model)
                x_T = self.process.prior_sample((self.n, 64), generator=seed)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Should have t")
                    _, den, nfe = kdiffusion.run(kd, sampler, denoiser, x_T, seed, **options)
                nfe = float(nfe)
        return dict(nfe=nfe, wall_s=time.perf_counter() - start, **self.measure(den))


def run_digits(args, kd) -> list[dict]:
    """Every digits setting for every seed, paired with the converged flow of the same seed."""
    digits_score = DigitsScore(args.digits, args.digits_n)
    runs = []
    for name, config in DIGITS_CONFIGS.items():
        runs += [
            (name, setting, options, None) for setting, options in config("vp", 64, args.quick)
        ]
    if kd is not None:
        runs += [
            (f"kd {name.removeprefix('sample_')}", setting, options, name)
            for name, config in KDIFFUSION.items()
            for setting, options in config(args.quick)
        ]
    if args.only:
        runs = [r for r in runs if r[0] in args.only]
    flow = {seed: digits_score.run(*DIGITS_CONVERGED, seed)["fd"] for seed in args.seeds}
    block = []
    for sampler, setting, options, kd_name in runs:
        rows = []
        for seed in args.seeds:
            if kd_name is None:
                row = digits_score.run(sampler, dict(options), seed)
            else:
                row = digits_score.run(kd_name, dict(options), seed, kd)
            row["fd_vs_flow"] = row["fd"] - flow[seed]
            rows.append(row)
        k = len(rows)
        mean = {key: sum(r[key] for r in rows) / k for key in rows[0]}
        se = {
            f"{key}_se": statistics.stdev(r[key] for r in rows) / math.sqrt(k)
            if k > 1
            else math.nan
            for key in ("fd", "fd_vs_flow", "class_tv")
        }
        block.append(dict(sampler=sampler, setting=setting, **mean, **se, per_seed=rows))
        print(
            f"  digits {sampler} {setting}: NFE {mean['nfe']:.0f}, FD {mean['fd']:.2f}, "
            f"vs flow {mean['fd_vs_flow']:+.2f}, {mean['wall_s']:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return block


DIGITS_COLUMNS = ("sampler", "setting", "NFE", "wall s", "FD", "±", "FD − flow", "±", "class TV")


def digits_table(block: list[dict]) -> list[list[str]]:
    return [
        [
            r["sampler"],
            r["setting"],
            f"{r['nfe']:.0f}",
            f"{r['wall_s']:.1f}",
            f"{r['fd']:.2f}",
            f"{r['fd_se']:.2f}",
            f"{r['fd_vs_flow']:+.2f}",
            f"{r['fd_vs_flow_se']:.2f}",
            f"{r['class_tv']:.3f}",
        ]
        for r in block
    ]


def plot_digits(block: list[dict], seeds: int, out: Path) -> None:
    """Digits FD against NFE, one line per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6))
    colours = iter(COLOURS * 4)
    groups: dict[str, list[dict]] = {}
    for r in block:
        groups.setdefault(r["sampler"], []).append(r)
    for label, points in groups.items():
        points = sorted(points, key=lambda r: r["nfe"])
        dashed = label.startswith("kd ")
        ax.errorbar(
            [p["nfe"] for p in points],
            [p["fd"] for p in points],
            yerr=[2 * p["fd_se"] for p in points] if seeds > 1 else None,
            capsize=2,
            label=label,
            color=next(colours),
            marker="x" if dashed else "o",
            linestyle="--" if dashed else "-",
        )
    ax.set_xscale("log")
    ax.set_xlabel("score evaluations per sample (denoising included)")
    ax.set_ylabel("digits FD (denoised; lower is better)")
    ax.set_title(f"8x8 digits model, mean of {seeds} seed{'s' * (seeds > 1)} (±2 SE)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "samplers_digits.png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- output


COLUMNS = (
    "dim",
    "process",
    "sampler",
    "setting",
    "NFE",
    "wall s",
    "ΔNLL raw",
    "ΔNLL den.",
    "±",
    "spread",
    "FD den.",
    "mode TV",
    "note",
)


def table_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        if r["sampler"].endswith("= em"):
            rows.append(
                [
                    str(r["dim"]),
                    r["process"],
                    r["sampler"],
                    r["setting"],
                    f"{r['sign']}{r['nfe']:.0f}",
                    "",
                    "",
                    f"{r['dnll']:.2f}",
                    "",
                    "",
                    "",
                    "",
                    r["note"],
                ]
            )
            continue
        note = [] if r.get("stratified", True) else ["unstratified"]
        if "rejected_fraction" in r:
            note.append(f"{100 * r['rejected_fraction']:.0f}% rejected")
        rows.append(
            [
                str(r["dim"]),
                r["process"],
                r["sampler"],
                r["setting"],
                f"{r['nfe']:.0f}" if r["nfe"] else "",
                f"{r['wall_s']:.1f}" if r["wall_s"] else "",
                f"{r['dnll_raw']:.2f}",
                f"{r['dnll']:.2f}",
                f"{r['dnll_se']:.2f}",
                "" if math.isnan(r["spread"]) else f"{r['spread']:.2f}",
                f"{r['fd']:.4g}",
                f"{r['tv']:.4f}",
                ", ".join(note),
            ]
        )
    return rows


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


SINGLE = dict(linestyle="none", markersize=8)
STYLE = {
    "EM": dict(color="tab:blue", marker="o"),
    "GGF (re-draw)": dict(color="tab:orange", marker="o"),
    "GGF (bridge)": dict(color="tab:green", marker="o"),
    "PC": dict(color="tab:red", marker="s", **SINGLE),
    "ODE": dict(color="tab:purple", marker="D", **SINGLE),
    "ALS": dict(color="tab:brown", marker="v", **SINGLE),
    "CAS": dict(color="tab:pink", marker="^", **SINGLE),
}
COLOURS = (
    "black",
    "tab:olive",
    "tab:cyan",
    "tab:gray",
    "darkgoldenrod",
    "navy",
    "crimson",
    "teal",
    "indigo",
    "yellowgreen",
    "peru",
    "slategray",
)
"""Fixed styles of the original series; others (new samplers: solid lines, k-diffusion's:
dashed) take ``COLOURS`` in turn."""


def series(rows: list[dict]) -> dict[str, list[dict]]:
    """The plotted groups of one panel's rows, each sorted by NFE."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        name = r["sampler"]
        if name == "exact" or name.endswith("= em"):
            continue
        if name == "ggf":
            label = "GGF (bridge)" if "bridge" in r["setting"] else "GGF (re-draw)"
        elif name in ("em", "pc", "ode", "als", "cas"):
            label = name.upper()
        else:
            label = name
        groups.setdefault(label, []).append(r)
    return {k: sorted(v, key=lambda r: r["nfe"]) for k, v in groups.items()}


def draw_panel(ax, rows: list[dict]) -> None:
    """ΔNLL after denoising against NFE for one target, the exact floor as a band."""
    floor = 2 * next(r for r in rows if r["sampler"] == "exact")["dnll_se"]
    ax.axhspan(-floor, floor, color="0.85", label="exact p_eps, ±2 SE")
    colours = iter(COLOURS * 4)
    for label, points in series(rows).items():
        style = STYLE.get(label)
        if style is None:
            dashed = label.startswith("kd ")
            style = dict(color=next(colours), marker="x" if dashed else "o")
            style["linestyle"] = "--" if dashed else "-"
        ax.errorbar(
            [p["nfe"] for p in points],
            [p["dnll"] for p in points],
            yerr=[2 * p["dnll_se"] for p in points],
            capsize=2,
            label=label,
            **style,
        )
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=floor)
    ax.set_xlabel("score evaluations per sample (denoising included)")
    ax.set_ylabel("ΔNLL after denoising (nats, symlog)")
    seeds = len(rows[0]["per_seed"])
    ax.set_title(
        f"{rows[0]['dim']}-D, {rows[0]['process'].upper()}, {rows[0]['batch']} samples per run, "
        f"mean of {seeds} seed{'s' * (seeds > 1)}"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)


def plot(results: list[dict], out: Path) -> None:
    """All settings in one figure, and one figure per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = list(dict.fromkeys(r["dim"] for r in results))
    kinds = list(dict.fromkeys(r["process"] for r in results))
    fig, axes = plt.subplots(
        len(dims), len(kinds), figsize=(6.5 * len(kinds), 5 * len(dims)), squeeze=False
    )
    for (i, dim), (j, kind) in ((a, b) for a in enumerate(dims) for b in enumerate(kinds)):
        rows = [r for r in results if (r["dim"], r["process"]) == (dim, kind)]
        draw_panel(axes[i][j], rows)
        single, ax = plt.subplots(figsize=(8, 6))
        draw_panel(ax, rows)
        single.tight_layout()
        single.savefig(out / f"samplers_{dim}d_{kind}.png", dpi=110)
        plt.close(single)
    fig.tight_layout()
    fig.savefig(out / "samplers_quality_vs_nfe.png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the outputs")
    parser.add_argument(
        "--dims", type=int, nargs="*", default=[2, 3072], help="mixtures' dimensions (none: skip)"
    )
    parser.add_argument("--processes", nargs="+", default=["vp", "ve"], choices=["vp", "ve"])
    parser.add_argument("--batch-2d", type=int, default=10000, help="samples per run in 2-D")
    parser.add_argument("--batch-hd", type=int, default=1000, help="samples per run above 2-D")
    parser.add_argument(
        "--reference-factor", type=int, default=4, help="exact samples per run sample"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer settings per sampler, no PC (2001 NFE)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    kdiffusion.add_arguments(parser)
    parser.add_argument(
        "--only",
        nargs="+",
        help="run only these samplers (ours by name, k-diffusion's as 'kd dpmpp_2m_sde')",
    )
    parser.add_argument(
        "--adaptive-tols", type=float, nargs="+", help="tolerances of the adaptive rows"
    )
    parser.add_argument("--digits", type=Path, help="a digits checkpoint (file or training dir)")
    parser.add_argument("--digits-n", type=int, default=2000, help="samples per digits run")
    args = parser.parse_args(argv)
    kd = kdiffusion.sampling_from_arguments(parser, args)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    for dim in args.dims:
        batch = args.batch_2d if dim == 2 else args.batch_hd
        for kind in args.processes:
            results.extend(run_block(dim, kind, batch, args, kd))
    digits_block = run_digits(args, kd) if args.digits is not None else []
    elapsed = time.perf_counter() - started
    command = "python bench/samplers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if digits_block:
        lines = ["| " + " | ".join(DIGITS_COLUMNS) + " |", "|" + "---|" * len(DIGITS_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in digits_table(digits_block)]
        print("\n".join(lines))
        (args.out / "samplers_digits.md").write_text("\n".join(lines) + "\n")
        (args.out / "samplers_digits.json").write_text(
            json.dumps(dict(command=command, results=digits_block), indent=1)
        )
        plot_digits(digits_block, len(args.seeds), args.out)
    if not results:
        print(f"total {elapsed / 60:.1f} min, one thread; {command}")
        return
    rows = table_rows(results)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print(f"total {elapsed / 60:.1f} min, one thread; {command}")
    (args.out / "samplers.md").write_text(markdown(rows) + "\n")
    (args.out / "samplers.json").write_text(
        json.dumps(dict(command=command, elapsed_s=elapsed, results=results), indent=1)
    )
    plot(results, args.out)


if __name__ == "__main__":
    main()

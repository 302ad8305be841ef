"""The named samplers on analytic Gaussian mixtures, whose perturbed scores are exact.

With the exact score the only errors left are the samplers' own, so the samples must match the
mixture: Fréchet distance of means and covariances to a large clean reference sample, and the total
variation between the mixture weights and the fractions of samples nearest to each component mean.
The thresholds sit a few standard deviations above the spread of exact samples of the same size
(measured over seeds) and far below what Euler–Maruyama with 10 steps gives, which is asserted too.
Annealed Langevin is left out of the distribution test: with the paper's step it does not
reach the target's within-mode spread (see the consistent-annealed-sampling test below).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import warnings

import pytest
import torch

import sdekit
import sdekit_score as ss
from sdekit_score.evaluation.metrics import gaussian_frechet
from sdekit_score.sampling.processes import EDMProcess

BATCH = {2: 2000, 256: 1000}
REFERENCE = {2: 20000, 256: 5000}
# thresholds on FD / half-width^2 of the data range and on the mode-weight TV; exact samples of
# the same size gave FD up to 0.002 (2-D) and 0.40 (256-D), TV up to 0.043 (both)
MAX_FD = {2: 0.005, 256: 0.5}
MAX_TV = {2: 0.06, 256: 0.08}


PROCESSES = {"vp": ss.VPSDE, "ve": ss.VESDE, "subvp": ss.SubVPSDE, "edm": EDMProcess}


def ring(process: ss.VESDE | ss.VPSDE) -> ss.GaussianMixture:
    """Eight modes on a circle in the process's data range, weights 1 : 2 : ... : 8."""
    low, high = process.data_range
    centre, half = (low + high) / 2, (high - low) / 2
    angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    means = centre + 0.8 * half * torch.stack([angles.cos(), angles.sin()], dim=1)
    return ss.GaussianMixture(means, 0.05 * half, torch.arange(1, 9, dtype=torch.float64))


@functools.cache
def target(kind: str, dim: int):
    """(process, mixture, clean reference sample, half-width of the data range)."""
    process = PROCESSES[kind]()
    mixture = (
        ring(process)
        if dim == 2
        else ss.GaussianMixture.random(dim, seed=0, data_range=process.data_range)
    )
    reference = mixture.sample(REFERENCE[dim], generator=12345)
    low, high = process.data_range
    return process, mixture, reference, (high - low) / 2


@functools.cache
def run(kind: str, dim: int, sampler: str, options: tuple = ()):
    """Samples (denoised) and stats of one sampler on one target, seed 0; shared between tests."""
    process, mixture, _, _ = target(kind, dim)
    shape = (BATCH[dim], dim)
    return ss.sample(
        mixture.score(process), process, shape, sampler=sampler, generator=0, **dict(options)
    )


def nearest_component(mixture: ss.GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x.double(), mixture.means).argmin(dim=1)


def mode_weight_tv(mixture: ss.GaussianMixture, x: torch.Tensor) -> float:
    counts = torch.bincount(nearest_component(mixture, x), minlength=mixture.n_components)
    return 0.5 * float((counts.double() / len(x) - mixture.weights).abs().sum())


def within_mode_spread(mixture: ss.GaussianMixture, x: torch.Tensor) -> float:
    """Mean squared distance to the nearest component mean, per dimension."""
    distance = torch.cdist(x.double(), mixture.means).amin(dim=1)
    return float(distance.square().mean()) / mixture.dim


def distances(kind: str, dim: int, x: torch.Tensor) -> tuple[float, float]:
    """(Fréchet distance / half-width^2, mode-weight TV) of ``x`` to the mixture."""
    _, mixture, reference, half = target(kind, dim)
    return gaussian_frechet(x, reference) / half**2, mode_weight_tv(mixture, x)


BRIDGE = (("brownian", "bridge"),)
REDRAW = (("brownian", "redraw"),)
MATCHING = [
    (kind, dim, sampler, options)
    for dim in (2, 256)
    for kind in ("vp", "ve")
    for sampler, options in [
        ("em", (("steps", 250),)),
        ("pc", (("steps", 250),)),
        ("ode", ()),
        # in 2-D the re-drawn noise biases GGF (test below); the bridge keeps it exact
        ("ggf", BRIDGE if dim == 2 else ()),
    ]
    + [("cas", ())]  # on VP it runs on the levels sigma/alpha of the scaled state x/alpha
]


@pytest.mark.parametrize("kind, dim, sampler, options", MATCHING)
def test_sampler_matches_the_mixture_in_moments_and_mode_weights(kind, dim, sampler, options):
    x, stats = run(kind, dim, sampler, options)
    fd, tv = distances(kind, dim, x)
    assert fd < MAX_FD[dim], f"Fréchet distance {fd:.4g}"
    assert tv < MAX_TV[dim], f"mode-weight TV {tv:.4g}"


@pytest.mark.parametrize("kind, steps", [("subvp", 250), ("edm", 1000)])
def test_pc_matches_the_mixture_on_sub_vp_and_edm(kind, steps):
    # The processes of the "other" branch of the reverse-diffusion predictor (F = f dt,
    # G = g sqrt(dt)). EDM's time is its noise level, uniform steps on [0.002, 80]: 1000 of them
    # reach the thresholds (250 give FD 0.015, TV 0.10).
    x, stats = run(kind, 2, "pc", (("steps", steps),))
    fd, tv = distances(kind, 2, x)
    assert fd < MAX_FD[2] and tv < MAX_TV[2], (fd, tv)
    assert bool((stats["nfe"] == 2 * steps + 1).all())


# Relative error of the variance of the predictor alone (corrector_steps=0) on N(0, 0.3²) in 4-D,
# measured over seeds 0, 1, 2 with 20 000 samples (SE 0.5%): sub-VP, 200 steps: +0.8%, +1.6%,
# +1.2%; EDM, 800 steps: +3.9%, +4.8%, +5.9%. A sign error in the drift's shift F gives -47% on
# sub-VP, G² scaled by 0.9 gives +13%, a sign error on the score term diverges.
PREDICTOR_BIAS = {"subvp": (200, 0.008, 0.016), "edm": (800, 0.039, 0.059)}


@pytest.mark.parametrize("kind", ["subvp", "edm"])
def test_the_pc_predictor_alone_keeps_a_gaussians_variance(kind):
    steps, low, high = PREDICTOR_BIAS[kind]
    process, n, dim, std = PROCESSES[kind](), 5000, 4, 0.3
    gaussian = ss.GaussianMixture(torch.zeros(1, dim, dtype=torch.float64), std)
    x, _ = ss.sample(
        gaussian.score(process),
        process,
        (n, dim),
        sampler="pc",
        generator=0,
        steps=steps,
        corrector_steps=0,
        denoise=False,
        dtype=torch.float64,
    )
    t = torch.tensor([process.eps], dtype=torch.float64)
    target = float(process.alpha(t) ** 2 * std**2 + process.sigma(t) ** 2)
    error = float(x.var(0).mean()) / target - 1
    se = math.sqrt(2 / (n * dim))  # of a sample variance of n·dim independent Gaussians
    assert low - 4 * se <= error <= high + 4 * se, (error, se)


@pytest.mark.parametrize("kind, dim", [("vp", 2), ("ve", 2), ("vp", 256), ("ve", 256)])
def test_euler_maruyama_with_ten_steps_fails_those_thresholds(kind, dim):
    x, stats = run(kind, dim, "em", (("steps", 10),))
    fd, tv = distances(kind, dim, x)
    assert fd > 2 * MAX_FD[dim] or tv > MAX_TV[dim], (fd, tv)
    assert bool((stats["nfe"] == 11).all())


def test_ggf_with_a_brownian_bridge_is_unbiased_where_redrawing_noise_is_not():
    """2-D VE: re-drawing the noise after a rejection selects small-noise draws and biases the
    samples (too wide modes, wrong weights); one Brownian path per sample does not."""
    _, mixture, _, _ = target("ve", 2)
    bridged, bridged_stats = run("ve", 2, "ggf", BRIDGE)
    redrawn, redrawn_stats = run("ve", 2, "ggf", REDRAW)
    fd_bridge, tv_bridge = distances("ve", 2, bridged)
    fd_redraw, tv_redraw = distances("ve", 2, redrawn)
    assert fd_bridge < MAX_FD[2] and tv_bridge < MAX_TV[2]
    assert fd_redraw > MAX_FD[2] and tv_redraw > MAX_TV[2]
    assert within_mode_spread(mixture, redrawn) > 1.3 * within_mode_spread(mixture, bridged)
    assert bool((bridged_stats["rejected"] > 0).all()) and bool(
        (redrawn_stats["rejected"] > 0).all()
    )


# --------------------------------------------------------------------------- final denoising

DENOISED = (
    [("vp", s, o) for s, o in [("em", 100), ("pc", 100), ("ode", None), ("ggf", None)]]
    + [("ve", s, o) for s, o in [("em", 100), ("pc", 100), ("ode", None), ("ggf", None)]]
    + [("ve", "als", None), ("ve", "cas", None)]
)


def sharp_mixture(process) -> ss.GaussianMixture:
    """Four nearly point-like modes in 16-D: what remains around them is the residual noise."""
    low, high = process.data_range
    means = low + (high - low) * (
        0.25
        + 0.5 * torch.rand(4, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    )
    return ss.GaussianMixture(means, 2e-4 * (high - low))


@pytest.mark.parametrize("kind, sampler, steps", DENOISED)
def test_final_denoising_removes_the_residual_noise_at_one_evaluation_or_none(kind, sampler, steps):
    process = ss.VPSDE() if kind == "vp" else ss.VESDE()
    mixture = sharp_mixture(process)
    score_fn = mixture.score(process)
    options = {} if steps is None else {"steps": steps}
    raw, raw_stats = ss.sample(
        score_fn, process, (200, 16), sampler=sampler, generator=1, denoise=False, **options
    )
    den, den_stats = ss.sample(
        score_fn, process, (200, 16), sampler=sampler, generator=1, denoise=True, **options
    )
    clean = float(mixture.variances.mean())
    raw_error = abs(within_mode_spread(mixture, raw) - clean)
    den_error = abs(within_mode_spread(mixture, den) - clean)
    assert den_error < 0.01 * raw_error, (raw_error, den_error)
    extra = den_stats["nfe"] - raw_stats["nfe"]
    assert bool((extra == (0 if sampler in ("als", "cas") else 1)).all())
    if sampler not in ("als", "cas"):  # Tweedie at t = eps, from the raw samples
        t = torch.full((200,), process.eps)
        sigma, alpha = process.sigma(t)[:, None], process.alpha(t)[:, None]
        torch.testing.assert_close(den, (raw + sigma**2 * score_fn(raw, t)) / alpha)


# --------------------------------------------------------------------------- annealed samplers

POINT = 0.5  # the point mass sits in the middle of VE's data range [0, 1]


@pytest.mark.parametrize(
    "process, options",
    [
        (ss.VESDE(), {}),  # the paper's 232 levels from 50 to 0.01, its step, U[0, 1] start
        (
            ss.VESDE(sigma_min=0.05, sigma_max=20.0),
            {"n_levels": 20, "step_lr": 0.3 * 0.05**2, "init": "prior"},
        ),
        (ss.VPSDE(), {"sigma_max": 5.0}),  # levels sigma/alpha from 5 down to about 0.01
        (ss.SubVPSDE(eps=0.05), {"sigma_max": 5.0, "n_levels": 100, "init": "prior"}),
    ],
    ids=["paper ladder", "short ladder", "vp", "subvp"],
)
def test_cas_keeps_the_noise_at_the_level_and_als_does_not(process, options):
    """On a point mass at ``x*`` (a mixture with std 1e-4), CAS keeps ``x = x* + σ_i z`` from
    level to level; the last, noiseless step then leaves ``(1 − η) σ_L z`` with ``η = ε/σ_L²``,
    and denoising leaves nothing. Annealed Langevin with the same ladder and step does not track
    the levels."""
    dim, batch = 64, 500
    point = ss.GaussianMixture(torch.full((1, dim), POINT, dtype=torch.float64), 1e-4)
    score_fn = point.score(process)
    sigma_last = process.noise_level_range()[0]
    step_lr = options.get("step_lr", 5.6e-6 * (sigma_last / 0.01) ** 2)
    eta = step_lr / sigma_last**2

    def residual_std(sampler, denoise, opts):
        x, _ = ss.sample(
            score_fn, process, (batch, dim), sampler=sampler, generator=2, denoise=denoise, **opts
        )
        return float((x.double() - POINT).square().mean().sqrt())

    assert residual_std("cas", False, options) / sigma_last == pytest.approx(1 - eta, rel=0.015)
    assert residual_std("cas", True, options) < 1e-3 * sigma_last
    als_options = {**options, "step_lr": options.get("step_lr", 1.8e-5 * (sigma_last / 0.01) ** 2)}
    als = residual_std("als", False, als_options) / sigma_last
    eta_als = als_options["step_lr"] / sigma_last**2
    assert abs(als - 1) > 0.1 and abs(als - (1 - eta_als)) > 0.1, als


# --------------------------------------------------------------------------- probability flow


def test_ode_sampler_spends_more_evaluations_for_less_error_as_the_tolerance_falls():
    process = ss.VPSDE()
    mixture = ring(process)
    score_fn = mixture.score(process)

    def solve(tol):
        return ss.sample(
            score_fn,
            process,
            (64, 2),
            sampler="ode",
            generator=4,
            dtype=torch.float64,
            denoise=False,
            rtol=tol,
            atol=tol,
        )

    reference, _ = solve(1e-8)
    nfe, error = [], []
    for tol in (1e-3, 1e-4, 1e-5):
        x, stats = solve(tol)
        nfe.append(float(stats["nfe"].double().mean()))
        # the median: a sample that starts near the border of two modes' basins amplifies any
        # error, and one such sample can dominate a mean
        error.append(float((x - reference).norm(dim=1).median()))
    assert nfe[0] < nfe[1] < nfe[2], nfe
    assert error[0] > 2 * error[1] > 4 * error[2], error
    assert error[2] < 1e-4


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def ve_score():
    process = ss.VESDE()
    return process, ss.GaussianMixture.random(4, data_range=process.data_range).score(process)


@pytest.mark.parametrize("shape", [4, "4x4", (), (4.0, 4), (True, 4), None])
def test_sample_rejects_a_shape_that_is_not_a_tuple_of_ints(ve_score, shape):
    process, score_fn = ve_score
    with pytest.raises(TypeError, match="shape must be a tuple of ints"):
        ss.sample(score_fn, process, shape, sampler="em", steps=2)


@pytest.mark.parametrize("shape", [(0, 4), (4, 0), (4, -1), (-2, 4)])
def test_sample_rejects_zero_or_negative_sizes(ve_score, shape):
    process, score_fn = ve_score
    with pytest.raises(ValueError, match="positive sizes"):
        ss.sample(score_fn, process, shape, sampler="em", steps=2)


@pytest.mark.parametrize("sampler", ["em", "adaptive"])
def test_a_shape_without_event_dimensions_is_refused_by_every_sampler(sampler):
    # em took (batch,), the adaptive samplers failed in their error norm with an IndexError
    with pytest.raises(ValueError, match=r"no event dimensions: .* pass \(8, 1\)"):
        ss.sample(lambda x, t: -x, ss.VPSDE(), (8,), sampler=sampler)


def test_unknown_sampler_error_lists_the_valid_samplers(ve_score):
    process, score_fn = ve_score
    with pytest.raises(ValueError, match="sampler='heun': choose one of") as info:
        ss.sample(score_fn, process, (4, 4), sampler="heun")
    for name in ("em", "pc", "ode", "ggf", "als", "cas"):
        assert name in str(info.value)


@pytest.mark.parametrize(
    "sampler, bad, listed",
    [
        ("ggf", "rtol", ["eps_rel", "eps_abs", "h_init", "safety", "exponent", "brownian"]),
        ("em", "eps_rel", ["steps", "brownian", "init"]),
        ("ode", "steps", ["rtol", "atol", "solver"]),
        ("cas", "snr", ["n_levels", "step_lr", "n_steps_each", "sigma_max", "init"]),
    ],
)
def test_unknown_option_error_lists_the_samplers_options(ve_score, sampler, bad, listed):
    process, score_fn = ve_score
    with pytest.raises(ValueError, match=f"unknown option.*{bad}.*{sampler}") as info:
        ss.sample(score_fn, process, (4, 4), sampler=sampler, **{bad: 1})
    for option in listed:
        assert option in str(info.value)
    assert "callback" not in str(info.value)  # sample's own argument, not a sampler option


@pytest.mark.parametrize("kind", PROCESSES)
def test_centred_start_is_the_prior_draw_moved_by_the_denoiser_at_T(kind):
    # For data N(m, v) per element, D(T, x) = m + α v (x − α m)/(α² v + σ²) at T: the first two
    # evaluations see the prior draw scaled to σ = σ_T (VP's prior is N(0, I)) and its negative,
    # the next one that draw moved by α (3 D(T, x) + D(T, −x))/4, which has p_T's mean α m and
    # variance σ² + α² v up to relative errors of order k = α² v/(α² v + σ²) and k².
    process, m, v = PROCESSES[kind](), 0.3, 0.02
    seen = []

    def score(x, t):
        seen.append(x.clone())
        alpha, sigma = process.alpha(t)[:, None], process.sigma(t)[:, None]
        return -(x - alpha * m) / (alpha**2 * v + sigma**2)

    shape = (64, 3)
    ss.sample(score, process, shape, sampler="unipc", steps=2, generator=0, dtype=torch.float64)
    T = torch.tensor(process.T, dtype=torch.float64)
    alpha, sigma = process.alpha(T), process.sigma(T)
    x_T = process.prior_sample(shape, generator=0, dtype=torch.float64) * sigma / process.prior_std

    def denoised(x):
        return m + alpha * v * (x - alpha * m) / (alpha**2 * v + sigma**2)

    torch.testing.assert_close(seen[0], x_T, rtol=1e-15, atol=0)
    assert torch.equal(seen[1], -seen[0])
    centred = x_T + alpha * (3 * denoised(x_T) + denoised(-x_T)) / 4
    torch.testing.assert_close(seen[2], centred, rtol=1e-12, atol=1e-12)
    k = alpha**2 * v / (alpha**2 * v + sigma**2)
    torch.testing.assert_close(centred, x_T * (1 + k / 2) + alpha * m * (1 - k))


def test_centring_costs_two_evaluations(ve_score):
    process, score_fn = ve_score
    shape = (4, 4)

    def nfe(sampler, **options):
        _, stats = ss.sample(score_fn, process, shape, sampler=sampler, generator=0, **options)
        return stats["nfe"].tolist()

    assert nfe("em", steps=10) == [11] * 4  # the paper's start: the prior draw
    assert nfe("em", steps=10, init="centred") == [13] * 4
    assert nfe("unipc", steps=10) == [13] * 4
    assert nfe("unipc", steps=10, init="prior") == [11] * 4
    with pytest.raises(ValueError, match="init='uniform' for sampler 'adaptive': choose 'centred'"):
        ss.sample(score_fn, process, shape, sampler="adaptive", init="uniform")
    with pytest.raises(ValueError, match="init='centred' for sampler 'als': choose 'prior' or"):
        ss.sample(score_fn, process, shape, sampler="als", init="centred")


@pytest.mark.parametrize("sampler", sorted(ss.SAMPLERS))
def test_only_the_recommended_samplers_start_centred(sampler):
    # the second evaluation of a centred start is at the negated first input
    process, calls = ss.VESDE(), []

    def score(x, t):
        calls.append(x.clone())
        return -x / process.sigma(t)[:, None] ** 2

    options = {"steps": 2} if "steps" in inspect.signature(ss.SAMPLERS[sampler]).parameters else {}
    if sampler in ("als", "cas"):
        options = {"n_levels": 2, "n_steps_each": 1}
    ss.sample(score, process, (4, 2), sampler=sampler, generator=0, **options)
    centred = torch.equal(calls[1], -calls[0])
    assert centred == (sampler in ("adaptive", "unipc", "dpmpp_2m_sde", "dpm_adaptive"))


def test_centred_start_keeps_the_mode_weights_that_the_prior_draw_loses():
    # VE's prior N(0, σ_T² I) lacks the mean of p_T, the data's (0.46, 0.39) here: the
    # probability flow carries that offset down and moves mass between the ring's modes. p_T is
    # a known mixture, so weighting the flow from plain prior draws by p_T / prior estimates the
    # modes' weights from p_T itself through the same discretised flow; the centred start must
    # match that estimate (paired: same draws, same steps), where the plain draws do not.
    process, mixture = ss.VESDE(), ring(ss.VESDE())
    n, score = 200_000, mixture.score(process)
    T = torch.tensor(process.T, dtype=torch.float64)
    alpha, sigma = float(process.alpha(T)), float(process.sigma(T))
    p_T = ss.GaussianMixture(
        alpha * mixture.means, (alpha**2 * mixture.variances + sigma**2).sqrt(), mixture.weights
    )
    x_T = process.prior_sample((n, 2), generator=0, dtype=torch.float64)
    log_prior = -0.5 * x_T.square().sum(1) / sigma**2 - math.log(2 * math.pi * sigma**2)
    weights = (p_T.log_prob(x_T) - log_prior).exp()
    weights = weights / weights.mean()

    def light(init):
        x, _ = ss.sample(
            score, process, (n, 2), sampler="unipc", steps=20, init=init, generator=0,
            dtype=torch.float64,
        )  # fmt: skip
        return (nearest_component(mixture, x) < 4).double()

    plain, centred = light("prior"), light("centred")
    from_p_T = weights * plain  # per draw; its mean estimates p_T's light mass

    def gap(per_draw):  # (mean, standard error) of a per-draw difference
        return float(per_draw.mean()), float(per_draw.std() / math.sqrt(n))

    shift, se = gap(centred - from_p_T)
    assert abs(shift) < 4 * se, (shift, se)  # measured: +0.07 ± 0.13 per mille
    shift, se = gap(plain - from_p_T)
    assert shift < -8 * se, (shift, se)  # measured: -3.1 per mille, 200 standard errors


@pytest.mark.parametrize("option", ["eps_rel", "eps_abs"])
def test_ggf_names_its_own_tolerance_option_when_it_is_bad(ve_score, option):
    process, score_fn = ve_score
    with pytest.raises(ValueError, match=f"^{option} must be a finite non-negative number"):
        ss.sample(score_fn, process, (4, 4), sampler="ggf", **{option: -1.0})


@pytest.mark.parametrize("sampler", ["als", "cas"])
@pytest.mark.parametrize("sigma_max", [200.0, 0.005])
def test_annealed_samplers_refuse_a_sigma_max_outside_the_trained_levels(sampler, sigma_max):
    process = ss.VPSDE()  # levels sigma/alpha from about 0.01 (t = eps) to about 152 (t = 1)
    score_fn = ss.GaussianMixture.random(4).score(process)
    with pytest.raises(ValueError, match=r"sigma_max=.* outside .*\(0.01.*, 15\d\.\d*\]"):
        ss.sample(score_fn, process, (4, 4), sampler=sampler, sigma_max=sigma_max)


@pytest.mark.parametrize("step_lr", [1e-7, 1e-3])
def test_cas_step_outside_the_valid_interval_is_refused_with_the_interval(ve_score, step_lr):
    process, score_fn = ve_score
    gamma = (process.sigma_min / process.sigma_max) ** (1 / 231)
    low, high = (1 - gamma) * process.sigma_min**2, (1 + gamma) * process.sigma_min**2
    with pytest.raises(ValueError, match=f"{low:.6g} < step_lr < {high:.6g}.*Pick step_lr"):
        ss.sample(score_fn, process, (4, 4), sampler="cas", step_lr=step_lr)


@pytest.mark.parametrize(
    "process, n_levels", [(ss.SubVPSDE(), 232), (ss.VPSDE(), 100), (ss.VESDE(), 60)]
)
def test_cas_default_step_fits_coarse_ladders(process, n_levels):
    # The paper's eta = 0.056 needs 1 - gamma < 0.056: fine on its 232 levels from 50 to 0.01,
    # not on sub-VP's wider range or on fewer levels, where the default moves inside the bound
    # (before, these raised). Quality: within 6 standard deviations of exact draws' distance.
    target = ss.GaussianMixture.random(4, data_range=process.data_range)
    x, _ = ss.sample(target.score(process), process, (2000, 4), sampler="cas", n_levels=n_levels,
                     generator=0)  # fmt: skip
    exact = target.sample(2000, generator=1)
    draws = [ss.sliced_wasserstein(target.sample(2000, generator=g), exact) for g in range(2, 8)]
    draws = torch.tensor([float(d) for d in draws])
    assert float(ss.sliced_wasserstein(x, exact)) < draws.mean() + 6 * draws.std()


@pytest.mark.parametrize(
    "sampler", ["em", "pc", "ode", "unipc", "dpmpp_2m_sde", "ggf", "als", "cas"]
)
@pytest.mark.parametrize("when", ["first", "later"])
def test_non_finite_score_is_named_as_the_cause(ve_score, sampler, when):
    process, score_fn = ve_score

    def broken(x, t):
        out = score_fn(x, t)
        return out * math.nan if when == "first" or bool(t[0] < 0.5) else out

    with pytest.raises(ValueError, match="score .* non-finite values"):
        ss.sample(broken, process, (4, 4), sampler=sampler, generator=0)


@pytest.mark.parametrize("sampler", ["em", "adaptive", "als"])
def test_a_score_failing_later_on_some_rows_names_them_and_the_time(ve_score, sampler):
    # the message said only "check the network": not which samples, nor when
    process, score_fn = ve_score

    def broken(x, t):
        out = score_fn(x, t)
        if bool(t.reshape(-1)[0] < 0.5) and x.shape[0] == 6:
            out = out.clone()
            out[[1, 4]] = math.nan
        return out

    options = dict(compact=False) if sampler == "adaptive" else {}  # every row in every call
    with pytest.raises(ValueError, match=r"first at t=0\.4\d*, samples \[1, 4\]"):
        ss.sample(broken, process, (6, 4), sampler=sampler, generator=0, **options)


def test_a_score_whose_later_output_changes_shape_or_dtype_is_refused():
    # a (B, 1) output after the first call was broadcast into wrong samples without a word
    calls = []

    def drifting(x, t):
        calls.append(1)
        if len(calls) < 3:
            return -x
        return (-x).sum(1, keepdim=True) if len(calls) == 3 else -x.double()

    with pytest.raises(ValueError, match=r"returned shape \(4, 1\) for x of shape \(4, 2\)"):
        ss.sample(drifting, ss.VPSDE(), (4, 2), sampler="em", steps=5, generator=0)
    with pytest.raises(ValueError, match=r"returned torch.float64 for x of dtype torch.float32"):
        ss.sample(drifting, ss.VPSDE(), (4, 2), sampler="em", steps=5, generator=0)


def test_a_network_of_another_dtype_than_the_samples_is_named():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, x, t):
            return self.linear(torch.cat([x, t[:, None].to(x.dtype)], 1))

    process = ss.VPSDE()
    bare = Net()  # called as score_fn(x, t), its output taken as the score
    with pytest.raises(ValueError, match=r"parameters are torch.float32 but the samples are "
                       r"torch.float64: wrap the network in ScoreModel"):  # fmt: skip
        ss.sample(bare, process, (4, 2), sampler="unipc", dtype=torch.float64)
    # ScoreModel runs the network in its own dtype: float32 weights on float64 samples
    score = ss.ScoreModel(Net(), process, output="noise")
    x, _ = ss.sample(score, process, (4, 2), sampler="unipc", dtype=torch.float64)
    assert x.dtype == torch.float64
    with pytest.raises(ValueError, match=r"returned torch.float64 for x of dtype torch.float32"):
        ss.sample(lambda x, t: (-x).double(), process, (4, 2), sampler="em", steps=5)


def test_a_process_other_than_the_scores_is_refused():
    net = ss.MLP(2, hidden=8, depth=1)
    score = ss.ScoreModel(net, ss.VPSDE(), output="noise")
    with pytest.raises(ValueError, match=r"made for VPSDE\(.*\) but sample\(\) was given VESDE"):
        ss.sample(score, ss.VESDE(), (4, 2), sampler="em", steps=5)
    with pytest.raises(ValueError, match=r"made for VPSDE\(.*beta_max=20.0.*was given VPSDE"):
        ss.sample(score, ss.VPSDE(beta_max=10.0), (4, 2), sampler="em", steps=5)
    # an equal process, or the same schedule to another end time, is the score's
    ss.sample(score, ss.VPSDE(), (4, 2), sampler="em", steps=5)
    ss.sample(score, ss.VPSDE(eps=1e-5), (4, 2), sampler="em", steps=5)


class _LabelledGaussians(torch.nn.Module):
    """The exact VP score of N(m[label], 0.1² I) for one label per sample, held for the batch."""

    def __init__(self, process, labels):
        super().__init__()
        self.process, self.labels = process, labels
        self.means = torch.tensor([[-1.0, 0.5], [0.0, -0.5], [1.0, 0.0]])
        self.weight = torch.nn.Parameter(torch.ones(()))  # a network: samplers may compact it

    def forward(self, x, t):
        alpha, sigma = self.process.alpha(t)[:, None], self.process.sigma(t)[:, None]
        mean = alpha * self.means[self.labels]
        return -(x - mean) / (alpha**2 * 0.01 + sigma**2)


@pytest.mark.parametrize("sampler", ["ode", "dpm_adaptive", "adaptive", "ggf"])
def test_a_score_function_holding_inputs_per_sample_samples_each_sample_by_its_own(sampler):
    # A closure over per-sample inputs (class labels) with the whole batch's rows, the recipe
    # docs/migration.md gives for conditional models: the adaptive samplers dropped finished
    # samples from the batch and the closure failed with a raw size mismatch.
    process = ss.VPSDE()
    labels = torch.arange(600) % 3
    exact = _LabelledGaussians(process, labels)
    x, _ = ss.sample(lambda x, t: exact(x, t), process, (600, 2), sampler=sampler, generator=0)
    assert x.dtype == torch.float32
    for label in range(3):  # each sample from its own label's Gaussian: sd 0.1, 200 samples
        error = (x[labels == label].mean(0) - exact.means[label]).abs().max()
        assert error < 5 * 0.1 / math.sqrt(200)
    # A module that holds them cannot follow the rows; the error says why and what to do.
    with pytest.raises(
        ValueError, match=r"failed on \d+ of the batch's 600 rows .* plain function"
    ):
        ss.sample(exact, process, (600, 2), sampler=sampler, generator=0)


def test_diverging_steps_are_named_as_the_cause_not_the_score(ve_score):
    # A score like a network's: finite (if huge) at finite states, non-finite at non-finite
    # ones. Euler–Maruyama's states overflow, the score then sees them, and the error names the
    # steps, not the network.
    process, _ = ve_score

    def stiff(x, t):
        return -1e8 * x.clamp(-1e30, 1e30) + 0 * x

    with pytest.raises(sdekit.SolveError, match=r"'em' diverged: .*more steps"):
        ss.sample(stiff, process, (4, 4), sampler="em", steps=10, generator=0)


@pytest.mark.parametrize("steps", [5, 19])
def test_pc_on_vp_refuses_steps_its_discretisation_cannot_take(steps):
    # Song et al.'s VP predictor scales by sqrt(1 - beta(t)·dt): with beta(1) = 20 over [eps, 1]
    # fewer than 20 equal steps made every state NaN at the first step.
    process = ss.VPSDE()
    score = ss.GaussianMixture.random(4, data_range=process.data_range).score(process)
    with pytest.raises(ValueError, match=r"beta\(t\)·dt = .* >= 1 .* \(about 20 or more"):
        ss.sample(score, process, (4, 4), sampler="pc", steps=steps, generator=0)
    x, _ = ss.sample(score, process, (4, 4), sampler="pc", steps=20, generator=0)
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("schedule", ["karras", "logsnr"])
def test_pc_on_a_graded_grid_in_float32_steps_as_in_float64(schedule):
    # the corrector looked its step up on the grid by searchsorted: a time one float32 ulp above
    # its grid point found the step before (about twice as long), and at 21 steps α < 0 gave NaN
    process, score = ss.VPSDE(), lambda x, t: -x  # N(0, I) data keep their law
    options = dict(sampler="pc", steps=21, schedule=schedule, generator=0)
    x32, _ = ss.sample(score, process, (4000, 2), dtype=torch.float32, **options)
    x64, _ = ss.sample(score, process, (4000, 2), dtype=torch.float64, **options)
    v32, v64 = x32.double().var().item(), x64.var().item()
    se = v64 * math.sqrt(2 / x64.numel()) * math.sqrt(2)  # of the difference of two variances
    assert abs(v32 - v64) < 5 * se, (v32, v64, se)


def test_grid_steps_are_found_from_times_an_ulp_off_the_grid():
    from sdekit_score.sampling.samplers import _step_from, _step_to

    grid = ss.time_grid(ss.VPSDE(), 21, "karras")
    t = grid[1:-1].float()
    for off in (torch.nextafter(t, t + 1), torch.nextafter(t, t - 1), t):
        before, after = grid[:-2].float() - t, t - grid[2:].float()
        torch.testing.assert_close(_step_to(grid, off), before, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(_step_from(grid, off), after, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sampler", ["em", "ggf", "cas"])
def test_score_of_the_wrong_shape_is_refused(ve_score, sampler):
    process, score_fn = ve_score
    with pytest.raises(ValueError, match=r"returned shape \(4, 2\) for x of shape \(4, 4\)"):
        ss.sample(lambda x, t: score_fn(x, t)[:, :2], process, (4, 4), sampler=sampler)


@pytest.mark.parametrize("wrap", [lambda s: s.numpy(), list, lambda s: (s,)])
def test_a_score_that_is_not_a_tensor_is_a_type_error(ve_score, wrap):
    # a numpy array, a list, a model's output tuple (read as .detach() before the check)
    process, score_fn = ve_score
    with pytest.raises(TypeError, match=r"the score function returned \w+; it must return a"):
        ss.sample(lambda x, t: wrap(score_fn(x, t)), process, (4, 4), sampler="em", steps=5)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["adaptive", "dpm_adaptive"])
def test_compiled_adaptive_sampling_takes_the_eager_steps(monkeypatch, sampler):
    """``compile=True`` runs each attempt of an adaptive sampler, the network's evaluations
    included, as one compiled call: the same evaluations per sample and, up to rounding, the
    same samples as eager sampling (rows set aside as samples finish: a second, dynamic graph)."""
    torch._dynamo.reset()  # below torch's recompile limit whatever ran before in this process
    monkeypatch.setattr(importlib.import_module("sdekit.solve"), "_compiled", {})
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))
    net = net.double()

    def score(x, t):
        return net(torch.cat([x, t[:, None]], 1)) - x

    options = dict(sampler=sampler, generator=0, dtype=torch.float64)
    eager, eager_stats = ss.sample(score, ss.VPSDE(), (64, 2), **options)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile=True")  # it must not fall back
        compiled, stats = ss.sample(score, ss.VPSDE(), (64, 2), compile=True, **options)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs
    assert torch.equal(stats["nfe"], eager_stats["nfe"])
    torch.testing.assert_close(compiled, eager, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize(
    "placement, message",
    [
        (dict(dtype=torch.int64), r"dtype=torch.int64: samples need a floating dtype"),
        (dict(device="nope"), r"device='nope' is not a torch device"),
        pytest.param(
            dict(device="cuda"),
            r"no cuda device is available here",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there"),
        ),
    ],
)
def test_sample_refuses_a_dtype_or_device_it_cannot_use(ve_score, placement, message):
    process, score_fn = ve_score
    with pytest.raises(ValueError, match=message):
        ss.sample(score_fn, process, (4, 4), sampler="em", steps=5, **placement)


@pytest.mark.parametrize("sampler", ["ggf", "adaptive", "dpm_adaptive", "ode"])
def test_an_adaptive_sampler_stops_at_its_step_budget_naming_the_likely_cause(sampler):
    # -x is no VE score (it ignores the noise level): GGF's steps shrank without end (183k
    # evaluations per sample before this budget). A budget of 50 keeps the test short; the
    # default, 10000, stops the same way.
    with pytest.raises(sdekit.SolveError, match=r"spent its step budget .* max_steps=50 reached") as info:  # fmt: skip
        ss.sample(lambda x, t: -x, ss.VESDE(), (8, 2), sampler=sampler, max_steps=50,
                  generator=0)  # fmt: skip
    assert info.value.status == sdekit.Status.MAX_STEPS
    assert "does not fit the process" in str(info.value)


@pytest.mark.parametrize("sampler", ["em", "pc", "dpm_adaptive", "adaptive", "ode"])
def test_edm_is_sampled_in_log_noise_level(sampler):
    """EDM's time is the noise level, linear over five decades: equal steps in it left σ from
    0.08 to 0.002 to one step (em: variance 78x the exact) and adaptive steps went from σ = 42
    to 0.002 at once (dpm_adaptive: 0.69x). sample() steps in log σ (EDMLogTime)."""
    process = EDMProcess()
    mean, std, n = 0.5, 0.02, 4000

    def score(x, sigma):  # exact for N(mean, std²) data; EDM's score takes t = σ
        assert float(sigma.min()) >= process.sigma_min * (1 - 1e-9)
        return -(x - mean) / (std**2 + sigma[:, None] ** 2)

    times = []
    x, _ = ss.sample(
        score,
        process,
        (n, 1),
        sampler=sampler,
        generator=0,
        dtype=torch.float64,
        callback=lambda info: times.append(info["t"]),
    )
    shrink = std**2 / (std**2 + process.sigma_min**2)  # the denoised samples' spread
    ratio = float(x.var()) / (std**2 * shrink)
    assert abs(ratio - 1) < 4 * math.sqrt(2 / n), ratio
    assert abs(float(x.mean()) - mean) < 4 * std / math.sqrt(n)
    last = torch.as_tensor(times[-1]).reshape(-1)  # the callback's t is EDM's, a noise level
    torch.testing.assert_close(last, torch.full_like(last, process.sigma_min))


@pytest.mark.parametrize("sampler", ["adaptive", "ggf", "dpm_adaptive"])
def test_a_first_step_that_is_not_positive_is_named_h_init(ve_score, sampler):
    process, score_fn = ve_score
    with pytest.raises(ValueError, match=r"h_init must be a finite positive number, got -0.01"):
        ss.sample(score_fn, process, (4, 4), sampler=sampler, h_init=-0.01)


class _CountedScore(torch.nn.Module):
    """The exact score of N(0, I) data (kept by every process), counting calls and rows."""

    def __init__(self):
        super().__init__()
        self.calls = self.rows = 0

    def forward(self, x, t):
        self.calls, self.rows = self.calls + 1, self.rows + x.shape[0]
        return -x


@pytest.mark.parametrize("sampler", sorted(ss.SAMPLERS))
def test_the_network_work_is_counted_as_calls_and_rows(sampler):
    # stats["nfe"] per sample hid the evaluations of finished samples (ggf: 14% more rows)
    score = _CountedScore()
    options = dict(steps=20) if sampler in ("em", "pc", "dpmpp_2m", "dpmpp_3m", "unipc") else {}
    x, stats = ss.sample(score, ss.VPSDE(), (16, 2), sampler=sampler, generator=0, **options)
    assert (stats["nfe_batch"], stats["nfe_rows"]) == (score.calls, score.rows)
    assert stats["nfe_rows"] >= int(stats["nfe"].sum())


def test_a_network_in_training_mode_with_dropout_is_named_before_sampling():
    class WithDropout(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = torch.nn.Dropout(0.1)

        def forward(self, x, t):
            return -self.drop(x)

    net = WithDropout()
    with pytest.warns(UserWarning, match=r"training mode with Dropout active.*\.eval\(\)"):
        ss.sample(net, ss.VPSDE(), (4, 2), sampler="em", steps=5, generator=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ss.sample(net.eval(), ss.VPSDE(), (4, 2), sampler="em", steps=5, generator=0)
        ss.sample(_CountedScore().train(), ss.VPSDE(), (4, 2), sampler="em", steps=5)


def test_a_network_in_training_mode_inside_a_function_is_named_too():
    # the documented conditional / guidance recipe passes a lambda: its network went unchecked
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    labels = torch.zeros(4)

    def guided(x, c):
        return net(x) + labels[:, None]

    process = ss.VPSDE()
    for score in (lambda x, t: net(x), ss.ScoreModel(lambda x, c: net(x), process), guided):
        with pytest.warns(UserWarning, match=r"training mode with BatchNorm1d active"):
            ss.sample(score, process, (4, 2), sampler="em", steps=3, generator=0)
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ss.sample(guided, process, (4, 2), sampler="em", steps=3, generator=0)


def test_a_first_failure_of_the_network_says_how_it_was_called():
    class IndexEmbedding(torch.nn.Module):  # needs integer timesteps
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(1000, 2)

        def forward(self, x, c):
            return x * self.embed(c)

    process = ss.VPSDE()
    model = ss.ScoreModel(IndexEmbedding(), process, conditioning="999t")
    with pytest.raises(RuntimeError) as info:
        ss.sample(model, process, (3, 2), sampler="em", steps=3, generator=0)
    note = "\n".join(getattr(info.value, "__notes__", []))
    if hasattr(info.value, "add_note"):
        assert "score_fn(x, t) with x (3, 2) and t (3,)" in note
        assert "ScoreModel calls net(x, c) with c of shape (batch,), a float: 999t" in note


def test_a_network_of_no_values_is_named():
    class Net(torch.nn.Linear):
        def forward(self, x, c):
            return super().forward(x)

    process = ss.VPSDE()
    with torch.device("meta"):  # built without weights, to be loaded: torch's error was raw
        net = Net(2, 2)
    with pytest.raises(ValueError, match=r"meta device \(no values\).*to_empty"):
        ss.sample(ss.ScoreModel(net, process), process, (3, 2), sampler="em")
    with pytest.raises(ValueError, match=r"meta device"):
        ss.sample(net, process, (3, 2), sampler="em", steps=3, device="cpu", generator=0)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        (dict(sampler="ode", per_sample="no"), "per_sample"),
        (dict(sampler="adaptive", compact="yes"), "compact"),
        (dict(sampler="em", steps=5, denoise="no"), "denoise"),
        (dict(sampler="em", steps=5, grad="yes"), "grad"),
    ],
)
def test_a_flag_that_is_not_a_bool_is_refused(options, name):
    # "no" is truthy: per_sample="no" ran per sample and denoise="no" denoised
    with pytest.raises(TypeError, match=f"{name}.* must be True or False, got '"):
        ss.sample(lambda x, t: -x, ss.VPSDE(), (4, 2), generator=0, **options)


def test_the_ode_sampler_names_the_fixed_step_samplers_for_a_solver_without_an_estimate():
    # the solve's message asked for dt=..., which the ode sampler does not take
    with pytest.raises(ValueError, match=r"solver='euler' has no error estimate.*'unipc'"):
        ss.sample(lambda x, t: -x, ss.VPSDE(), (4, 2), sampler="ode", solver="euler")


@pytest.mark.parametrize("sampler", ["ggf", "adaptive", "ode", "dpm_adaptive"])
def test_throw_false_keeps_the_samples_that_finished(sampler):
    # one stalled sample raised and cost the batch (the others were lost)
    process = ss.VPSDE()

    def stalls_row_2(x, t):
        score = -x
        if x.shape[0] == 4:  # the wild row makes its steps tiny, the others stay smooth
            score = score.clone()
            score[2] = score[2] * 1e6 * torch.sin(1e4 * t.reshape(-1)[0])
        return score

    run = dict(sampler=sampler, generator=[torch.Generator().manual_seed(k) for k in range(4)])
    options = dict(max_steps=2000, compact=False)
    with pytest.raises(sdekit.SolveError):
        ss.sample(stalls_row_2, process, (4, 2), **run, **options)
    x, stats = ss.sample(stalls_row_2, process, (4, 2), **run, **options, throw=False)
    status = stats["status"].tolist()
    assert status[:2] + status[3:] == [0, 0, 0] and status[2] in (1, 2)  # DT_MIN or MAX_STEPS
    assert bool(x[2].isnan().all()) and bool(torch.isfinite(x[[0, 1, 3]]).all())
    _, none_stalled = ss.sample(lambda x, t: -x, process, (4, 2), **run, throw=False)
    assert none_stalled["status"].dtype == stats["status"].dtype == torch.int8

"""Gotta Go Fast, attempt by attempt: sdekit's ``ggf`` against the paper's pseudocode.

``paper_ggf`` below transcribes "The adaptive step" of papers.md (section A) line by line, with the
VP and VE processes written from their formulas rather than taken from ``sdekit_score.sampling.processes``.
Both sides see the same Gaussian draws: sdekit through a :class:`~sdekit.brownian.BrownianSource`
that draws ``z`` per attempt, records it and hands out ``dW = sqrt(|h|) z``; the transcription
replays the recorded ``z`` in order, one draw of the whole batch per attempted step (finished
samples included, as in sdekit's loop and in the authors' code). Everything runs in float64, so
states, decisions, step sizes and evaluation counts must agree to rounding.
"""

from __future__ import annotations

import math

import pytest
import torch

import sdekit_score as ss
from sdekit.brownian import BrownianSource, Increment
from sdekit_score.sampling.samplers import ggf

BETA_MIN, BETA_MAX = 0.1, 20.0
SIGMA_MIN, SIGMA_MAX = 0.01, 50.0
BATCH, DIM = 6, 4


class RecordedNormals(BrownianSource):
    """``dW = sqrt(|h|) z`` with a fresh ``z`` per attempt; remembers every ``z``, ``t`` and ``h``."""

    def __init__(self, seed: int, shape: tuple[int, ...]):
        self.generator = torch.Generator().manual_seed(seed)
        self.shape = shape
        self.draws: list[torch.Tensor] = []
        self.times: list[torch.Tensor] = []
        self.steps: list[torch.Tensor] = []

    def increment(self, t, h):
        z = torch.randn(self.shape, generator=self.generator, dtype=torch.float64)
        h = torch.as_tensor(h, dtype=torch.float64).expand(self.shape[0])
        self.draws.append(z)
        self.times.append(torch.as_tensor(t, dtype=torch.float64).expand(self.shape[0]).clone())
        self.steps.append(h.abs().clone())
        return Increment(h.abs().sqrt()[:, None] * z)


def recording(score_fn):
    """``score_fn`` that appends the times it is evaluated at to ``.times``."""

    def recorded(x, t):
        recorded.times.append(t.detach().clone())
        return score_fn(x, t)

    recorded.times = []
    return recorded


def paper_ggf(
    score_fn,
    kind: str,
    x: torch.Tensor,
    draws: list[torch.Tensor],
    *,
    eps: float,
    eps_rel: float,
    eps_abs: float,
    h_init: float = 0.01,
    theta: float = 0.9,
    r: float = 0.9,
    extrapolate: bool = True,
    norm: str = "l2",
    x_prev_is: str = "current",
) -> dict:
    """papers.md section A, "The adaptive step", with ``t``, ``h`` and ``accept`` per sample.

    ``x_prev_is="current"`` is the tolerance of the runs behind the paper's numbers;
    ``"previous_proposal"`` is the authors' PyTorch code (``x_prev`` = the EM proposal of the
    last accepted step, initially the starting point).
    """

    def beta(t):
        return BETA_MIN + t * (BETA_MAX - BETA_MIN)

    def g(t):
        if kind == "vp":
            return beta(t).sqrt()
        sigma = SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** t
        return sigma * math.sqrt(2 * math.log(SIGMA_MAX / SIGMA_MIN))

    def drift_rev(x, t):
        f = -0.5 * beta(t)[:, None] * x if kind == "vp" else torch.zeros_like(x)
        return f - g(t)[:, None] ** 2 * score_fn(x, t)

    batch, n = x.shape
    t = torch.ones(batch, dtype=x.dtype)
    h = torch.full((batch,), h_init, dtype=x.dtype)
    accepted = torch.zeros(batch, dtype=torch.long)
    rejected = torch.zeros(batch, dtype=torch.long)
    running = torch.ones(batch, dtype=torch.bool)
    x_prev = x
    times, steps = [], []
    for z in draws:
        if not running.any():
            break
        h = torch.where(running, h, 0.0)  # finished samples stop moving
        times.append(t.clone())
        steps.append(h.clone())
        K1 = -h[:, None] * drift_rev(x, t) + g(t)[:, None] * h.sqrt()[:, None] * z
        x1 = x + K1
        K2 = -h[:, None] * drift_rev(x1, t - h) + g(t - h)[:, None] * h.sqrt()[:, None] * z
        x2 = x + (K1 + K2) / 2
        reference = x if x_prev_is == "current" else x_prev
        delta = torch.clamp(eps_rel * torch.maximum(reference.abs(), x1.abs()), min=eps_abs)
        ratio = (x2 - x1) / delta
        if norm == "l2":
            E = torch.linalg.vector_norm(ratio, dim=1) / math.sqrt(n)
        else:
            E = ratio.abs().amax(dim=1)
        accept = running & (E <= 1)
        x = torch.where(accept[:, None], x2 if extrapolate else x1, x)
        x_prev = torch.where(accept[:, None], x1, x_prev)
        t = torch.where(accept, t - h, t)
        h = torch.where(running, torch.minimum(t - eps, theta * h * E ** (-r)), h)
        accepted += accept
        rejected += running & ~accept
        running = running & (t - eps > 1e-12)
    assert not running.any(), "the transcription ran out of recorded draws"
    return dict(
        x=x,
        accepted=accepted,
        rejected=rejected,
        nfe=2 * (accepted + rejected),
        times=times,
        steps=steps,
        attempts=len(times),
    )


def setting(kind: str):
    process = ss.VPSDE() if kind == "vp" else ss.VESDE()
    mixture = ss.GaussianMixture.random(DIM, data_range=process.data_range, seed=1)
    eps_abs = 0.0078 if kind == "vp" else 0.0039  # the paper's values (one grey level)
    return process, mixture, eps_abs


def assert_same_run(source: RecordedNormals, score_times, ours: dict, paper: dict) -> None:
    assert len(source.draws) == paper["attempts"]
    torch.testing.assert_close(torch.stack(source.times), torch.stack(paper["times"]))
    torch.testing.assert_close(torch.stack(source.steps), torch.stack(paper["steps"]))
    for key in ("accepted", "rejected", "nfe"):
        assert torch.equal(ours[key], paper[key]), key
    # every attempt evaluates the score at t and at t - h, for the whole batch
    paper_times = [
        s for t, h in zip(paper["times"], paper["steps"], strict=True) for s in (t, t - h)
    ]
    torch.testing.assert_close(torch.stack(score_times), torch.stack(paper_times))


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_ggf_sampler_reproduces_the_papers_adaptive_step_and_denoising(kind):
    process, mixture, eps_abs = setting(kind)
    score_fn = mixture.score(process)
    source = RecordedNormals(seed=11, shape=(BATCH, DIM))
    scored = recording(score_fn)
    x, stats = ss.sample(
        scored,
        process,
        (BATCH, DIM),
        sampler="ggf",
        generator=3,
        dtype=torch.float64,
        brownian=source,
        eps_rel=0.05,
        eps_abs=eps_abs,
    )
    x0 = process.prior_sample((BATCH, DIM), generator=3, dtype=torch.float64)
    paper = paper_ggf(
        score_fn, kind, x0, source.draws, eps=process.eps, eps_rel=0.05, eps_abs=eps_abs
    )
    # final denoising x <- (x + sigma(eps)^2 s(x, eps)) / alpha(eps): one more evaluation
    t_eps = torch.full((BATCH,), process.eps, dtype=torch.float64)
    if kind == "vp":
        log_alpha = -0.25 * process.eps**2 * (BETA_MAX - BETA_MIN) - 0.5 * process.eps * BETA_MIN
        alpha = math.exp(log_alpha)
    else:
        alpha = 1.0
    sigma2 = (
        1 - alpha**2 if kind == "vp" else (SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** process.eps) ** 2
    )
    denoised = (paper["x"] + sigma2 * score_fn(paper["x"], t_eps)) / alpha

    assert_same_run(source, scored.times[:-1], {**stats, "nfe": stats["nfe"] - 1}, paper)
    torch.testing.assert_close(scored.times[-1], t_eps)
    torch.testing.assert_close(x, denoised, rtol=1e-10, atol=1e-12)
    # the comparison is only as strong as the run is varied: samples take different numbers of
    # steps, and rejections happen
    assert len(set(paper["accepted"].tolist())) > 1
    assert len(set(paper["nfe"].tolist())) > 1
    assert bool((paper["rejected"] > 0).all())


ABLATIONS = {
    "no extrapolation": (dict(extrapolate=False), dict(extrapolate=False)),
    "max norm": (dict(norm="max"), dict(norm="max")),
    "theta 0.8, r 0.5": (dict(safety=0.8, exponent=0.5), dict(theta=0.8, r=0.5)),
    "h_init 0.5, eps_rel 0.1": (dict(h_init=0.5, eps_rel=0.1), dict(h_init=0.5, eps_rel=0.1)),
}


@pytest.mark.parametrize("kind", ["vp", "ve"])
@pytest.mark.parametrize("ablation", list(ABLATIONS))
def test_ggf_ablations_reproduce_the_paper_with_the_option_changed(kind, ablation):
    ours_options, paper_options = ABLATIONS[ablation]
    process, mixture, eps_abs = setting(kind)
    score_fn = mixture.score(process)
    x0 = process.prior_sample((BATCH, DIM), generator=5, dtype=torch.float64)
    source = RecordedNormals(seed=13, shape=(BATCH, DIM))
    scored = recording(score_fn)
    x, stats, _ = ggf(
        scored,
        process,
        x0,
        generator=None,
        brownian=source,
        eps_abs=eps_abs,
        **{"eps_rel": 0.05, **ours_options},
    )
    paper = paper_ggf(
        score_fn,
        kind,
        x0,
        source.draws,
        eps=process.eps,
        eps_abs=eps_abs,
        **{"eps_rel": 0.05, **paper_options},
    )
    assert_same_run(source, scored.times, stats, paper)
    torch.testing.assert_close(x, paper["x"], rtol=1e-10, atol=1e-12)
    assert bool((paper["rejected"] > 0).any())


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_ggf_previous_proposal_tolerance_reproduces_the_authors_code(kind):
    process, mixture, eps_abs = setting(kind)
    score_fn = mixture.score(process)
    x0 = process.prior_sample((BATCH, DIM), generator=5, dtype=torch.float64)
    source = RecordedNormals(seed=13, shape=(BATCH, DIM))
    scored = recording(score_fn)
    x, stats, _ = ggf(
        scored,
        process,
        x0,
        generator=None,
        brownian=source,
        eps_rel=0.05,
        eps_abs=eps_abs,
        tolerance="previous_proposal",
    )
    paper = paper_ggf(
        score_fn,
        kind,
        x0,
        source.draws,
        eps=process.eps,
        eps_rel=0.05,
        eps_abs=eps_abs,
        x_prev_is="previous_proposal",
    )
    assert_same_run(source, scored.times, stats, paper)
    torch.testing.assert_close(x, paper["x"], rtol=1e-10, atol=1e-12)

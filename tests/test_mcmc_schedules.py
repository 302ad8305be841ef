"""Schedules: the CAS noise invariant (and its absence in ALS), step-size rules, results, errors."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdekit.mcmc import (
    MALA,
    UnderdampedLangevin,
    annealed_langevin,
    consistent_annealed_sampling,
    geometric_sigmas,
    run_schedule,
)

F64 = torch.float64
N_SE = 5.0


def point_mass_score(x_star: torch.Tensor):
    """Exact score of the point mass at x* smoothed by N(0, σ²): s(x, σ) = (x* − x)/σ²."""

    def score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return (x_star - x) / sigma.view(-1, *([1] * (x.dim() - 1))) ** 2

    return score


def noise_std_recorder(x_star: torch.Tensor):
    """A callback that records the empirical std of x − x* after every step."""
    stds: list[float] = []

    def callback(level_index: int, x: torch.Tensor, info) -> None:
        stds.append((x - x_star).std().item())

    return stds, callback


def std_standard_error(sigma: float, n: int) -> float:
    """Standard error of a Gaussian sample std from n draws."""
    return sigma / math.sqrt(2 * (n - 1))


X_STAR = torch.linspace(-1.0, 1.0, 50, dtype=F64)


def start(sigma_1: float, batch: int = 2000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return X_STAR + sigma_1 * torch.randn(batch, 50, generator=g, dtype=F64)


# ---------------------------------------------------------------------------------------------
# geometric_sigmas


def test_geometric_sigmas_have_exact_ends_and_a_constant_ratio():
    s = geometric_sigmas(50.0, 0.01, 232)
    assert s.shape == (232,) and s.dtype == F64
    assert s[0].item() == 50.0 and s[-1].item() == 0.01
    ratios = s[1:] / s[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, (0.01 / 50.0) ** (1 / 231)))
    assert geometric_sigmas(1.0, 0.5, 3, dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1.0, 2.0, 5), "sigma_min < sigma_max"),
        ((1.0, 0.0, 5), "positive"),
        ((1.0, 0.1, 1), ">= 2"),
    ],
)
def test_geometric_sigmas_reject_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        geometric_sigmas(*args)


# ---------------------------------------------------------------------------------------------
# CAS keeps the noise consistent with the levels; ALS does not.


@pytest.mark.parametrize("n_steps", [1, 3])
def test_cas_noise_level_after_each_step_is_the_next_sigma(n_steps):
    sigmas = geometric_sigmas(10.0, 0.1, 8)
    eta = 0.7
    fine = geometric_sigmas(10.0, 0.1, 7 * n_steps + 1).tolist()
    x0 = start(10.0)
    stds, callback = noise_std_recorder(X_STAR)
    result = consistent_annealed_sampling(
        point_mass_score(X_STAR), x0, sigmas, eta * 0.1**2, n_steps, generator=1, callback=callback
    )
    expected = fine[1:] + [(1 - eta) * fine[-1]]  # no noise after the last level
    assert len(stds) == len(fine)
    n = x0.numel()
    for got, want in zip(stds, expected, strict=True):
        assert abs(got - want) < N_SE * std_standard_error(want, n), (got, want)
    assert result.evaluations.tolist() == [len(fine)] * x0.shape[0]


def test_als_noise_level_does_not_track_the_sigmas():
    """ALS from x* + σ_i z leaves std √((1 − ε/σ_L²)² σ_i² + 2ε σ_i²/σ_L²), far from σ_{i+1}."""
    sigmas = geometric_sigmas(10.0, 0.1, 8).tolist()
    epsilon = 0.7 * 0.1**2
    x0 = start(10.0)
    n = x0.numel()
    stds, callback = noise_std_recorder(X_STAR)
    annealed_langevin(point_mass_score(X_STAR), x0, sigmas, epsilon, generator=1, callback=callback)
    c = epsilon / sigmas[-1] ** 2
    sd = sigmas[0]
    for got, sigma in zip(stds, sigmas, strict=True):
        sd = math.sqrt((1 - c) ** 2 * sd**2 + 2 * c * sigma**2)
        assert abs(got - sd) < N_SE * std_standard_error(sd, n), (got, sd)
    off = [abs(g - s) / std_standard_error(s, n) for g, s in zip(stds, sigmas[1:], strict=False)]
    assert max(off) > 10 * N_SE


# ---------------------------------------------------------------------------------------------
# Results carry the last score evaluation for the caller's denoising.


def test_cas_returns_the_last_level_score_at_the_point_it_was_evaluated():
    sigmas = [2.0, 1.0, 0.5]
    score = point_mass_score(X_STAR)
    x0 = start(2.0, batch=4)
    seen = []
    res = consistent_annealed_sampling(
        score, x0, sigmas, 0.25, generator=0, callback=lambda i, x, info: seen.append(x)
    )
    assert res.level == 0.5 and res.score_x is seen[-2]
    torch.testing.assert_close(res.score, score(res.score_x, torch.full((4,), 0.5, dtype=F64)))
    torch.testing.assert_close(res.x, res.score_x + 0.25 * res.score)  # η = 1, no final noise
    torch.testing.assert_close(res.score_x + 0.5**2 * res.score, X_STAR.expand(4, -1))


def test_als_returns_the_last_score_and_counts_evaluations():
    sigmas = [2.0, 1.0, 0.5]
    score = point_mass_score(X_STAR)
    seen = []
    res = annealed_langevin(
        score,
        start(2.0, batch=4),
        sigmas,
        0.01,
        4,
        generator=0,
        callback=lambda i, x, info: seen.append(x),
    )
    assert len(seen) == 12 and res.score_x is seen[-2] and res.level == 0.5
    torch.testing.assert_close(res.score, score(seen[-2], torch.full((4,), 0.5, dtype=F64)))
    assert res.evaluations.tolist() == [12] * 4 and res.acceptance is None


def test_als_step_is_epsilon_times_squared_sigma_ratio():
    sigmas = [4.0, 2.0, 1.0]
    steps = []
    annealed_langevin(
        point_mass_score(X_STAR),
        start(4.0, batch=3),
        sigmas,
        0.1,
        2,
        generator=0,
        callback=lambda i, x, info: steps.append((i, info.step_size.tolist())),
    )
    assert steps == [
        (i, [0.1 * (s / 1.0) ** 2] * 3) for i, s in enumerate(sigmas) for _ in range(2)
    ]


def test_run_schedule_passes_levels_and_reports_mala_acceptance():
    levels_seen = []

    def score(x, level):
        levels_seen.append(level)
        return -x / level.view(-1, 1) ** 2

    def log_prob(x, level):
        return -0.5 * (x * x).sum(1) / level**2

    per_chain = torch.tensor([[0.1, 0.2], [0.05, 0.1]], dtype=F64)
    res = run_schedule(
        MALA(),
        torch.zeros(2, 3, dtype=F64),
        score,
        [2.0, 1.0],
        per_chain,
        5,
        log_prob=log_prob,
        generator=0,
        progress=True,
    )
    assert all(lv.shape == (2,) and lv.dtype == F64 for lv in levels_seen)
    assert sorted({lv[0].item() for lv in levels_seen}) == [1.0, 2.0]
    assert res.acceptance.shape == (2,) and ((res.acceptance > 0) & (res.acceptance <= 1)).all()
    assert res.evaluations.tolist() == [12, 12]  # 2 at the start of each level, then 1 per step


def test_run_schedule_returns_the_score_at_the_chains_not_at_a_rejected_proposal():
    # With MALA the last evaluation is at a proposal: denoising score_x + σ² score used points
    # that most chains (886 of 1000 here before) had rejected.
    def score(x, level):
        return -x / level.view(-1, 1) ** 2

    def log_prob(x, level):
        return -0.5 * (x * x).sum(1) / level**2

    x = torch.randn(1000, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    res = run_schedule(MALA(), x, score, [1.0], 4.0, 3, log_prob=log_prob, generator=0)
    assert res.acceptance.mean() < 0.5  # steps large enough to reject often
    assert torch.equal(res.score_x, res.x)
    torch.testing.assert_close(res.score, score(res.x, torch.ones(1000, dtype=F64)))


def test_underdamped_velocity_carries_across_levels():
    res = run_schedule(
        UnderdampedLangevin(),
        torch.zeros(3, 2, dtype=F64),
        lambda x, lv: -x,
        [1.0, 0.5],
        0.1,
        2,
        generator=0,
    )
    assert res.state.velocity.shape == (3, 2) and res.evaluations.tolist() == [6, 6, 6]


# ---------------------------------------------------------------------------------------------
# Shapes, dtypes, reproducibility, per-chain independence (hypothesis).

SCHEDULES = {
    "als": lambda score, x, gen: annealed_langevin(
        score, x, [3.0, 1.0, 0.3], 0.01, 2, generator=gen
    ),
    "cas": lambda score, x, gen: consistent_annealed_sampling(
        score, x, [3.0, 1.0, 0.3], 0.09, 2, generator=gen
    ),
}
shapes = st.tuples(st.integers(1, 4), st.lists(st.integers(1, 3), max_size=3).map(tuple))


@pytest.mark.parametrize("name", list(SCHEDULES))
@settings(max_examples=10, deadline=None)
@given(
    shape=shapes, dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**31)
)
def test_schedules_keep_shape_dtype_and_are_reproducible(name, shape, dtype, seed):
    batch, event = shape
    x = torch.randn((batch, *event), generator=torch.Generator().manual_seed(seed), dtype=dtype)
    score = point_mass_score(torch.zeros(event, dtype=dtype))
    a, b = (SCHEDULES[name](score, x, seed) for _ in range(2))
    assert a.x.shape == x.shape and a.x.dtype == dtype and a.score.dtype == dtype
    assert torch.equal(a.x, b.x) and torch.equal(a.score, b.score)


@pytest.mark.parametrize("name", list(SCHEDULES))
@settings(max_examples=10, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31))
def test_schedules_run_chains_independently_with_per_chain_generators(name, shape, seed):
    batch, event = shape
    x = torch.randn((batch, *event), generator=torch.Generator().manual_seed(seed), dtype=F64)
    score = point_mass_score(torch.ones(event, dtype=F64))
    gens = lambda i: [torch.Generator().manual_seed(seed + i)]  # noqa: E731
    together = SCHEDULES[name](score, x, [gens(i)[0] for i in range(batch)]).x
    for i in range(batch):
        alone = SCHEDULES[name](score, x[i : i + 1], gens(i)).x
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Clear errors.


@pytest.mark.parametrize("n_steps", [1, 4])
@pytest.mark.parametrize("eta", [0.05, 1.95])
def test_cas_step_outside_the_valid_interval_is_an_error_that_names_it(eta, n_steps):
    sigmas = geometric_sigmas(1.0, 0.1, 5)
    gamma = 0.1 ** (1 / (4 * n_steps))
    low, high = (1 - gamma) * 0.01, (1 + gamma) * 0.01
    with pytest.raises(ValueError, match=re.escape(f"{low:.6g} < step_size < {high:.6g}")) as err:
        consistent_annealed_sampling(
            lambda x, s: -x, torch.zeros(2, 3), sigmas, eta * 0.01, n_steps
        )
    assert "always works" in str(err.value)
    consistent_annealed_sampling(lambda x, s: -x, torch.zeros(2, 3), sigmas, 0.01, n_steps)


def _run(**kw):
    args = dict(
        kernel=MALA(), x=torch.zeros(2, 3), score=lambda x, lv: -x, levels=[1.0], step_sizes=0.1
    )
    args.update(kw)
    return run_schedule(**args)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: consistent_annealed_sampling(lambda x, s: -x, torch.zeros(2), [1.0, 2.0], 1.0),
            ValueError,
            "decreasing",
        ),
        (
            lambda: consistent_annealed_sampling(lambda x, s: -x, torch.zeros(2), [1.0], 1.0),
            ValueError,
            "two",
        ),
        (
            lambda: annealed_langevin(lambda x, s: -x, torch.zeros(2), [1.0, 0.0], 0.1),
            ValueError,
            "positive",
        ),
        (
            lambda: annealed_langevin(lambda x, s: -x, torch.zeros(2), [1.0], -0.1),
            ValueError,
            "positive",
        ),
        (
            lambda: annealed_langevin(lambda x, s: -x, torch.zeros(2), torch.ones(2, 2), 0.1),
            ValueError,
            "1-D",
        ),
        (lambda: annealed_langevin("score", torch.zeros(2), [1.0], 0.1), TypeError, "callable"),
        (  # ran: α_i = ε σ_i²/σ_L² assumes σ_L the smallest
            lambda: annealed_langevin(lambda x, s: -x, torch.zeros(2), [0.01, 0.1, 1.0], 0.1),
            ValueError,
            "strictly decreasing",
        ),
        (lambda: _run(), ValueError, "log density"),
        (lambda: _run(kernel=None), TypeError, "kernel"),
        (lambda: _run(step_sizes=[0.1, 0.2]), ValueError, r"shape \(1,\) or \(1, batch\)"),
        (lambda: _run(step_sizes=torch.ones(1, 3)), ValueError, r"got shape \(1, 3\)"),
        (lambda: _run(step_sizes=[-1.0]), ValueError, "positive"),
        (  # NaN read as "not positive", inf passed to the kernel
            lambda: _run(step_sizes=torch.tensor([[0.1, math.inf]]), x=torch.zeros(2, 3)),
            ValueError,
            "finite and positive",
        ),
        (lambda: _run(n_steps=0), ValueError, "n_steps"),
        (lambda: _run(levels=[]), ValueError, "non-empty"),
        (lambda: _run(callback=3), TypeError, "callback"),
        (lambda: _run(log_prob=3), TypeError, "log_prob"),
    ],
)
def test_bad_input_gives_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# autograd


class _LinearLevelScore(torch.nn.Module):
    """A network score: s(x, σ) = −w·x/(1 + σ²)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(1.0, dtype=F64))

    def forward(self, x, sigma):
        return -self.weight * x / (1 + sigma[:, None] ** 2)


NETWORK_RUNS = {
    "als": lambda score, x, **kw: annealed_langevin(score, x, [1.0, 0.5], 0.01, 3, **kw),
    "cas": lambda score, x, **kw: consistent_annealed_sampling(score, x, [1.0, 0.5], 0.25, **kw),
    "mala": lambda score, x, **kw: run_schedule(
        MALA(), x, score, [1.0], 0.1, 3, log_prob=lambda x, s: -0.5 * (x * x).sum(1), **kw
    ),
}


@pytest.mark.parametrize("name", NETWORK_RUNS)
def test_schedules_keep_no_graph_of_a_network_unless_asked(name):
    net = _LinearLevelScore()
    x0 = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    plain = NETWORK_RUNS[name](net, x0, generator=0)
    assert plain.x.grad_fn is None and not plain.x.requires_grad
    assert plain.score.grad_fn is None
    kept = NETWORK_RUNS[name](net, x0, generator=0, grad=True)
    torch.testing.assert_close(kept.x.detach(), plain.x, rtol=0, atol=0)
    kept.x.sum().backward()
    assert net.weight.grad is not None and net.weight.grad != 0


def test_a_score_that_differentiates_a_log_density_runs_in_a_schedule():
    def score(x, sigma):  # the usual energy-based model's score: autograd of log π
        x = x.detach().requires_grad_()
        log_p = -0.5 * (x * x).sum(1) / (1 + sigma**2)
        return torch.autograd.grad(log_p.sum(), x)[0]

    x0 = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    result = annealed_langevin(score, x0, [1.0, 0.5], 0.01, 3, generator=0)
    assert result.x.grad_fn is None
    exact = annealed_langevin(
        lambda x, s: -x / (1 + s[:, None] ** 2), x0, [1.0, 0.5], 0.01, 3, generator=0
    )
    torch.testing.assert_close(result.x, exact.x)

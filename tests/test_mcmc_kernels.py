"""MCMC kernels: stationary laws within statistical error, batching, reproducibility, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdekit.mcmc import (
    MALA,
    ULA,
    LangevinCorrector,
    MALAState,
    Target,
    UnderdampedLangevin,
    run_schedule,
)

F64 = torch.float64
N_SE = 5.0  # tolerance in standard errors for every statistical assertion


# ---------------------------------------------------------------------------------------------
# Targets with known moments, and a moment check whose tolerance is the statistical error.


class Gaussian:
    """N(mean, cov) on R^d, with closed-form score, log density and exact samples."""

    def __init__(self, mean: list[float], cov: list[list[float]]) -> None:
        self.mean = torch.tensor(mean, dtype=F64)
        self.cov = torch.tensor(cov, dtype=F64)
        self.precision = torch.linalg.inv(self.cov)
        self.chol = torch.linalg.cholesky(self.cov)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return (self.mean - x) @ self.precision

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        d = x - self.mean
        return -0.5 * ((d @ self.precision) * d).sum(-1)

    def target(self) -> Target:
        return Target(score=self.score, log_prob=self.log_prob)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return self.mean + torch.randn(n, len(self.mean), generator=g, dtype=F64) @ self.chol.T


class Mixture:
    """A two-component Gaussian mixture on R^2 with closed-form score and log density."""

    def __init__(self) -> None:
        self.log_w = torch.tensor([0.35, 0.65], dtype=F64).log()
        self.parts = [
            Gaussian([-0.8, 0.4], [[0.5, 0.15], [0.15, 0.7]]),
            Gaussian([0.9, -0.3], [[0.6, -0.2], [-0.2, 0.4]]),
        ]
        w = self.log_w.exp()
        self.mean = sum(wk * p.mean for wk, p in zip(w, self.parts, strict=True))
        second = sum(
            wk * (p.cov + torch.outer(p.mean, p.mean)) for wk, p in zip(w, self.parts, strict=True)
        )
        self.cov = second - torch.outer(self.mean, self.mean)

    def _joint(self, x: torch.Tensor) -> torch.Tensor:
        norm = [torch.logdet(p.cov) for p in self.parts]
        return torch.stack(
            [
                lw + p.log_prob(x) - 0.5 * c
                for lw, p, c in zip(self.log_w, self.parts, norm, strict=True)
            ],
            dim=-1,
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._joint(x), dim=-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.softmax(self._joint(x), dim=-1)
        return sum(r[:, k : k + 1] * p.score(x) for k, p in enumerate(self.parts))

    def target(self) -> Target:
        return Target(score=self.score, log_prob=self.log_prob)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        k = torch.multinomial(self.log_w.exp(), n, replacement=True, generator=g)
        draws = [p.sample(n, seed + 1 + i) for i, p in enumerate(self.parts)]
        return torch.where((k == 0)[:, None], draws[0], draws[1])


def moment_errors(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """|sample moment − expected| / standard error, for every entry of the mean and covariance."""
    n = x.shape[0]
    d = x - x.mean(0)
    mean_z = (x.mean(0) - mean).abs() / (x.std(0) / math.sqrt(n))
    products = d[:, :, None] * d[:, None, :]
    cov_z = (products.mean(0) - cov).abs() / (products.std(0) / math.sqrt(n))
    return torch.cat([mean_z, cov_z.flatten()])


def assert_moments(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> None:
    z = moment_errors(x, mean, cov)
    assert z.max() < N_SE, f"moments off by {z.max():.2f} standard errors: {z.tolist()}"


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``: kernels take generators, not seeds."""
    return torch.Generator().manual_seed(seed)


def run(kernel, x, target, step_size, n_steps, seed=0, state=None):
    """n_steps of kernel on a fixed target, via the schedule driver with one level."""
    log_prob = None if target.log_prob is None else (lambda y, level: target.log_prob(y))
    return run_schedule(
        kernel,
        x,
        lambda y, level: target.score(y),
        [0.0],
        step_size,
        n_steps,
        log_prob=log_prob,
        generator=seed,
        state=state,
    )


def assert_chains_moved(x0: torch.Tensor, x1: torch.Tensor, at_least: float) -> None:
    """A stationarity test started at π would pass for a kernel that never moves: rule it out."""
    msd = (x1 - x0).pow(2).sum(-1).mean()
    assert msd > at_least, f"chains barely moved: mean squared displacement {msd:.3g}"


GAUSS = Gaussian([0.5, -1.0], [[1.0, 0.5], [0.5, 2.0]])
MIX = Mixture()


# ---------------------------------------------------------------------------------------------
# Stationary laws.


def test_ula_converges_to_its_known_biased_gaussian_law():
    h = 0.3
    x = run(ULA(), torch.zeros(20000, 2, dtype=F64), GAUSS.target(), h, 150).x
    biased = torch.linalg.inv(GAUSS.precision - 0.5 * h * GAUSS.precision @ GAUSS.precision)
    assert_moments(x, GAUSS.mean, biased)
    assert moment_errors(x, GAUSS.mean, GAUSS.cov).max() > 2 * N_SE


def test_ula_with_a_small_step_keeps_mixture_moments():
    x0 = MIX.sample(20000, seed=1)
    x = run(ULA(), x0, MIX.target(), 0.01, 300, seed=2).x
    assert_moments(x, MIX.mean, MIX.cov)
    assert_chains_moved(x0, x, at_least=0.5)


@pytest.mark.parametrize("h", [0.2, 1.0])
def test_ula_bias_grows_with_the_step_and_mala_has_none(h):
    """On N(0, 1), ULA's stationary variance is 1/(1 − h/2); MALA's is 1 at any step."""
    x0 = torch.zeros(20000, 1, dtype=F64)
    std_normal = Gaussian([0.0], [[1.0]])
    ula = run(ULA(), x0, std_normal.target(), h, 100, seed=3).x
    mala = run(MALA(), x0, std_normal.target(), h, 100, seed=3).x
    zero, one = torch.zeros(1, dtype=F64), torch.ones(1, 1, dtype=F64)
    assert_moments(ula, zero, one / (1 - h / 2))
    assert_moments(mala, zero, one)
    if h >= 1.0:
        assert moment_errors(ula, zero, one).max() > 2 * N_SE


@pytest.mark.parametrize("h", [0.1, 0.8, 2.0])
def test_mala_keeps_gaussian_moments_at_any_step(h):
    x0 = GAUSS.sample(20000, seed=4)
    result = run(MALA(), x0, GAUSS.target(), h, 60, seed=5)
    assert_moments(result.x, GAUSS.mean, GAUSS.cov)
    assert_chains_moved(x0, result.x, at_least=0.5)
    assert 0 < result.acceptance.mean() < 1


def test_mala_keeps_mixture_moments_at_a_large_step():
    x0 = MIX.sample(20000, seed=6)
    result = run(MALA(), x0, MIX.target(), 0.6, 60, seed=7)
    assert_moments(result.x, MIX.mean, MIX.cov)
    assert_chains_moved(x0, result.x, at_least=0.5)


def test_baoab_converges_to_exact_gaussian_moments_at_a_large_step():
    """BAOAB's position marginal is exact for Gaussian targets, so a large step shows no bias."""
    x = run(
        UnderdampedLangevin(friction=1.0),
        torch.zeros(20000, 2, dtype=F64),
        GAUSS.target(),
        0.6,
        150,
        seed=8,
    ).x
    assert_moments(x, GAUSS.mean, GAUSS.cov)


def test_underdamped_with_a_diagonal_mass_converges_to_gaussian_moments():
    kernel = UnderdampedLangevin(friction=2.0, mass=torch.tensor([1.0, 3.0], dtype=F64))
    x = run(kernel, torch.zeros(20000, 2, dtype=F64), GAUSS.target(), 0.5, 200, seed=9).x
    assert_moments(x, GAUSS.mean, GAUSS.cov)


@pytest.mark.parametrize("scheme", ["baoab", "obabo"])
def test_underdamped_keeps_mixture_moments(scheme):
    x0 = MIX.sample(20000, seed=10)
    kernel = UnderdampedLangevin(friction=1.0, scheme=scheme)
    x = run(kernel, x0, MIX.target(), 0.1, 60, seed=11).x
    assert_moments(x, MIX.mean, MIX.cov)
    assert_chains_moved(x0, x, at_least=0.5)


def test_obabo_has_the_velocity_verlet_bias_on_a_gaussian():
    """OBABO's position variance on N(0, 1) is 1/(1 − h²/4): a check of the splitting itself."""
    h = 0.8
    x = run(
        UnderdampedLangevin(friction=1.0, scheme="obabo"),
        torch.zeros(20000, 1, dtype=F64),
        Gaussian([0.0], [[1.0]]).target(),
        h,
        150,
        seed=12,
    ).x
    assert_moments(x, torch.zeros(1, dtype=F64), torch.ones(1, 1, dtype=F64) / (1 - h * h / 4))


def test_mala_adaptation_reaches_the_target_acceptance_from_any_start():
    target = Gaussian([0.0] * 10, torch.eye(10).tolist()).target()
    x0 = torch.zeros(1000, 10, dtype=F64)
    h0 = torch.cat([torch.full((1, 500), 1e-3), torch.full((1, 500), 20.0)], dim=1).to(F64)
    kernel = MALA(target_acceptance=0.574)
    warm = run(kernel, x0, target, h0, 200, seed=13)
    late = run(kernel, warm.x, target, h0, 100, seed=14, state=warm.state)
    step = h0[0] * warm.state.log_scale.exp()
    for group in (slice(0, 500), slice(500, 1000)):
        assert abs(late.acceptance[group].mean() - 0.574) < 0.03
        assert abs(step[group].median() / step.median() - 1) < 0.1


# ---------------------------------------------------------------------------------------------
# The Langevin corrector's step rule.


def _corrector_target() -> Target:
    return Target(score=lambda x: -x)


def test_corrector_step_is_the_per_chain_snr_rule():
    x = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    x = x * torch.tensor([0.1, 1.0, 3.0, 10.0, 30.0], dtype=F64)[:, None, None]
    alpha = torch.tensor([1.0, 0.5, 1.0, 0.9, 0.2], dtype=F64)
    x_new, info, _ = LangevinCorrector(snr=0.2)(x, _corrector_target(), alpha, seeded(7))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    s = -x
    h = 2 * alpha * (0.2 * z.flatten(1).norm(dim=1) / s.flatten(1).norm(dim=1)) ** 2
    torch.testing.assert_close(info.step_size, h, rtol=1e-12, atol=0)
    hb = h[:, None, None]
    torch.testing.assert_close(x_new, x + hb * s + (2 * hb).sqrt() * z, rtol=1e-12, atol=1e-14)


def test_corrector_batch_mean_norms_couple_chains_of_different_norms():
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1), dtype=F64)
    x = x * torch.tensor([0.1, 1.0, 5.0, 20.0], dtype=F64)[:, None]
    _, per_chain, _ = LangevinCorrector()(x, _corrector_target(), 1.0, seeded(3))
    _, batch_mean, _ = LangevinCorrector(batch_mean_norms=True)(
        x, _corrector_target(), 1.0, seeded(3)
    )
    assert not torch.allclose(per_chain.step_size, batch_mean.step_size, rtol=0.1)
    assert torch.unique(batch_mean.step_size).numel() == 1


def test_corrector_norm_rules_agree_for_a_batch_of_one():
    x = torch.randn(1, 3, 5, generator=torch.Generator().manual_seed(2), dtype=F64)
    a = LangevinCorrector()(x, _corrector_target(), 1.0, seeded(4))
    b = LangevinCorrector(batch_mean_norms=True)(x, _corrector_target(), 1.0, seeded(4))
    assert torch.equal(a.x, b.x) and torch.equal(a.info.step_size, b.info.step_size)


# ---------------------------------------------------------------------------------------------
# Batching, shapes, dtypes, reproducibility (hypothesis).

KERNELS = [
    ULA(),
    MALA(),
    MALA(target_acceptance=0.574),
    UnderdampedLangevin(friction=1.5),
    UnderdampedLangevin(friction=0.5, mass=2.0, scheme="obabo"),
    LangevinCorrector(snr=0.3),
]
KERNEL_IDS = ["ula", "mala", "mala-adaptive", "baoab", "obabo", "corrector"]


def _elementwise_gaussian(event: tuple[int, ...], dtype: torch.dtype) -> Target:
    mu = torch.linspace(-1.0, 1.0, math.prod(event), dtype=dtype).reshape(event)
    var = torch.linspace(0.5, 2.0, math.prod(event), dtype=dtype).reshape(event)
    return Target(
        score=lambda x: (mu - x) / var,
        log_prob=lambda x: -0.5 * ((x - mu) ** 2 / var).reshape(x.shape[0], -1).sum(1),
    )


def _chain(kernel, x, target, h, generator, n_steps=3):
    state = None
    for _ in range(n_steps):
        x, info, state = kernel(x, target, h, generator, state)
    return x, info


shapes = st.tuples(
    st.integers(1, 4), st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)
)


@pytest.mark.parametrize("kernel", KERNELS, ids=KERNEL_IDS)
@settings(max_examples=15, deadline=None)
@given(
    shape=shapes, dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**31)
)
def test_kernels_keep_shape_dtype_and_are_reproducible_from_a_seed(kernel, shape, dtype, seed):
    batch, event = shape
    x = torch.randn((batch, *event), generator=torch.Generator().manual_seed(seed), dtype=dtype)
    target = _elementwise_gaussian(event, dtype)
    runs = [_chain(kernel, x, target, 0.3, torch.Generator().manual_seed(seed)) for _ in range(2)]
    (x1, info), (x2, _) = runs
    assert x1.shape == x.shape and x1.dtype == dtype
    assert torch.equal(x1, x2)
    assert info.step_size.shape == (batch,) and info.step_size.dtype == dtype
    assert info.evaluations.shape == (batch,) and info.evaluations.dtype == torch.int64
    if info.acceptance is not None:
        assert info.acceptance.shape == (batch,) and info.accepted.dtype == torch.bool


@pytest.mark.parametrize("kernel", KERNELS, ids=KERNEL_IDS)
@settings(max_examples=10, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31))
def test_per_chain_step_sizes_match_running_chains_one_at_a_time(kernel, shape, seed):
    batch, event = shape
    x = torch.randn((batch, *event), generator=torch.Generator().manual_seed(seed), dtype=F64)
    h = torch.linspace(0.05, 0.6, batch, dtype=F64)
    target = _elementwise_gaussian(event, F64)
    seeds = [seed + i for i in range(batch)]
    together, _ = _chain(kernel, x, target, h, [torch.Generator().manual_seed(s) for s in seeds])
    for i in range(batch):
        alone, _ = _chain(
            kernel, x[i : i + 1], target, h[i : i + 1], [torch.Generator().manual_seed(seeds[i])]
        )
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Score reuse through the state.


class CountingScore:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return -x


@pytest.mark.parametrize("kernel", [MALA(), UnderdampedLangevin()], ids=["mala", "underdamped"])
def test_state_reuses_the_score_only_for_the_same_tensor_and_target(kernel):
    score = CountingScore()
    target = Target(score=score, log_prob=lambda x: -0.5 * (x * x).sum(1))
    x = torch.zeros(3, 2, dtype=F64)
    g = seeded(0)
    x, info, state = kernel(x, target, 0.1, g)
    assert score.calls == 2 and info.evaluations.tolist() == [2, 2, 2]
    x, info, state = kernel(x, target, 0.1, g, state)
    assert score.calls == 3 and info.evaluations.tolist() == [1, 1, 1]
    kernel(x.clone(), target, 0.1, g, state)
    assert score.calls == 5
    kernel(x, Target(score=score, log_prob=target.log_prob), 0.1, g, state)
    assert score.calls == 7
    # the same tensor changed in place (chains reset) is another point: the score was reused
    x, info, state = kernel(x, target, 0.1, g, state)
    x[:2] = 5.0
    _, info, _ = kernel(x, target, 0.1, g, state)
    assert info.evaluations.tolist() == [2, 2, 2]


def test_mala_rejects_proposals_with_a_nan_log_density():
    target = Target(
        score=lambda x: -x, log_prob=lambda x: torch.where(x[:, 0] > 0.5, math.nan, 0.0)
    )
    x = torch.zeros(500, 1, dtype=F64)
    x_new, info, _ = MALA()(x, target, 1.0, seeded(0))
    moved = x_new[:, 0] != 0
    assert moved.any() and not (x_new[:, 0] > 0.5).any()
    assert torch.equal(info.accepted, moved)


# ---------------------------------------------------------------------------------------------
# Clear errors.

GOOD = Target(score=lambda x: -x, log_prob=lambda x: -0.5 * (x * x).flatten(1).sum(1))
X = torch.zeros(3, 2)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ULA()([[0.0]], GOOD, 0.1), TypeError, "torch.Tensor"),
        (lambda: ULA()(torch.zeros(3, 2, dtype=torch.int64), GOOD, 0.1), TypeError, "floating"),
        (lambda: ULA()(torch.tensor(0.0), GOOD, 0.1), ValueError, "batch dimension"),
        (lambda: ULA()(X, lambda x: -x, 0.1), TypeError, "Target"),
        (lambda: ULA()(X, GOOD, -0.1), ValueError, "positive"),
        (lambda: ULA()(X, GOOD, True), TypeError, "positive float"),
        (lambda: ULA()(X, GOOD, torch.ones(2)), ValueError, r"shape \(batch,\) = \(3,\)"),
        (  # chain 1 froze under MALA, ULA returned NaN there
            lambda: MALA()(X, GOOD, torch.tensor([0.5, -0.5, 0.0])),
            ValueError,
            r"finite positive step sizes, got \[0.5, -0.5, 0.0\]",
        ),
        (lambda: ULA()(X, Target(score=lambda x: x[:, 0]), 0.1), ValueError, "shaped like x"),
        (lambda: MALA()(X, Target(score=lambda x: -x), 0.1), ValueError, "log density"),
        (
            lambda: MALA()(X, Target(score=lambda x: -x, log_prob=lambda x: x), 0.1),
            ValueError,
            "one value per sample",
        ),
        (lambda: MALA()(X, GOOD, 0.1, None, "state"), TypeError, "MALAState"),
        (
            lambda: UnderdampedLangevin()(X, GOOD, 0.1, None, MALAState(None)),
            TypeError,
            "UnderdampedState",
        ),
        (lambda: UnderdampedLangevin(mass=torch.ones(3))(X, GOOD, 0.1), ValueError, "broadcast"),
        (lambda: UnderdampedLangevin(friction=0.0), ValueError, "friction"),
        (lambda: UnderdampedLangevin(mass=torch.tensor([1.0, -1.0])), ValueError, "mass"),
        (lambda: UnderdampedLangevin(scheme="leapfrog"), ValueError, "baoab"),
        (lambda: MALA(target_acceptance=1.5), ValueError, r"\(0, 1\)"),
        (lambda: LangevinCorrector(snr=0.0), ValueError, "snr"),
        (lambda: Target(score=None), TypeError, "callable"),
    ],
)
def test_bad_input_gives_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("kernel", [ULA(), MALA(), UnderdampedLangevin(), LangevinCorrector()])
@pytest.mark.parametrize("shape", [(0, 2), (5,)])
def test_every_kernel_takes_an_empty_batch_and_chains_without_event_dims(kernel, shape):
    # MALA and the corrector reshaped (0, -1): "cannot reshape tensor of 0 elements"
    def log_prob(x):
        return -0.5 * (x * x if x.dim() == 1 else (x * x).flatten(1).sum(1))

    target = Target(score=lambda x: -x, log_prob=log_prob)
    x, info, _ = kernel(torch.zeros(shape), target, 0.1, torch.Generator().manual_seed(0))
    assert x.shape == shape and info.evaluations.shape == shape[:1]


# ---------------------------------------------------------------------------------------------
# Inputs a user gets wrong, and inference mode.


@pytest.mark.parametrize("kernel", [MALA(), UnderdampedLangevin(), ULA()])
def test_kernels_run_under_inference_mode(kernel):
    # MALA and underdamped Langevin read the state's version counter, which inference tensors
    # lack: "Inference tensors do not track version counter"
    gauss = Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    with torch.inference_mode():
        result = run_schedule(kernel, torch.zeros(64, 2, dtype=F64), lambda x, level: gauss.score(x),
                              [1.0] * 3, 0.1, log_prob=lambda x, level: gauss.log_prob(x),
                              generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert bool(torch.isfinite(result.x).all())


def test_mala_refuses_a_nan_log_density_at_a_chains_start():
    # every proposal was rejected: the chains stayed where they started, with no word
    target = Target(score=lambda x: -x, log_prob=lambda x: (-(x**2).sum(1)).log())
    x = torch.ones(8, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"NaN at the start of chains \[0, 1, .*would not move"):
        MALA()(x, target, 0.1, generator=torch.Generator().manual_seed(0))
    outside = Target(  # -inf outside the support is a start a chain may have: it stays put
        score=lambda x: torch.where(x > 0, -x, math.nan),
        log_prob=lambda x: torch.where((x > 0).all(1), -(x**2).sum(1) / 2, -math.inf),
    )
    y, _, _ = MALA()(-x, outside, 0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, -x)


@pytest.mark.parametrize("kernel", [MALA(), ULA(), UnderdampedLangevin()])
def test_a_score_of_another_dtype_is_refused(kernel):
    # float32 chains with a float64 score came back float64
    target = Target(score=lambda x: -x.double(), log_prob=lambda x: -(x**2).sum(1) / 2)
    with pytest.raises(ValueError, match=r"score returned torch.float64 .* x of torch.float32"):
        kernel(torch.zeros(4, 2), target, 0.1, generator=torch.Generator().manual_seed(0))


def test_a_numpy_step_size_is_a_number():
    import numpy as np

    gauss = Gaussian([0.0], [[1.0]])
    x, _, _ = ULA()(torch.zeros(4, 1, dtype=F64), gauss.target(), np.float32(0.1),
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert x.shape == (4, 1)


def test_a_narrower_score_is_taken_in_the_chains_dtype():
    # a network under bfloat16 autocast: refused by the dtype check at first, taken in x's now
    target = Target(score=lambda x: (-x).bfloat16(), log_prob=lambda x: -(x**2).sum(1) / 2)
    x, _, _ = MALA()(torch.zeros(4, 2), target, 0.1, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32


def test_under_inference_mode_a_chain_moved_in_place_is_evaluated_again():
    # inference tensors have no version counter: the cache of the old position was reused
    gauss = Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        x = torch.zeros(4, 2, dtype=F64)
        x, _, state = MALA()(x, gauss.target(), 0.1, generator=g)
        x.add_(1.0)
        _, info, _ = MALA()(x, gauss.target(), 0.1, generator=g, state=state)
    assert info.evaluations.tolist() == [2, 2, 2, 2]

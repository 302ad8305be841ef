"""Gaussian-mixture targets: exact perturbed densities, scores and samples."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

import sdekit_score as ss

PROCESSES = [ss.VPSDE(), ss.SubVPSDE(), ss.VESDE(), ss.EDMProcess()]


def _diagonal_mixture() -> ss.GaussianMixture:
    gen = torch.Generator().manual_seed(3)
    means = torch.rand(4, 3, generator=gen, dtype=torch.float64) * 2 - 1
    stds = 0.05 + 0.3 * torch.rand(4, 3, generator=gen, dtype=torch.float64)
    return ss.GaussianMixture(means, stds, torch.tensor([0.1, 0.2, 0.3, 0.4]))


MIXTURES = {
    "ring2d": ss.GaussianMixture.ring2d(),
    "diagonal3d": _diagonal_mixture(),
    "random32d": ss.GaussianMixture.random(32, n_components=5, seed=1),
}


def _moments(gmm: ss.GaussianMixture, alpha: float, sigma: float):
    """Mean and covariance of sum_k w_k N(alpha m_k, alpha^2 S_k + sigma^2 I)."""
    w, m = gmm.weights, gmm.means
    var = torch.broadcast_to(gmm.variances, m.shape)
    mean = alpha * (w @ m)
    second = w[:, None, None] * (alpha**2 * (torch.diag_embed(var) + m[:, :, None] * m[:, None]))
    cov = second.sum(0) + sigma**2 * torch.eye(gmm.dim, dtype=m.dtype) - torch.outer(mean, mean)
    return mean, cov


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(MIXTURES)),
    index=st.integers(0, len(PROCESSES) - 1),
    u=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    spread=st.floats(0.1, 3.0),
)
def test_exact_score_equals_autograd_of_perturbed_log_prob(name, index, u, seed, spread):
    gmm, process = MIXTURES[name], PROCESSES[index]
    gen = torch.Generator().manual_seed(seed)
    n = 6
    t = process.eps + torch.rand(n, generator=gen, dtype=torch.float64) * u * process.T
    typical = gmm.sample_perturbed(n, t, process, gen, dtype=torch.float64)
    x = typical + spread * torch.randn(n, gmm.dim, generator=gen, dtype=torch.float64)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(gmm.perturbed_log_prob(x, t, process).sum(), x)
    score = gmm.score(process)(x.detach(), t)
    torch.testing.assert_close(score, grad, rtol=1e-7, atol=1e-7 * grad.abs().max().item())


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_shared_time_equals_per_sample_time(name):
    gmm, process = MIXTURES[name], ss.VPSDE()
    x = gmm.sample_perturbed(4, 0.3, process, 0, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64)
    score_fn = gmm.score(process)
    torch.testing.assert_close(score_fn(x, t), score_fn(x, t.expand(4)))
    torch.testing.assert_close(
        gmm.perturbed_log_prob(x, t, process), gmm.perturbed_log_prob(x, t.expand(4), process)
    )


@pytest.mark.parametrize("name", ["ring2d", "diagonal3d"])
def test_log_prob_matches_scipy(name):
    gmm = MIXTURES[name]
    x = gmm.sample(50, 0, dtype=torch.float64) + 0.2
    var = torch.broadcast_to(gmm.variances, gmm.means.shape)
    densities = sum(
        float(w) * multivariate_normal(m.numpy(), np.diag(v.numpy())).pdf(x.numpy())
        for w, m, v in zip(gmm.weights, gmm.means, var, strict=True)
    )
    np.testing.assert_allclose(gmm.log_prob(x).numpy(), np.log(densities), rtol=1e-10)
    # p_t at t = 0 is the data density for VP (alpha = 1, sigma = 0)
    torch.testing.assert_close(
        gmm.perturbed_log_prob(x, torch.tensor(0.0, dtype=torch.float64), ss.VPSDE()),
        gmm.log_prob(x),
    )


@pytest.mark.parametrize("name", ["ring2d", "diagonal3d"])
@pytest.mark.parametrize("process", PROCESSES[:3], ids=["vp", "subvp", "ve"])
def test_perturbed_samples_have_the_mixture_mean_and_covariance(name, process):
    gmm, n, t = MIXTURES[name], 200_000, 0.3
    x = gmm.sample_perturbed(n, t, process, 0, dtype=torch.float64)
    alpha, sigma = (
        f(torch.tensor(t, dtype=torch.float64)).item() for f in (process.alpha, process.sigma)
    )
    mean, cov = _moments(gmm, alpha, sigma)
    scale = cov.diagonal().sqrt()
    # 6 standard errors of the mean; covariance entries to a few percent of the scales
    assert ((x.mean(0) - mean).abs() <= 6 * scale / n**0.5).all()
    torch.testing.assert_close(torch.cov(x.T), cov, rtol=0.0, atol=0.02 * scale.max().item() ** 2)


def test_sample_follows_weights_and_per_sample_generators():
    gmm = MIXTURES["diagonal3d"]
    x = gmm.sample(100_000, 0, dtype=torch.float64)
    mean, cov = _moments(gmm, 1.0, 0.0)
    assert ((x.mean(0) - mean).abs() <= 6 * cov.diagonal().sqrt() / 100_000**0.5).all()
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    rows = gmm.sample(4, gens)
    alone = gmm.sample(1, [torch.Generator().manual_seed(2)])
    torch.testing.assert_close(rows[2:3], alone)
    torch.testing.assert_close(gmm.sample(7, 5), gmm.sample(7, 5))


def test_score_follows_x_shape_and_dtype():
    gmm = ss.GaussianMixture.random(12, n_components=3)
    x = torch.randn(5, 3, 2, 2)
    score = gmm.score(ss.VESDE())(x, torch.full((5,), 0.5))
    assert score.shape == x.shape and score.dtype == torch.float32
    lp = gmm.perturbed_log_prob(x, torch.tensor(0.5), ss.VESDE())
    assert lp.shape == (5,) and lp.dtype == torch.float32
    torch.testing.assert_close(
        score.double(),
        gmm.score(ss.VESDE())(x.double(), torch.full((5,), 0.5, dtype=torch.float64)),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize("dim", [256, 3072])
def test_random_mixture_is_separated_and_inside_the_data_range(dim):
    gmm = ss.GaussianMixture.random(dim, n_components=10, seed=0)
    assert gmm.isotropic and gmm.means.shape == (10, dim)
    distances = torch.cdist(gmm.means, gmm.means) + 1e9 * torch.eye(10)
    # misassignment probability Phi(-distance / (2 std)) is below Phi(-10)
    assert distances.min() / (2 * gmm.variances.max().sqrt()) > 10
    x = gmm.sample(200, 0)
    assert ((x >= -1) & (x <= 1)).double().mean() > 0.999


def test_ring2d_geometry():
    gmm = ss.GaussianMixture.ring2d(k=6, radius=0.5, std=0.01)
    torch.testing.assert_close(gmm.means.norm(dim=1), torch.full((6,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(gmm.weights, torch.full((6,), 1 / 6, dtype=torch.float64))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: ss.GaussianMixture(torch.zeros(3), 1.0), ValueError, r"\(K, D\)"),
        (lambda: ss.GaussianMixture(torch.zeros(3, 2), -1.0), ValueError, "positive"),
        (lambda: ss.GaussianMixture(torch.zeros(3, 2), torch.ones(3)), ValueError, "broadcast"),
        (lambda: ss.GaussianMixture(torch.zeros(3, 2), 1.0, torch.ones(2)), ValueError, "weights"),
        (lambda: MIXTURES["ring2d"].log_prob(torch.zeros(4, 3)), ValueError, "2 elements"),
        (
            lambda: MIXTURES["ring2d"].log_prob(torch.zeros(4, 2, dtype=torch.long)),
            TypeError,
            "float",
        ),
    ],
)
def test_bad_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()

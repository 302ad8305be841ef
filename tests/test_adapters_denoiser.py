"""``from_denoiser``: a k-diffusion / EDM denoiser ``D(x, sigma)`` as a score on the EDM process."""

import pytest
import torch

import sdekit_score as ss
from sdekit_score.adapters import from_denoiser


class GaussianDenoiser(torch.nn.Module):
    """The exact denoiser ``E[x0 | x0 + sigma z]`` of x0 ~ N(0, s² I), k-diffusion style:
    called as ``D(x, sigma, **extra_args)`` and carrying ``sigma_min``/``sigma_max``."""

    sigma_min, sigma_max = 0.002, 80.0

    def __init__(self, s=0.5):
        super().__init__()
        self.s = torch.nn.Parameter(torch.tensor(s, dtype=torch.float64), requires_grad=False)
        self.calls = []

    def forward(self, x, sigma, **extra_args):
        self.calls.append((tuple(sigma.shape), extra_args))
        var = sigma.view(-1, *([1] * (x.dim() - 1))) ** 2
        return self.s**2 / (self.s**2 + var) * x


def test_the_score_is_tweedies_formula_of_the_denoiser():
    denoiser = GaussianDenoiser()
    score_fn, process = from_denoiser(denoiser, 0.01, 20.0, extra_args={"class_labels": 3})
    assert isinstance(process, ss.EDMProcess) and (process.eps, process.T) == (0.01, 20.0)
    x = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.5, 3.0, 20.0], dtype=torch.float64)
    # the true score of N(0, (s² + sigma²) I)
    expected = -x / (0.25 + sigma**2).view(-1, 1, 1)
    torch.testing.assert_close(score_fn(x, sigma), expected, rtol=1e-12, atol=1e-12)
    assert denoiser.calls[-1] == ((4,), {"class_labels": 3})
    score_fn(x, torch.tensor(0.5, dtype=torch.float64))  # a shared time reaches D per sample
    assert denoiser.calls[-1][0] == (4,)


def test_the_noise_levels_default_to_the_denoisers_attributes():
    _, process = from_denoiser(GaussianDenoiser())
    assert (process.sigma_min, process.sigma_max) == (0.002, 80.0)
    with pytest.raises(ValueError, match="pass sigma_min="):
        from_denoiser(lambda x, sigma: x)


def test_sampling_an_exact_denoiser_gives_the_data_distribution():
    # x0 ~ N(0, 0.25 I) in 2-D; 4000 samples: the standard error of the sample variance is
    # 0.25 * sqrt(2/4000) = 0.0056 per coordinate; the threshold 0.03 is over 5 SE (both
    # coordinates pooled: SE 0.004), plus the discretisation bias of the 40-step ODE solve.
    score_fn, process = from_denoiser(GaussianDenoiser(), 0.002, 80.0)
    x, stats = ss.sample(
        score_fn, process, (4000, 2), sampler="ode", generator=0, dtype=torch.float64
    )
    assert x.dtype == torch.float64 and torch.isfinite(x).all()
    assert abs(x.var(dim=0).mean().item() - 0.25) < 0.03
    assert abs(x.mean().item()) < 0.03  # SE 0.5/sqrt(8000) = 0.0056


def test_a_denoiser_returning_the_wrong_shape_is_named():
    score_fn, _ = from_denoiser(lambda x, sigma: x[:, :1], 0.01, 1.0)
    with pytest.raises(ValueError, match="the denoiser returned"):
        score_fn(torch.zeros(2, 3), torch.ones(2))


def test_a_bfloat16_denoiser_runs_in_its_dtype_on_a_float32_state():
    # the state reached the network in float32: "mat1 and mat2 must have the same dtype"
    class Linear(torch.nn.Module):
        sigma_min, sigma_max = 0.002, 80.0

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x, sigma):
            assert x.dtype == torch.bfloat16 and sigma.dtype == torch.float32
            return self.lin(x)

    score_fn, process = from_denoiser(Linear().to(torch.bfloat16))
    x = torch.randn(4, 2)
    score = score_fn(x, torch.full((4,), 0.5))
    assert score.dtype == torch.float32
    samples, _ = ss.sample(score_fn, process, (4, 2), sampler="unipc", steps=5, generator=0)
    assert samples.dtype == torch.float32 and torch.isfinite(samples).all()
